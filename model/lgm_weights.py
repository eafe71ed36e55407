"""Reading LGM-format checkpoints into the ``lgm`` layout: LGM's released ``model_fp16_fixrot.safetensors``
(fp16, keys ``unet.*`` and ``conv.*``) and the same network with PartRM's released drag modules.

Weights come only from a path the user gives (no download), and only from safetensors (no pickles). Every tensor
of the file must find its place in the network, with its shape, and every LGM tensor of the network must come from
the file; anything else is a one-line :class:`LGMWeightsError` naming the file and the key. The project's own
additions (the paper's drag embedding, the articulation head) are not LGM's and keep their initialisation: the
drag embedding's zero-initialised convolutions make the loaded network LGM exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from partrm_gym.io import path_kind
from partrm_gym.model.checkpoint import CheckpointError
from partrm_gym.model.config import ModelConfig

LGM_PREFIXES = ("unet.", "conv.")
RELEASED_DRAG_PREFIXES = ("unet.drag_position_net.", "unet.conv_merges.", "unet.alpha")
WHERE_PUBLISHED = ("LGM's weights are published in the 3DTopia/LGM release on Hugging Face "
                   "(ashawkey/LGM, model_fp16_fixrot.safetensors); a checkpoint with PartRM's released drag modules "
                   "(drag_embedding: released) is PartRM's own, announced in the GasaiYU/PartRM repository")
LGM_FOVY = 49.1


class LGMWeightsError(CheckpointError):
    """An LGM-format weights file is missing, unreadable, or does not fit the network."""


@dataclass(frozen=True)
class LoadReport:
    """What a load placed: tensors and parameters (all of the file's: nothing is left over)."""

    path: str
    tensors: int
    parameters: int


def lgm_config(options: Mapping[str, Any], **overrides: Any) -> ModelConfig:
    """A ``layout: lgm`` ModelConfig from LGM's options (the ``config`` of the fixtures' manifests and
    ``small/config.json``: input_size, splat_size, fovy, cam_radius, the UNet's channels and attention)."""
    fovy = float(options.get("fovy", LGM_FOVY))
    if abs(fovy - LGM_FOVY) > 1e-6:
        raise ValueError(f"LGM options: fovy {fovy} differs from the project's rig ({LGM_FOVY}°)")
    levels = len(options["down_channels"])
    cfg = ModelConfig(**{
        "name": "lgm", "layout": "lgm", "input_size": int(options["input_size"]),
        "down_channels": tuple(options["down_channels"]), "down_attention": tuple(options["down_attention"]),
        "mid_attention": bool(options["mid_attention"]), "up_channels": tuple(options["up_channels"]),
        "up_attention": tuple(options["up_attention"]), "layers_per_block": int(options.get("layers_per_block", 2)),
        "attention_heads": int(options.get("attention_heads", 16)), "drag_levels": (True,) * levels,
        "input_elevation_deg": 0.0, "lgm_cam_radius": float(options.get("cam_radius", 1.5)), **overrides})
    if "splat_size" in options and int(options["splat_size"]) != cfg.output_size:
        raise ValueError(f"LGM options: splat_size {options['splat_size']} but the UNet makes {cfg.output_size}²")
    return cfg


def lgm_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """The tensors an LGM-format file must provide for ``model``: its state under ``unet.`` and ``conv.``."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith(LGM_PREFIXES)}


def _unplaced_hint(key: str) -> str:
    if key.startswith(RELEASED_DRAG_PREFIXES):
        return "it is one of PartRM's released drag modules: set drag_embedding: released in the model config"
    return "the file is not of this network's layout or size (compare its keys with the model config)"


def check_lgm_keys(model: torch.nn.Module, found: Mapping[str, Sequence[int]], source: str) -> list[str]:
    """Where every tensor of a file (key -> shape) goes in ``model``; raises naming the first key that has no
    place, has another shape, or that the network needs and the file lacks. Returns the keys, all placed."""
    expected = lgm_shapes(model)
    for key, shape in found.items():
        if key not in expected:
            raise LGMWeightsError(f"{source}: key {key} {list(shape)} has no place in this network: "
                                  f"{_unplaced_hint(key)}")
        if tuple(shape) != expected[key]:
            raise LGMWeightsError(f"{source}: key {key}: expected shape {list(expected[key])}, found {list(shape)}; "
                                  f"{WHERE_PUBLISHED}")
    missing = [k for k in expected if k not in found]
    if missing:
        why = ("the network has PartRM's released drag modules (drag_embedding: released) and the file has none: "
               "LGM's own weights need drag_embedding: paper" if missing[0].startswith(RELEASED_DRAG_PREFIXES)
               else WHERE_PUBLISHED)
        raise LGMWeightsError(f"{source}: key {missing[0]} (and {len(missing) - 1} more) is missing from the file; "
                              f"{why}")
    return list(found)


def _unreadable(path: Path, error: Exception) -> LGMWeightsError:
    return LGMWeightsError(f"{path} is not a readable safetensors file ({' '.join(str(error).split())}); only "
                           f"safetensors are read (no pickled .ckpt/.pt); {WHERE_PUBLISHED}")


def check_lgm_file(path: str | Path) -> Path:
    """Refuse a path that is not a readable safetensors file, reading only its header: a training run calls it
    before loading data, so a mistyped ``init_from: lgm:PATH`` fails in a second, not after minutes."""
    path = Path(path)
    if not path.is_file():
        what = ": no such LGM weights file" if not path.exists() else f" is {path_kind(path)}, not an LGM weights file"
        raise LGMWeightsError(f"{path}{what}; {WHERE_PUBLISHED}")
    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError, ValueError) as e:
        raise _unreadable(path, e) from None
    return path


def read_lgm_file(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, as stored (fp16 for LGM's release); one-line errors naming the file."""
    path = check_lgm_file(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise _unreadable(path, e) from None


def load_lgm_weights(model: torch.nn.Module, path: str | Path, progress: bool = True) -> LoadReport:
    """Copy an LGM-format file into an lgm-layout ``model`` (cast to the model's dtype: fp16 -> float32)."""
    state = read_lgm_file(path)
    placed = check_lgm_keys(model, {k: tuple(v.shape) for k, v in state.items()}, str(path))
    target = model.state_dict()  # references to the model's own tensors
    with torch.no_grad():
        for key in tqdm(placed, desc="LGM weights", unit="tensor", disable=not progress):
            target[key].copy_(state[key])
    return LoadReport(str(path), len(placed), sum(state[k].numel() for k in placed))


def save_lgm_file(model: torch.nn.Module, path: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """Write ``model``'s LGM tensors (``unet.*``, ``conv.*``) as an LGM-format safetensors file (fp16 by default, as
    released): for tests, benchmarks and for handing a fine-tuned backbone back to LGM's own code."""
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()
             if k.startswith(LGM_PREFIXES)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"format": "pt"})
    return path
