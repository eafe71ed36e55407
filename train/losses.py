"""The training losses of the three stages (DESIGN.md "Training").

* splatter loss (stages 0 and 1): per-pixel L2 between predicted and GT splatter images, over
  the channels that exist: where the GT has no Gaussian (background, opacity 0) only the
  opacity is compared — its position, scale, rotation and colour are placeholders the
  pixel-aligned head could not (and need not) reproduce;
* render loss (stages 0 and 2): the predicted Gaussians rendered into dataset views, MSE
  to the simulator images, MSE between rendered alpha and the object mask, and LPIPS when
  a local backbone is configured.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from partrm_gym.gaussians import OPACITY, RGB, ROTATION, SCALE, SPLATTER_CHANNELS, XYZ, Gaussians
from partrm_gym.rendering import rasterize
from partrm_gym.scene import SIM_BACKGROUND


def splatter_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per channel and pixel, (B, V, 14, h, w); background pixels count their opacity only.

    Quaternions q and -q are the same rotation: each predicted one is compared with the sign of the
    GT that is nearer.
    """
    on = (target[:, :, OPACITY] > 0).to(pred.dtype)  # (B, V, 1, h, w)
    sq = (pred - target) ** 2
    q_pred, q_gt = pred[:, :, ROTATION], target[:, :, ROTATION]
    sq_rot = torch.minimum(((q_pred - q_gt) ** 2).sum(2, keepdim=True), ((q_pred + q_gt) ** 2).sum(2, keepdim=True))
    per_pixel = sq[:, :, OPACITY] + on * (sq[:, :, XYZ].sum(2, keepdim=True) + sq[:, :, SCALE].sum(2, keepdim=True)
                                          + sq_rot + sq[:, :, RGB].sum(2, keepdim=True))
    return per_pixel.mean() / SPLATTER_CHANNELS


def render_views(splatter: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, width: int,
                 height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Render (B, V, 14, h, w) splatter images into C cameras per sample: RGB (B, C, 3, H, W), alpha (B, C, 1, H, W)."""
    out = rasterize(Gaussians.from_splatter(splatter), viewmats, Ks, width, height,
                    background=torch.tensor(SIM_BACKGROUND, device=splatter.device))
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
