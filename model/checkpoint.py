"""Checkpoints: ``model.safetensors`` + ``config.yaml`` (ModelConfig) + ``provenance.json``. No pickles.

Loading checks everything a user can get wrong and says what to do: missing files, a corrupt
weights file, weights that do not fit the config (the first mismatched tensors are named).
safetensors has no checksum, so a flipped byte in the tensor data would load silently:
``provenance.json`` records the weights' SHA-256 and loading verifies it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from partrm_gym.config import ConfigError, load_config, save_config
from partrm_gym.errors import UserError
from partrm_gym.io import atomic_write_json, path_kind
from partrm_gym.model.config import ModelConfig
from partrm_gym.model.networks import build_network

WEIGHTS, CONFIG, PROVENANCE = "model.safetensors", "config.yaml", "provenance.json"
MISMATCHES_SHOWN = 5
CHECKSUM_KEY = "weights_sha256"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint folder is incomplete, corrupt or does not match its config."""


def save_checkpoint(model: torch.nn.Module, config: ModelConfig, folder: str | Path,
                    provenance: dict[str, Any] | None = None) -> Path:
    """Write the three files (:func:`write_weights_folder`)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return write_weights_folder(folder, WEIGHTS, lambda path: save_file(state, path, metadata={"format": "pt"}),
                                config, CONFIG, provenance)


def write_weights_folder(folder: str | Path, weights_name: str, write_weights: Callable[[str], None], config: Any,
                         config_name: str, provenance: dict[str, Any] | None = None) -> Path:
    """The one way weights are saved (models and agents): ``write_weights(path)`` writes safetensors to a temp
    file, which is hashed and renamed into place (a kill never leaves half a file); then the YAML config; then
    ``provenance.json`` with the weights' SHA-256, written last: its presence marks a complete folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{weights_name}.tmp"
    write_weights(str(tmp))
    checksum = file_sha256(tmp)
    tmp.replace(folder / weights_name)
    save_config(config, folder / config_name)
    atomic_write_json(folder / PROVENANCE, {**(provenance or {}), CHECKSUM_KEY: checksum})
    return folder


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_provenance(folder: str | Path) -> dict[str, Any]:
    """A folder's ``provenance.json`` ({} when there is none); invalid JSON is a CheckpointError."""
    path = Path(folder) / PROVENANCE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from None


def weights_match(weights: str | Path, provenance: dict[str, Any]) -> bool:
    """False only when ``provenance`` records a SHA-256 and ``weights`` hashes to something else."""
    expected = provenance.get(CHECKSUM_KEY)
    return expected is None or file_sha256(weights) == expected


def load_checkpoint(folder: str | Path, device: str | torch.device = "cpu"
                    ) -> tuple[torch.nn.Module, ModelConfig, dict[str, Any]]:
    """The network (either layout, :func:`build_network`), its config and provenance, checked on the way."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is {path_kind(folder)}, not a checkpoint folder (expected {WEIGHTS}, "
                              f"{CONFIG}, {PROVENANCE})")
    for name in (WEIGHTS, CONFIG):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder / name} is missing; a checkpoint folder needs {WEIGHTS} and {CONFIG} "
                                  "(written by `partrm-gym train`)")
    try:
        config = load_config(ModelConfig, folder / CONFIG)
    except (ConfigError, ValueError) as e:
        raise CheckpointError(f"{folder / CONFIG}: invalid model config ({e})") from None
    provenance = read_provenance(folder)
    if not weights_match(folder / WEIGHTS, provenance):
        raise CheckpointError(f"{folder / WEIGHTS} does not match the SHA-256 in {PROVENANCE}: the file is corrupt "
                              "or was modified; copy it again or retrain")
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{folder / WEIGHTS} is corrupt ({e}); copy it again or retrain") from None
    model = build_network(config)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        details = "; ".join(filter(None, [
            f"missing {missing[:MISMATCHES_SHOWN]}" if missing else "",
            f"unexpected {unexpected[:MISMATCHES_SHOWN]}" if unexpected else "",
            f"wrong shape {wrong[:MISMATCHES_SHOWN]}" if wrong else ""]))
        raise CheckpointError(f"{folder / WEIGHTS} does not match {folder / CONFIG}: {details}")
    model.load_state_dict(state)
    return model.to(device).eval(), config, provenance
