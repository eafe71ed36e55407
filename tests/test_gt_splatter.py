"""GT splatter images reproduce the simulator when rendered back into its views.

The back-projection alone does not (one ~pixel-wide Gaussian per pixel blurs colour edges
under 3DGS's 0.3 px² dilation: ~24 dB on the canonical foreground at 64²); fitted to the 4
canonical views (what the dataset stores) it reaches the 30 dB target on average over the
categories, and improves the evaluation views (the model's upper bound) as well. Figures per
category: ``partrm-gym bench gt-splatter``. The tests assert the measured floors so a regression
(e.g. a half-pixel misalignment between the simulator and the rasterizer) fails.
"""

import cv2
import numpy as np
import pytest
import torch

from partrm_gym.app.bench.gt_splatter import gt_splatter_psnr
from partrm_gym.assets import CATEGORIES
from partrm_gym.cameras import canonical_rig, stack_cameras
from partrm_gym.gaussians import OPACITY, RGB, SCALE, SPLATTER_CHANNELS, Gaussians
from partrm_gym.gt_splatter import SplatterFit, fit_splatter, gt_splatter
from partrm_gym.rendering import rasterize
from partrm_gym.scene import Scene

RES = 64
SEED = 3
CANONICAL_PSNR_TARGET = 30.0  # the design target, on the foreground; met on average over the categories
CANONICAL_PSNR_FLOOR = 27.0  # every category (thin lids are the hardest; bench: worst object 27.5 dB)
EVAL_PSNR_FLOOR = 24.0  # bench: 24.6-30.1 dB per category


@pytest.fixture(scope="module")
def fidelity():
    """{category: ((canonical, evaluation) back-projected, (canonical, evaluation) fitted)}."""
    return {c: (gt_splatter_psnr(c, SEED, RES, RES, SplatterFit(steps=0)), gt_splatter_psnr(c, SEED, RES, RES))
            for c in CATEGORIES}


def test_fitted_gt_splatter_reproduces_canonical_views(fidelity):
    fitted = {c: f[1][0] for c, f in fidelity.items()}
    assert np.mean(list(fitted.values())) >= CANONICAL_PSNR_TARGET, fitted
    assert min(fitted.values()) >= CANONICAL_PSNR_FLOOR, fitted


def test_fit_improves_on_back_projection(fidelity):
    plain = np.array([f[0] for f in fidelity.values()])
    fitted = np.array([f[1] for f in fidelity.values()])
    assert (fitted[:, 0] > plain[:, 0] + 3).all(), fidelity  # canonical views: every category
    assert fitted[:, 1].mean() > plain[:, 1].mean(), fidelity  # evaluation views: on average
    assert (fitted[:, 1] > plain[:, 1] - 1).all() and fitted[:, 1].min() >= EVAL_PSNR_FLOOR, fidelity


def test_fit_keeps_geometry_and_placeholders():
    with Scene.procedural("laptop", 0) as scene:
        cams = canonical_rig(32)
        plain = gt_splatter(scene, cams, SplatterFit(steps=0))
        fitted = gt_splatter(scene, cams, SplatterFit(steps=5, max_scale_factor=2.0))
    fitted_channels = {*range(SCALE.start, SCALE.stop), *range(RGB.start, RGB.stop)}
    unchanged = [c for c in range(SPLATTER_CHANNELS) if c not in fitted_channels]
    np.testing.assert_array_equal(fitted[:, unchanged], plain[:, unchanged])
    off = plain[:, OPACITY.start] == 0  # (V, h, w) background placeholders: untouched
    scales = fitted[:, SCALE].transpose(1, 0, 2, 3), plain[:, SCALE].transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(scales[0][:, off], scales[1][:, off])
    ratio = scales[0][:, ~off] / scales[1][:, ~off]
    assert ratio.min() >= 0.5 - 1e-6 and ratio.max() <= 2.0 + 1e-6 and not np.allclose(ratio, 1)
    assert fitted[:, RGB].min() >= 0 and fitted[:, RGB].max() <= 1


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


def test_bench_table(tmp_path):
    from partrm_gym.app.cli import main

    out = tmp_path / "gt.md"
    assert main(["bench", "gt-splatter", "--resolution", "24", "--objects", "1", "--fit-steps", "5",
                 "--out", str(out)]) == 0
    rows = [line.split("|")[1:-1] for line in out.read_text().splitlines() if line.startswith("| ")]
    assert [r[0].strip() for r in rows[1:]] == [*CATEGORIES, "mean"]
    mean = [float(x) for x in rows[-1][1:]]
    per_category = np.array([[float(x) for x in r[1:]] for r in rows[1:-1]])
    assert mean[4] == per_category[:, 4].min()  # worst object: a min over the categories
    assert mean[2] > mean[0]  # fitted beats back-projected on the canonical views


def test_fit_rejects_mismatched_images():
    cams = canonical_rig(16)
    with Scene.procedural("oven", 0) as scene:
        splat = gt_splatter(scene, cams, SplatterFit(steps=0))
        images = np.stack([f.rgb for f in scene.render_views(cams)])
    with pytest.raises(ValueError, match="must be uint8"):
        fit_splatter(splat, images / 255.0, cams)
    with pytest.raises(ValueError, match="do not match 4 cameras of 16x16"):
        fit_splatter(splat, images[:, :8], cams)
