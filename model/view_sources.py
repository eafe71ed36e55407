"""Where the model's 4 input views come from, when they do not come from the simulator or the imagined state.

The envs and datagen take the views from ``Scene.render_views`` (the twin, datasets) or from
``partrm_gym.rendering.render_images`` of the imagined Gaussians (the world-model env). For a single real
photo there is :class:`Zero123PlusPlusSource`: novel views from Zero123++ through diffusers, loaded from a
local folder only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from partrm_gym.errors import UserError

# Zero123++ v1.2 returns a 3x2 grid of 320x320 views at relative azimuths 30, 90, 150, 210, 270, 330
# (elevations alternating 20 / -10 degrees). The canonical rig is azimuths 0/90/180/270 at 20 degrees:
# view 0 is the input photo itself; the others take the nearest tiles (an approximation until a
# Zero123++ fine-tuned to output our rig exists).
ZERO123PP_GRID = (3, 2)  # rows, columns
ZERO123PP_TILE_FOR_VIEW = (None, 1, 3, 4)


class ViewSourceUnavailable(UserError, RuntimeError):
    """A view source's weights are missing; the message says how to provide them."""


class Zero123PlusPlusSource:
    """Zero123++ novel views from one photo; weights only from ``weights_dir`` (no downloads)."""

    def __init__(self, weights_dir: str | Path | None = None, device: str = "cpu",
                 pipeline: Callable[..., object] | None = None, steps: int = 28) -> None:
        self.steps = steps
        if pipeline is not None:
            self.pipeline = pipeline
            return
        if weights_dir is None or not (Path(weights_dir) / "model_index.json").is_file():
            raise ViewSourceUnavailable(
                f"Zero123++ weights not found at {weights_dir!r} (expected a diffusers folder with model_index.json). "
                "On a machine with internet: `huggingface-cli download sudo-ai/zero123plus-v1.2 --local-dir DIR` "
                "and the custom pipeline `sudo-ai/zero123plus-pipeline` into DIR/pipeline, copy DIR here and pass "
                "--zero123pp DIR. Without it, use simulator views (sim-backed) or a multi-view capture.")
        from diffusers import DiffusionPipeline

        custom = Path(weights_dir) / "pipeline"
        self.pipeline = DiffusionPipeline.from_pretrained(
            str(weights_dir), custom_pipeline=str(custom) if custom.is_dir() else None, local_files_only=True,
            torch_dtype=torch.float16 if device.startswith("cuda") else torch.float32).to(device)

    def views(self, image: np.ndarray, size: int) -> np.ndarray:
        """(4, size, size, 3) uint8: the photo and 3 generated views, in canonical-rig order."""
        from PIL import Image

        result = self.pipeline(Image.fromarray(image), num_inference_steps=self.steps)
        grid = np.asarray(result.images[0] if hasattr(result, "images") else result)[..., :3]  # type: ignore[attr-defined]
        rows, cols = ZERO123PP_GRID
        th, tw = grid.shape[0] // rows, grid.shape[1] // cols
        tiles = [grid[r * th:(r + 1) * th, c * tw:(c + 1) * tw] for r in range(rows) for c in range(cols)]
        out = [image if t is None else tiles[t] for t in ZERO123PP_TILE_FOR_VIEW]
        return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(v)).resize((size, size))) for v in out])
