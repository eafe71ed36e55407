"""10,000 random steps per env family with the bundled model (slow: `pytest -m slow tests/test_fuzz_slow.py`)."""

import numpy as np
import pytest
import torch

from partrm_gym.envs.sim_env import PartRMSimEnv
from partrm_gym.envs.world_model_env import PartRMEnv
from partrm_gym.model.world_model import WorldModel
from partrm_gym.registration import ENV_CATEGORIES

STEPS = 10_000


@pytest.mark.slow
@pytest.mark.parametrize("family", ["twin", "world_model"])
def test_ten_thousand_random_steps(family):
    wm = WorldModel.from_pretrained() if family == "world_model" else None
    envs = [PartRMEnv(world_model=wm, category=c) if wm else PartRMSimEnv(category=c)
            for c in ENV_CATEGORIES.values()]
    for i, env in enumerate(envs):
        env.reset(seed=i)
    rng = np.random.default_rng(0)
    for k in range(STEPS):
        env = envs[k % len(envs)]
        obs, reward, terminated, truncated, _ = env.step(rng.uniform(-1.5, 1.5, 4).astype(np.float32))
        assert np.isfinite(reward) and obs["image"].dtype == np.uint8
        if wm is not None:
            g = env.gaussians
            assert all(torch.isfinite(t).all() for t in (g.means, g.scales, g.opacities, g.colors))
        if terminated or truncated:
            env.reset()
