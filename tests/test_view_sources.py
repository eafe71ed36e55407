"""Multi-view sources: the simulator and rendered Gaussians agree; Zero123++ (local weights only)."""

import numpy as np
import pytest
import torch
from PIL import Image

from partrm_gym.cameras import canonical_rig
from partrm_gym.gaussians import Gaussians
from partrm_gym.gt_splatter import gt_splatter
from partrm_gym.model.view_sources import ViewSourceUnavailable, Zero123PlusPlusSource
from partrm_gym.rendering import render_images
from partrm_gym.scene import Scene


def test_rendered_gt_splatter_reproduces_the_simulator_views():
    """The two places views come from — the simulator and rendered Gaussians — agree on a GT splatter."""
    cams = canonical_rig(48)
    with Scene.procedural("storage_door", 2) as scene:
        sim = np.stack([f.rgb for f in scene.render_views(cams)])
        splat = torch.from_numpy(gt_splatter(scene, cams))[None]
    imagined = render_images(Gaussians.from_splatter(splat), cams).rgb
    assert sim.shape == imagined.shape == (4, 48, 48, 3) and imagined.dtype == np.uint8
    err = ((imagined.astype(np.float64) - sim) / 255.0) ** 2
    assert 10 * np.log10(1 / err.mean()) > 20


def test_zero123pp_without_weights_explains(tmp_path):
    with pytest.raises(ViewSourceUnavailable, match="Zero123\\+\\+ weights not found.*model_index.json"):
        Zero123PlusPlusSource(tmp_path / "none")


def test_zero123pp_grid_is_split_into_the_rig():
    tiles = [np.full((32, 32, 3), 20 * (k + 1), np.uint8) for k in range(6)]
    grid = np.concatenate([np.concatenate(tiles[r * 2:(r + 1) * 2], axis=1) for r in range(3)], axis=0)

    class FakePipeline:
        def __call__(self, image, num_inference_steps):
            assert isinstance(image, Image.Image)
            return Image.fromarray(grid)

    photo = np.full((40, 40, 3), 7, np.uint8)
    views = Zero123PlusPlusSource(pipeline=FakePipeline()).views(photo, 16)
    assert views.shape == (4, 16, 16, 3)
    assert views[0].max() == 7  # the photo itself is view 0
    assert [int(views[v].mean()) for v in (1, 2, 3)] == [40, 80, 100]  # tiles 1, 3, 4
