"""Figures: headless matplotlib plots written atomically as PNG (evaluation plots, comparison curves), and image
grids and overlays of uint8 images (previews, demo panels, training samples)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from partrm_gym.io import atomic_write_bytes

if TYPE_CHECKING:
    import torch

MASK_TINT = np.array([255, 40, 40], dtype=np.float32)
MASK_ALPHA = 0.45


def overlay_mask(rgb: np.ndarray, mask: np.ndarray, tint: np.ndarray = MASK_TINT,
                 alpha: float = MASK_ALPHA) -> np.ndarray:
    """Blend ``tint`` into the pixels of ``mask``."""
    out = rgb.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * tint
    return out.clip(0, 255).astype(np.uint8)


def to_uint8_image(t: torch.Tensor) -> np.ndarray:
    """(3, H, W) float tensor in [0, 1] -> (H, W, 3) uint8 array."""
    return (t.detach().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def image_grid(rows: list[list[np.ndarray]], pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile equally sized H×W×3 images into one image, ``pad`` pixels apart."""
    h, w = rows[0][0].shape[:2]
    ncols = max(len(r) for r in rows)
    grid = np.full((len(rows) * (h + pad) + pad, ncols * (w + pad) + pad, 3), fill, dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y:y + h, x:x + w] = img
    return grid


def subplots(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots`` on the non-interactive Agg backend (no display on servers and CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
