"""Rasterize 3D Gaussians into cameras: plain PyTorch on the CPU, gsplat on CUDA.

One call, :func:`rasterize`, for both back-ends; ``backend="auto"`` picks gsplat when the
Gaussians live on a CUDA device and the PyTorch rasterizer otherwise. ``mode`` is gsplat's
``rasterize_mode``: "antialiased" (the package default: opacity compensated for the 0.3 px²
dilation, so sub-pixel and edge-on Gaussians fade) or "classic" (the original 3DGS rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from partrm_gym.gaussians import Gaussians
from partrm_gym.rendering.torch_rasterizer import RASTERIZE_MODES, RasterizeMode, rasterize_torch

Backend = Literal["auto", "torch", "gsplat"]


@dataclass
class RenderOutput:
    rgb: torch.Tensor  # (B, C, H, W, 3), background composited
    alpha: torch.Tensor  # (B, C, H, W, 1)
    depth: torch.Tensor  # (B, C, H, W, 1) expected depth of the drawn surface (0 where alpha is 0)


def rasterize(gaussians: Gaussians, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
              background: torch.Tensor | tuple[float, float, float] = (1.0, 1.0, 1.0),
              backend: Backend = "auto", mode: RasterizeMode = "antialiased") -> RenderOutput:
    """Render B scenes into C cameras each. ``viewmats`` (C, 4, 4) or (B, C, 4, 4), OpenCV world-to-camera;
    ``Ks`` (C, 3, 3) or (B, C, 3, 3). Gaussians are used as given: call ``sanitize()`` first on untrusted input."""
    B = gaussians.batch_size
    if viewmats.ndim == 3:
        viewmats = viewmats.expand(B, -1, -1, -1)
    if Ks.ndim == 3:
        Ks = Ks.expand(B, -1, -1, -1)
    if viewmats.shape[:2] != Ks.shape[:2] or viewmats.shape[0] != B:
        raise ValueError(f"viewmats {tuple(viewmats.shape)} and Ks {tuple(Ks.shape)} do not match a batch of {B}")
    if mode not in RASTERIZE_MODES:
        raise ValueError(f"unknown rasterize mode {mode!r}; choose one of {RASTERIZE_MODES}")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    device = gaussians.means.device
    bg = torch.as_tensor(background, dtype=gaussians.means.dtype, device=device)
    if backend == "auto":
        backend = "gsplat" if device.type == "cuda" else "torch"
    viewmats = viewmats.to(device=device, dtype=gaussians.means.dtype)
    Ks = Ks.to(device=device, dtype=gaussians.means.dtype)
    if backend == "torch":
        rgb, alpha, depth = rasterize_torch(gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities,
                                            gaussians.colors, viewmats, Ks, width, height, bg, mode)
    elif backend == "gsplat":
        from partrm_gym.rendering.gsplat_backend import rasterize_gsplat

        rgb, alpha, depth = rasterize_gsplat(gaussians, viewmats, Ks, width, height, bg, mode)
    else:
        raise ValueError(f"unknown backend {backend!r}; choose 'auto', 'torch' or 'gsplat'")
    return RenderOutput(rgb, alpha, depth)


__all__ = ["RASTERIZE_MODES", "RasterizeMode", "RenderOutput", "rasterize"]
