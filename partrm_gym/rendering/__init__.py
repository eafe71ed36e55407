"""Rasterize 3D Gaussians into cameras: plain PyTorch on the CPU, gsplat on CUDA.

One call, :func:`rasterize`, for both back-ends; ``backend="auto"`` picks gsplat when the
Gaussians live on a CUDA device and the PyTorch rasterizer otherwise. ``mode`` is gsplat's
``rasterize_mode``: "antialiased" (the package default: opacity compensated for the 0.3 px²
dilation, so sub-pixel and edge-on Gaussians fade) or "classic" (the original 3DGS rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch

from partrm_gym.cameras import Camera, stack_cameras
from partrm_gym.gaussians import Gaussians
from partrm_gym.rendering.torch_rasterizer import RASTERIZE_MODES, RasterizeMode, rasterize_torch

Backend = Literal["auto", "torch", "gsplat"]
# White: the simulator's background. Every render compared with a simulator image (observations, goal images,
# dataset views, GT-splatter fits) uses it: this is its one definition.
BACKGROUND_RGB = (1.0, 1.0, 1.0)
EMPTY_ALPHA = 0.5  # a pixel whose rendered alpha is below this shows no surface (depth inf)


@dataclass
class RenderOutput:
    rgb: torch.Tensor  # (B, C, H, W, 3), background composited
    alpha: torch.Tensor  # (B, C, H, W, 1)
    depth: torch.Tensor  # (B, C, H, W, 1) expected depth of the drawn surface (0 where alpha is 0)


def rasterize(gaussians: Gaussians, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
              background: torch.Tensor | tuple[float, float, float] = BACKGROUND_RGB,
              backend: Backend = "auto", mode: RasterizeMode = "antialiased") -> RenderOutput:
    """Render B scenes of 3D Gaussians into C cameras each (3DGS rules; docs/conventions.md).

    Args:
        gaussians: B scenes of N Gaussians (means, quats wxyz, scales, opacities, colours), used as given: call
            ``sanitize()`` first on untrusted input.  # [B, N, ...]
        viewmats: world-to-camera, OpenCV axes (x right, y down, z forward).  # [C, 4, 4] or [B, C, 4, 4]
        Ks: pinhole intrinsics in pixels.  # [C, 3, 3] or [B, C, 3, 3]
        width, height: image size in pixels (all cameras).
        background: RGB in [0, 1] composited behind the Gaussians.  # [3]
        backend: "torch" (CPU reference, differentiable), "gsplat" (CUDA), "auto" (by the Gaussians' device).
        mode: "antialiased" (opacity compensated for the 0.3 px² dilation) or "classic".

    Returns:
        :class:`RenderOutput` with ``rgb`` # [B, C, H, W, 3], ``alpha`` # [B, C, H, W, 1] and ``depth``
        # [B, C, H, W, 1] (expected depth of the drawn surface, 0 where alpha is 0).

    Example::

        from partrm_gym.cameras import canonical_rig, stack_cameras
        cams = canonical_rig(64)
        viewmats, Ks = stack_cameras(cams)
        out = rasterize(gaussians, viewmats, Ks, 64, 64)  # gaussians: Gaussians.from_splatter(splatter)
        image = out.rgb[0, 0]                             # scene 0, camera 0: [64, 64, 3]
    """
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


class CameraImages(NamedTuple):
    rgb: np.ndarray  # (C, H, W, 3) uint8
    depth: np.ndarray  # (C, H, W) float32, inf where no surface is drawn (alpha below EMPTY_ALPHA)


def render_images(gaussians: Gaussians, cameras: list[Camera],
                  background: tuple[float, float, float] = BACKGROUND_RGB) -> CameraImages:
    """One scene's Gaussians as images, the layout of the project's edges (HWC uint8, like the simulator's).

    Args:
        gaussians: one scene (B = 1), on any device.  # [1, N, ...]
        cameras: C cameras of one size.
        background: RGB in [0, 1] behind the Gaussians.

    Returns:
        :class:`CameraImages`: ``rgb`` # [C, H, W, 3] uint8 and ``depth`` # [C, H, W] (inf where empty).

    Example::

        g = Gaussians.from_splatter(splatter)           # splatter: [1, V, 14, h, w]
        rgb, depth = render_images(g, [camera])
    """
    if gaussians.batch_size != 1:
        raise ValueError(f"render_images takes one scene (B = 1), got B = {gaussians.batch_size}")
    device = gaussians.means.device
    viewmats, Ks = stack_cameras(cameras, device=device)
    out = rasterize(gaussians, viewmats, Ks, cameras[0].width, cameras[0].height, background=background)
    rgb = (out.rgb[0].clamp(0, 1) * 255).round().byte().cpu().numpy()
    alpha = out.alpha[0, ..., 0].cpu().numpy()
    depth = out.depth[0, ..., 0].cpu().numpy()
    return CameraImages(rgb, np.where(alpha > EMPTY_ALPHA, depth, np.inf))  # the rasterizer's depth is alpha-normalised


def render_part_labels(gaussians: Gaussians, labels: torch.Tensor, cameras: list[Camera]) -> np.ndarray:
    """Per-Gaussian integer labels rendered as a segmentation: each pixel takes the label whose Gaussians
    contribute most to it, -2 where nothing is drawn. Each label is rendered as a one-hot colour, three labels
    per rasterization (one per RGB channel).

    Args:
        gaussians: one scene (B = 1).  # [1, N, ...]
        labels: the label of each Gaussian (any integers >= -1, e.g. -1 static body, k part k).  # [N]
        cameras: C cameras of one size.

    Returns:
        the segmentation, int.  # [C, H, W]
    """
    if gaussians.batch_size != 1:
        raise ValueError(f"render_part_labels takes one scene (B = 1), got B = {gaussians.batch_size}")
    ids = sorted(set(labels.tolist()))
    if ids and ids[0] < -1:
        raise ValueError(f"part labels must be >= -1 (-2 marks pixels where nothing is drawn), got {ids[0]}")
    if not ids:  # no Gaussians: nothing is drawn anywhere
        return np.full((len(cameras), cameras[0].height, cameras[0].width), -2)
    viewmats, Ks = stack_cameras(cameras, device=gaussians.means.device)
    weights, alpha = [], None
    for first in range(0, len(ids), 3):
        group = ids[first:first + 3]
        colors = torch.stack([(labels == label) for label in group] + [torch.zeros_like(labels, dtype=torch.bool)]
                             * (3 - len(group)), -1).to(gaussians.colors.dtype)[None]  # [1, N, 3]
        one_hot = Gaussians(gaussians.means, gaussians.opacities, gaussians.scales, gaussians.quats, colors)
        out = rasterize(one_hot, viewmats, Ks, cameras[0].width, cameras[0].height,
                        background=torch.zeros(3, device=gaussians.means.device))
        weights.extend(np.moveaxis(out.rgb[0, ..., :len(group)].cpu().numpy(), -1, 0))  # [len(group), C, H, W]
        alpha = out.alpha[0, ..., 0].cpu().numpy()
    seg = np.asarray(ids)[np.stack(weights).argmax(0)]  # weights: [L, C, H, W]
    return np.where(alpha > EMPTY_ALPHA, seg, -2)
