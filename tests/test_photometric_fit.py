"""Fitting Gaussians to camera images: the reset reconstruction's fit to the camera, and the env that uses it."""

import numpy as np
import pytest
import torch
from conftest import MINI

from partrm_gym.cameras import canonical_rig
from partrm_gym.envs.world_model_env import PartRMEnv
from partrm_gym.errors import UsageError
from partrm_gym.gaussians import Gaussians
from partrm_gym.model.partrm import PartRM
from partrm_gym.model.world_model import WorldModel
from partrm_gym.photometric_fit import PhotometricFit, ViewFit, fit_to_view
from partrm_gym.rendering import render_images


def _scene(seed: int, n: int = 96) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    quats = torch.nn.functional.normalize(torch.randn(1, n, 4, generator=g), dim=-1)
    return Gaussians(torch.randn(1, n, 3, generator=g) * 0.25, torch.rand(1, n, generator=g) * 0.8 + 0.1,
                     torch.rand(1, n, 3, generator=g) * 0.05 + 0.03, quats, torch.rand(1, n, 3, generator=g))


def _error(g: Gaussians, cameras: list, images: np.ndarray) -> float:
    rgb = render_images(g, cameras)[0]
    return float(np.abs(rgb.astype(np.float32) - images.astype(np.float32)).mean())


def test_fit_to_view_moves_a_reconstruction_towards_the_camera_image():
    cameras = canonical_rig(24)[:1]
    target = _scene(0)
    images = render_images(target, cameras)[0]
    start = _scene(0)
    start = Gaussians(start.means + 0.03, start.opacities * 0.6, start.scales, start.quats,
                      start.colors.flip(-1))  # shifted, fainter, other colours
    before = _error(start, cameras, images)
    fitted = fit_to_view(start, cameras, images, ViewFit(steps=30))
    after = _error(fitted, cameras, images)
    assert after < 0.7 * before, (before, after)
    assert torch.equal(fitted.quats, start.quats)  # orientations are not fitted
    assert not fitted.means.requires_grad and fitted.means.shape == start.means.shape


def test_fit_to_view_with_no_steps_returns_the_input_and_works_on_inference_tensors():
    cameras = canonical_rig(16)[:1]
    g = _scene(1)
    images = render_images(g, cameras)[0]
    assert fit_to_view(g, cameras, images, ViewFit(steps=0)) is g
    with torch.inference_mode():
        frozen = _scene(2)  # like the world model's outputs
    fitted = fit_to_view(frozen, cameras, images, ViewFit(steps=2))
    assert torch.isfinite(fitted.means).all() and not torch.equal(fitted.colors, frozen.colors)


def test_fit_to_view_rejects_bad_input():
    cameras = canonical_rig(16)[:1]
    g = _scene(1)
    images = render_images(g, cameras)[0]
    with pytest.raises(ValueError, match="uint8"):
        fit_to_view(g, cameras, images.astype(np.float32) / 255)
    with pytest.raises(ValueError, match="one per camera"):
        fit_to_view(g, cameras, images[:, :8])
    two = Gaussians(*(torch.cat([t, t]) for t in (g.means, g.opacities, g.scales, g.quats, g.colors)))
    with pytest.raises(ValueError, match="B = 1"):
        fit_to_view(two, cameras, images)
    with pytest.raises(ValueError, match="steps"):
        PhotometricFit(steps=-1, lr=0.1)


def test_env_fits_its_reset_reconstruction_to_the_camera():
    model = WorldModel(PartRM(MINI), MINI)
    states = {}
    for steps in (0, 5):
        torch.manual_seed(0)
        env = PartRMEnv(world_model=model, category="drawer", resolution=32, max_steps=3, view_fit_steps=steps)
        _, info = env.reset(seed=4)
        states[steps] = (env.state, _error(env.state.base, [env.camera], info["sim_image"][None]))
        env.close()
    (plain, plain_error), (fitted, fitted_error) = states[0], states[5]
    assert torch.equal(plain.base.quats, fitted.base.quats)  # the same reconstruction, fitted
    assert float((plain.base.means - fitted.base.means).abs().max()) < 0.05
    assert not torch.equal(plain.base.colors, fitted.base.colors)
    assert fitted_error < plain_error  # nearer the camera's view of the initial state
    with pytest.raises(UsageError, match="view_fit_steps"):
        PartRMEnv(world_model=model, category="drawer", view_fit_steps=-1)
