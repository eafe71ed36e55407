"""Where a result came from: dataset hash, code version, and the figures measured with it."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import partrm_gym


def dataset_hash(root: str | Path) -> str | None:
    """SHA-256 of the dataset's manifest (it lists every object and the config), or None without one."""
    manifest = Path(root) / "manifest.json"
    return hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(dataset: str | Path | None = None, metrics: dict[str, Any] | None = None,
               commit: str | None = None, extra_datasets: tuple[str | Path, ...] = ()) -> dict[str, Any]:
    """``commit``: the code version the result was produced with (default: HEAD now). Long jobs pass the
    commit they started from, since the checkout may move on while they run. ``extra_datasets``: more dataset
    folders the result was trained on (``TrainConfig.extra_data``)."""
    out = {"partrm_gym_version": partrm_gym.__version__, "git_commit": commit or git_commit(),
           "dataset": str(dataset) if dataset else None,
           "dataset_hash": dataset_hash(dataset) if dataset else None, "metrics": metrics or {}}
    if extra_datasets:
        out["extra_datasets"] = [{"dataset": str(d), "dataset_hash": dataset_hash(d)} for d in extra_datasets]
    return out
