"""GT splatter images reproduce the simulator when rendered back into its views.

DESIGN.md asks for >= 30 dB on the canonical foreground; that is not reached at 64²
(``partrm-gym bench gt-splatter``: 21-26 dB per category with antialiased rendering, the
default). One Gaussian per pixel, about a pixel wide, blurs colour edges and, with
antialiased opacity, covers ~97% rather than 100% of a surface, so thin parts show what is
behind them. The evaluation views (the model's upper bound) reach 24-29 dB. The tests assert
the measured floors so a regression (e.g. a half-pixel misalignment between the simulator and
the rasterizer, which costs several dB) fails.
"""

import cv2
import numpy as np
import pytest
import torch

from partrm_gym.assets import CATEGORIES
from partrm_gym.bench.gt_splatter import gt_splatter_psnr
from partrm_gym.cameras import canonical_rig, stack_cameras
from partrm_gym.gaussians import Gaussians
from partrm_gym.gt_splatter import gt_splatter
from partrm_gym.rendering import rasterize
from partrm_gym.scene import Scene

RES = 64
FOREGROUND_PSNR_FLOOR = 20.0  # measured 20.9-26.3 dB per category for this object at 64² (see module docstring)
EVAL_PSNR_FLOOR = 23.0  # measured 24.4-29.3 dB


@pytest.mark.parametrize("category", CATEGORIES)
def test_gt_splatter_reproduces_canonical_views(category):
    canonical, evaluation = gt_splatter_psnr(category, 3, RES, RES)
    assert canonical >= FOREGROUND_PSNR_FLOOR, f"{category}: {canonical:.1f} dB on the canonical foreground"
    assert evaluation >= EVAL_PSNR_FLOOR, f"{category}: {evaluation:.1f} dB in the evaluation views"


def test_gt_splatter_silhouette():
    with Scene.procedural("oven", 1) as scene:
        cams = canonical_rig(RES)
        frames = scene.render_views(cams)
        splat = torch.from_numpy(gt_splatter(scene, cams))[None]
    out = rasterize(Gaussians.from_splatter(splat), *stack_cameras(cams), RES, RES)
    mask = np.stack([f.object_mask for f in frames])
    kernel = np.ones((3, 3), np.uint8)
    inside = torch.from_numpy(np.stack([cv2.erode(m.astype(np.uint8), kernel) for m in mask]).astype(bool))
    outside = torch.from_numpy(~np.stack([cv2.dilate(m.astype(np.uint8), kernel) for m in mask]).astype(bool))
    alpha = out.alpha[0, ..., 0]
    # antialiased: silhouette pixels are partly covered; a surface only one view sees is ~84% opaque
    # (one ~pixel-wide Gaussian per pixel), one that several views see is opaque: measured 0.95 inside
    assert alpha[torch.from_numpy(mask)].mean() > 0.9
    assert alpha[inside].mean() > 0.93
    # beyond one pixel of the silhouette: clear but for the tails of stretched grazing discs (measured max 0.17)
    assert alpha[outside].mean() < 0.005 and alpha[outside].max() < 0.25
    g = Gaussians.from_splatter(splat)
    g.validate()  # unit quaternions, positive scales, opacities in [0, 1]
