"""Resumable training state without pickles: safetensors for tensors, JSON for the rest.

A training checkpoint is a folder ``step_XXXXXXX/`` holding the model (the same files as an
inference checkpoint), ``optimizer.safetensors`` + ``trainer.json`` (step, RNG, optimiser
hyper-parameters). It is built under a temporary name and renamed into place, then
``latest.txt`` is replaced atomically, so a kill at any moment leaves the previous
checkpoint intact. The learning-rate schedule is a pure function of the step, and the data
order a pure function of (seed, step), so the step number is the whole scheduler and data
position.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from partrm_gym.io import atomic_write_text

LATEST = "latest.txt"
KEEP_LAST = 2


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for k, v in state.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                        meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    for pid, extra in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(extra)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


Optimizers = torch.optim.Optimizer | dict[str, torch.optim.Optimizer]


def _named(optimizer: Optimizers) -> dict[str, torch.optim.Optimizer]:
    return optimizer if isinstance(optimizer, dict) else {"": optimizer}


def save_training_state(run_dir: Path, step: int, save_model, optimizer: Optimizers,
                        extra: dict[str, Any]) -> Path:
    """Write ``run_dir/checkpoints/step_<step>`` atomically; ``save_model(folder)`` writes the model files.

    ``optimizer`` is one optimiser or several by name (e.g. SAC's actor, critic and entropy ones).
    """
    ckpt_root = run_dir / "checkpoints"
    final = ckpt_root / f"step_{step:07d}"
    tmp = ckpt_root / f".tmp_step_{step:07d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_model(tmp)
    tensors, meta = {}, {}
    for name, opt in _named(optimizer).items():
        flat, meta[name] = optimizer_to_flat(opt)
        tensors.update({f"{name}/{k}" if name else k: v for k, v in flat.items()})
    if not isinstance(optimizer, dict):
        meta = meta[""]
    tensors["__rng_torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["__rng_cuda"] = torch.cuda.get_rng_state()
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "trainer.json").write_text(json.dumps({"step": step, "optimizer": meta, **extra}, indent=1))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    atomic_write_text(ckpt_root / LATEST, final.name + "\n")
    for old in sorted(ckpt_root.glob("step_*"))[:-KEEP_LAST]:
        shutil.rmtree(old)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    return path if path.is_dir() else None


def load_training_state(ckpt: Path, optimizer: Optimizers) -> dict[str, Any]:
    """Restore optimiser and RNG from a checkpoint folder; returns trainer.json (step, ...)."""
    try:
        tensors = load_file(str(ckpt / "optimizer.safetensors"))
        meta = json.loads((ckpt / "trainer.json").read_text())
    except FileNotFoundError as e:
        raise RuntimeError(f"{ckpt}: incomplete training checkpoint ({e.filename} missing); "
                           "delete it and resume from the previous one") from None
    except Exception as e:
        raise RuntimeError(f"{ckpt}: corrupt training checkpoint ({e}); delete it and resume from the "
                           "previous one") from None
    torch.set_rng_state(tensors.pop("__rng_torch"))
    cuda_rng = tensors.pop("__rng_cuda", None)
    if cuda_rng is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda_rng)
    if isinstance(optimizer, dict):
        for name, opt in optimizer.items():
            prefix = f"{name}/"
            optimizer_from_flat(opt, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)},
                                meta["optimizer"][name])
    else:
        optimizer_from_flat(optimizer, tensors, meta["optimizer"])
    return meta
