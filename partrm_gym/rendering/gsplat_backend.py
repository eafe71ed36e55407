"""gsplat's CUDA rasterizer behind the same call as the PyTorch one (same rules, tile-based)."""

from __future__ import annotations

import torch

from partrm_gym.gaussians import Gaussians
from partrm_gym.rendering.torch_rasterizer import EPS2D, NEAR_PLANE


def rasterize_gsplat(gaussians: Gaussians, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
                     background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if gaussians.means.device.type != "cuda":
        raise RuntimeError("the gsplat backend needs tensors on a CUDA device; use backend='torch' on the CPU")
    from gsplat import rasterization

    B, C = viewmats.shape[:2]
    outs = []
    for b in range(B):  # gsplat 1.x batches cameras; scenes are looped
        colors, alphas, _ = rasterization(
            gaussians.means[b], gaussians.quats[b], gaussians.scales[b], gaussians.opacities[b], gaussians.colors[b],
            viewmats[b], Ks[b], width, height, near_plane=NEAR_PLANE, eps2d=EPS2D, packed=False,
            rasterize_mode="classic", render_mode="RGB+ED", backgrounds=None)
        outs.append((colors, alphas))
    rgb_d = torch.stack([o[0] for o in outs])  # (B, C, H, W, 4): RGB + expected depth
    alpha = torch.stack([o[1] for o in outs])
    rgb = rgb_d[..., :3] + (1 - alpha) * background
    return rgb, alpha, rgb_d[..., 3:4]
