"""The training losses of the three stages (DESIGN.md "Training").

* splatter loss (stages 0 and 1): per-pixel L2 between predicted and GT splatter images;
* render loss (stages 0 and 2): the predicted Gaussians rendered into dataset views, MSE
  to the simulator images, MSE between rendered alpha and the object mask, and LPIPS when
  a local backbone is configured.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from partrm_gym.gaussians import Gaussians
from partrm_gym.rendering import rasterize

BACKGROUND = (1.0, 1.0, 1.0)  # the simulator renders on white


def splatter_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all 14 channels of all pixels of all views, (B, V, 14, h, w)."""
    return F.mse_loss(pred, target)


def render_views(splatter: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, width: int,
                 height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Render (B, V, 14, h, w) splatter images into C cameras per sample: RGB (B, C, 3, H, W), alpha (B, C, 1, H, W)."""
    out = rasterize(Gaussians.from_splatter(splatter), viewmats, Ks, width, height,
                    background=torch.tensor(BACKGROUND, device=splatter.device))
    return out.rgb.permute(0, 1, 4, 2, 3), out.alpha.permute(0, 1, 4, 2, 3)


def render_loss(splatter: torch.Tensor, batch: dict[str, torch.Tensor], view_index: torch.Tensor,
                mask_weight: float, lpips_fn=None, lpips_weight: float = 0.0,  # noqa: ANN001
                target_prefix: str = "target") -> tuple[torch.Tensor, dict[str, float]]:
    """Render loss over the dataset views ``view_index`` (C,) of every sample in the batch."""
    viewmats, Ks = batch["viewmats"][:, view_index], batch["Ks"][:, view_index]
    target = batch[f"{target_prefix}_rgb"][:, view_index]
    mask = batch[f"{target_prefix}_mask"][:, view_index]
    H, W = target.shape[-2:]
    rgb, alpha = render_views(splatter, viewmats, Ks, W, H)
    mse = F.mse_loss(rgb, target)
    mask_loss = F.mse_loss(alpha, mask)
    loss = mse + mask_weight * mask_loss
    parts = {"render_mse": float(mse.detach()), "mask": float(mask_loss.detach())}
    if lpips_fn is not None and lpips_weight > 0:
        lp = lpips_fn(rgb.flatten(0, 1) * 2 - 1, target.flatten(0, 1) * 2 - 1).mean()
        loss = loss + lpips_weight * lp
        parts["lpips"] = float(lp.detach())
    return loss, parts
