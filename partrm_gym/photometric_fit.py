"""Fitting Gaussians to camera images by gradient descent on the rendering (3DGS-style optimisation).

One loop serves two callers:

* :func:`partrm_gym.gt_splatter.fit_splatter` fits the colours and sizes of the simulator's back-projected
  splatter to its 4 input views (the dataset's upper bound);
* :func:`fit_to_view` fits the world model's reset reconstruction to the camera's first observation, so that
  the imagined state shows its part borders where the camera does (docs/articulation.md).

Colours are fitted as logits, opacities as logits, sizes as a bounded factor ``f^tanh(s)`` of their start (so a
fit cannot blow a Gaussian up), positions as an offset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from partrm_gym.cameras import Camera, stack_cameras
from partrm_gym.gaussians import Gaussians
from partrm_gym.rendering import BACKGROUND_RGB, rasterize

COLOUR_EPS = 1e-3  # colours are fitted as logits; keeps the initial logit finite
OPACITY_EPS = 1e-4  # the same for opacities (most of a reconstruction's Gaussians are near 0)


@dataclass(frozen=True)
class PhotometricFit:
    """What is fitted and how fast: Adam at ``lr`` on colours and sizes (and opacities if ``fit_opacities``),
    at ``position_lr`` on positions (0: positions stay); a size stays within [1/f, f] × its start."""

    steps: int
    lr: float
    max_scale_factor: float = 3.0
    position_lr: float = 0.0
    fit_opacities: bool = False

    def __post_init__(self) -> None:
        if self.steps < 0 or not self.lr > 0 or self.position_lr < 0:
            raise ValueError(f"PhotometricFit: steps must be >= 0, lr > 0 and position_lr >= 0, got steps="
                             f"{self.steps}, lr={self.lr}, position_lr={self.position_lr}")
        if not self.max_scale_factor > 1:
            raise ValueError(f"PhotometricFit: max_scale_factor must be > 1, got {self.max_scale_factor}")


def fit_gaussians(gaussians: Gaussians, viewmats: torch.Tensor, Ks: torch.Tensor, targets: torch.Tensor,
                  fit: PhotometricFit, active: torch.Tensor | None = None) -> Gaussians:
    """``gaussians`` fitted so that their renders match ``targets``.

    Args:
        gaussians: B scenes of N Gaussians, the start of the fit (not changed).  # [B, N, ...]
        viewmats, Ks: the cameras of ``targets`` (:func:`~partrm_gym.cameras.stack_cameras`).  # [C, 4, 4], [C, 3, 3]
        targets: RGB in [0, 1] per scene and camera.  # [B, C, H, W, 3]
        fit: what is fitted, for how many steps.
        active: which Gaussians are fitted (default: all); the others keep their values.  # [B, N] bool

    Returns the fitted Gaussians (no gradient). The loss is the sum over scenes of each scene's mean squared
    error, so each scene gets the gradients of fitting it alone. Runs with gradients even when called under
    ``torch.no_grad`` or ``torch.inference_mode`` (the world model's outputs are inference tensors).
    """
    with torch.inference_mode(False), torch.enable_grad():
        start = Gaussians(*(t.detach().clone() for t in (gaussians.means, gaussians.opacities, gaussians.scales,
                                                           gaussians.quats, gaussians.colors)))
        targets = targets.detach().clone()
        on = torch.ones(start.means.shape[:2], dtype=torch.bool, device=start.means.device) if active is None \
            else active.to(start.means.device)
        on3 = on[..., None]
        colour_logit = torch.logit(start.colors.clamp(COLOUR_EPS, 1 - COLOUR_EPS)).requires_grad_()
        size_logit = torch.zeros_like(start.scales).requires_grad_()  # 0: the start size; ±inf: ×f^±1
        fitted_params = [colour_logit, size_logit]
        opacity_logit = None
        if fit.fit_opacities:
            opacity_logit = torch.logit(start.opacities.clamp(OPACITY_EPS, 1 - OPACITY_EPS)).requires_grad_()
            fitted_params.append(opacity_logit)
        groups = [{"params": fitted_params, "lr": fit.lr}]
        offset = None
        if fit.position_lr > 0:
            offset = torch.zeros_like(start.means).requires_grad_()
            groups.append({"params": [offset], "lr": fit.position_lr})
        optimizer = torch.optim.Adam(groups)
        H, W = targets.shape[2:4]

        def fitted() -> Gaussians:
            factor = torch.exp(math.log(fit.max_scale_factor) * torch.tanh(size_logit))
            g = replace(start, scales=torch.where(on3, start.scales * factor, start.scales),
                        colors=torch.where(on3, torch.sigmoid(colour_logit), start.colors))
            if opacity_logit is not None:
                g = replace(g, opacities=torch.where(on, torch.sigmoid(opacity_logit), start.opacities))
            if offset is not None:
                g = replace(g, means=torch.where(on3, start.means + offset, start.means))
            return g

        for _ in range(fit.steps):
            render = rasterize(fitted(), viewmats, Ks, W, H, background=BACKGROUND_RGB)
            loss = ((render.rgb - targets) ** 2).mean(dim=(1, 2, 3, 4)).sum()  # per-scene means: scenes independent
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            out = fitted()
    return Gaussians(*(t.detach() for t in (out.means, out.opacities, out.scales, out.quats, out.colors)))


@dataclass(frozen=True)
class ViewFit:
    """How the world-model env fits its reset reconstruction to the camera's first observation
    (``PartRMEnv(view_fit_steps=...)``, off by default). The rates and the 10 steps were chosen on held-out
    tasks that are not ``bench rollout``'s (docs/articulation.md): positions at 0.002, colours, opacities and
    sizes at 0.05."""

    steps: int = 10
    lr: float = 0.05
    position_lr: float = 0.002

    def photometric(self) -> PhotometricFit:
        return PhotometricFit(self.steps, self.lr, position_lr=self.position_lr, fit_opacities=True)


def fit_to_view(gaussians: Gaussians, cameras: Sequence[Camera], images: np.ndarray, fit: ViewFit = ViewFit()
                ) -> Gaussians:
    """Fit one reconstruction's positions, colours, opacities and sizes to camera images.

    Args:
        gaussians: one scene (B = 1), e.g. the world model's reconstruction at reset.  # [1, N, ...]
        cameras: the C cameras of ``images``.
        images: uint8 RGB, as a camera gives it.  # [C, H, W, 3]
        fit: steps and learning rates.

    Returns the fitted Gaussians, on the device of ``gaussians``.

    Example::

        state = model.predict_articulated(views)[0]
        base = fit_to_view(state.base, [camera], image[None])      # image: the camera's (H, W, 3) uint8 view
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape != (len(cameras), cameras[0].height, cameras[0].width, 3):
        raise ValueError(f"fit_to_view: images must be uint8 ({len(cameras)}, {cameras[0].height}, "
                         f"{cameras[0].width}, 3), one per camera; got {images.dtype} {images.shape}")
    if gaussians.batch_size != 1:
        raise ValueError(f"fit_to_view fits one scene (B = 1), got B = {gaussians.batch_size}")
    if fit.steps == 0:
        return gaussians
    device = gaussians.means.device
    viewmats, Ks = stack_cameras(list(cameras), device=device)
    targets = torch.from_numpy(images).to(device).float()[None] / 255.0
    return fit_gaussians(gaussians, viewmats, Ks, targets, fit.photometric())
