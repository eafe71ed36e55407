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


def git_commit(repo: str | Path | None = None) -> str | None:
    """The checkout's commit, with ``-dirty`` appended when tracked files differ from it (``git describe``'s
    convention), so a result made with uncommitted code does not claim a commit it was not made with. None outside
    a git checkout (an installed wheel). ``repo``: a folder in the checkout (default: this package's)."""
    cwd = Path(repo) if repo is not None else Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if head.returncode != 0 or not head.stdout.strip():
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = status.returncode == 0 and bool(status.stdout.strip())
    return head.stdout.strip() + ("-dirty" if dirty else "")


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
