"""The training losses of the three stages (docs/training.md "Stages").

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

from partrm_gym.articulation import ARTICULATION_CHANNELS, AXIS, CENTRE, MOVABLE, PIVOT, REVOLUTE
from partrm_gym.gaussians import OPACITY, RGB, ROTATION, SCALE, SPLATTER_CHANNELS, XYZ, Gaussians
from partrm_gym.rendering import BACKGROUND_RGB, rasterize


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


def render_splatter(splatter: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, width: int,
                 height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Render (B, V, 14, h, w) splatter images into C cameras per sample: RGB (B, C, 3, H, W), alpha (B, C, 1, H, W)."""
    out = rasterize(Gaussians.from_splatter(splatter), viewmats, Ks, width, height,
                    background=torch.tensor(BACKGROUND_RGB, device=splatter.device))
    return out.rgb.permute(0, 1, 4, 2, 3), out.alpha.permute(0, 1, 4, 2, 3)


def render_loss(splatter: torch.Tensor, batch: dict[str, torch.Tensor], view_index: torch.Tensor,
                mask_weight: float, lpips_fn=None, lpips_weight: float = 0.0,
                target_prefix: str = "target") -> tuple[torch.Tensor, dict[str, float]]:
    """Render loss over the dataset views ``view_index`` (C,) of every sample in the batch."""
    viewmats, Ks = batch["viewmats"][:, view_index], batch["Ks"][:, view_index]
    target = batch[f"{target_prefix}_rgb"][:, view_index]
    mask = batch[f"{target_prefix}_mask"][:, view_index]
    H, W = target.shape[-2:]
    rgb, alpha = render_splatter(splatter, viewmats, Ks, W, H)
    mse = F.mse_loss(rgb, target)
    mask_loss = F.mse_loss(alpha, mask)
    loss = mse + mask_weight * mask_loss
    parts = {"render_mse": float(mse.detach()), "mask": float(mask_loss.detach())}
    if lpips_fn is not None and lpips_weight > 0:
        lp = lpips_fn(rgb.flatten(0, 1) * 2 - 1, target.flatten(0, 1) * 2 - 1).mean()
        loss = loss + lpips_weight * lp
        parts["lpips"] = float(lp.detach())
    return loss, parts


def articulation_targets(xyz: torch.Tensor, part: torch.Tensor, joint_revolute: torch.Tensor,
                         joint_axis: torch.Tensor, joint_pivot: torch.Tensor) -> torch.Tensor:
    """Per-pixel targets of the articulation head for one state, from its GT splatter and part labels.

    xyz (V, 3, h, w) GT Gaussian centres; part (V, h, w) long: -1 background, 0 static, k + 1 joint k;
    joint_revolute (J,) bool, joint_axis (J, 3), joint_pivot (J, 3) in the normalised world frame.
    Returns (V, 11, h, w) in the head's channel layout (``partrm_gym.articulation.ARTICULATION_CHANNELS``):
    movable (1), revolute (1), axis (3), pivot offset (3: to the nearest point of the axis line), centre
    offset (3: to the mean GT centre of the pixel's part); zeros off movable parts.
    """
    V, _, h, w = xyz.shape
    out = torch.zeros(V, ARTICULATION_CHANNELS, h, w, dtype=xyz.dtype)
    pts = xyz.permute(0, 2, 3, 1)  # (V, h, w, 3)
    for k in range(joint_axis.shape[0]):
        sel = part == k + 1
        if not bool(sel.any()):
            continue
        p = pts[sel]  # (M, 3)
        axis, pivot = joint_axis[k].to(xyz.dtype), joint_pivot[k].to(xyz.dtype)
        on_axis = pivot + ((p - pivot) @ axis)[:, None] * axis
        t = torch.cat([torch.ones(len(p), 1), torch.full((len(p), 1), float(joint_revolute[k])),
                       axis.expand(len(p), 3), on_axis - p, p.mean(0, keepdim=True) - p], dim=1)  # (M, 11)
        out.permute(0, 2, 3, 1)[sel] = t
    return out


def articulation_loss(pred: torch.Tensor, part: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor,
                                                                                              dict[str, float]]:
    """pred (B, V, 11, h, w) activated head output; part (B, V, h, w); target (B, V, 11, h, w), the same layout.

    Movable-vs-static BCE over foreground pixels; on movable pixels BCE of the joint type, 1 - cos of the
    (signed) axis and smooth-L1 of the centre offset; on revolute pixels smooth-L1 of the pivot offset.
    """
    fg, movable = part >= 0, part > 0
    eps = 1e-6
    zero = pred.sum() * 0.0
    bce = F.binary_cross_entropy(pred[:, :, MOVABLE][:, :, 0].clamp(eps, 1 - eps), movable.to(pred.dtype),
                                 reduction="none")
    movable_loss = bce[fg].mean() if bool(fg.any()) else zero
    parts = {"art_movable": float(movable_loss.detach())}
    loss = movable_loss
    if bool(movable.any()):
        m = movable

        def vectors(x: torch.Tensor, channels: slice, where: torch.Tensor) -> torch.Tensor:
            return x[:, :, channels].permute(0, 1, 3, 4, 2)[where]  # (M, C)

        type_loss = F.binary_cross_entropy(vectors(pred, REVOLUTE, m).clamp(eps, 1 - eps), vectors(target, REVOLUTE, m))
        axis_loss = (1 - (vectors(pred, AXIS, m) * vectors(target, AXIS, m)).sum(-1)).mean()
        centre_loss = F.smooth_l1_loss(vectors(pred, CENTRE, m), vectors(target, CENTRE, m), beta=0.02)
        rev = m & (target[:, :, REVOLUTE][:, :, 0] > 0.5)
        pivot_loss = (F.smooth_l1_loss(vectors(pred, PIVOT, rev), vectors(target, PIVOT, rev), beta=0.02)
                      if bool(rev.any()) else zero)
        loss = loss + type_loss + axis_loss + 10.0 * centre_loss + 10.0 * pivot_loss
        parts.update({"art_type": float(type_loss.detach()), "art_axis": float(axis_loss.detach()),
                      "art_centre": float(centre_loss.detach()), "art_pivot": float(pivot_loss.detach())})
    return loss, parts
