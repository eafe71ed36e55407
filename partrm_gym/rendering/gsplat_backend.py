"""gsplat's CUDA rasterizer behind the same call as the PyTorch one.

Same settings as ``torch_rasterizer`` (near plane, 0.3 px² dilation, the same ``mode``, RGB +
expected depth); gsplat itself clamps alpha at 0.999 instead of 0.99. gsplat is imported
only here and only when called, so the package works without a GPU.
"""

from __future__ import annotations

import torch

from partrm_gym.gaussians import Gaussians
from partrm_gym.rendering.torch_rasterizer import EPS2D, NEAR_PLANE, RasterizeMode


def rasterize_gsplat(gaussians: Gaussians, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
                     background: torch.Tensor, mode: RasterizeMode = "antialiased"
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RGB (B, C, H, W, 3), alpha (B, C, H, W, 1), expected depth (B, C, H, W, 1); ``viewmats`` (B, C, 4, 4)."""
    if gaussians.means.device.type != "cuda" or not torch.cuda.is_available():
        raise RuntimeError("the gsplat backend needs CUDA and tensors on a CUDA device; "
                           "use backend='torch' (or 'auto') on the CPU")
    try:
        from gsplat import rasterization
    except ImportError as err:  # pragma: no cover - gsplat is a declared dependency
        raise RuntimeError(f"the gsplat backend needs the gsplat package ({err}); use backend='torch'") from err

    B, C = viewmats.shape[:2]
    if gaussians.num_gaussians == 0:
        rgb = background.expand(B, C, height, width, 3).clone()
        zeros = torch.zeros(B, C, height, width, 1, dtype=rgb.dtype, device=rgb.device)
        return rgb, zeros, zeros.clone()
    colors, alphas = [], []
    for b in range(B):  # gsplat 1.x batches cameras; scenes are looped
        rgb_depth, alpha, _ = rasterization(
            gaussians.means[b], gaussians.quats[b], gaussians.scales[b], gaussians.opacities[b], gaussians.colors[b],
            viewmats[b], Ks[b], width, height, near_plane=NEAR_PLANE, eps2d=EPS2D, packed=False,
            rasterize_mode=mode, render_mode="RGB+ED", backgrounds=None)
        colors.append(rgb_depth)
        alphas.append(alpha)
    rgb_depth = torch.stack(colors)  # (B, C, H, W, 4): RGB + expected depth
    alpha = torch.stack(alphas)
    return rgb_depth[..., :3] + (1 - alpha) * background, alpha, rgb_depth[..., 3:4]
