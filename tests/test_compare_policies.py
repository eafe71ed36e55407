"""The comparison tool and the observation-only policies."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import MINI

import partrm_gym  # noqa: F401
from partrm_gym.app.compare import compare
from partrm_gym.model.partrm import PartRM
from partrm_gym.model.world_model import WorldModel
from partrm_gym.policies.scripted import ScriptedPolicy, make_policy


def test_compare_writes_outputs(tmp_path):
    torch.manual_seed(0)
    rows = compare("Drawer", "scripted", 2, 0, tmp_path, world_model=WorldModel(PartRM(MINI), MINI), resolution=32)
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert all(np.isfinite(r["psnr"]) and 0 <= r["ssim"] <= 1 for r in rows)
    for name in ("compare.gif", "compare.csv", "compare.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_scripted_policy_beats_random_in_the_twin():
    """Observation-only scripted drags reach the goal in the twin more often than random ones."""
    def success_rate(policy_name, episodes=6):
        wins = 0
        for ep in range(episodes):
            env = gym.make("PartRMSim-Drawer-v0", max_steps=4, control_mode="pixel_drag")
            policy = make_policy(policy_name, ep)
            obs, _ = env.reset(seed=100 + ep)
            for _ in range(4):
                obs, _, terminated, truncated, info = env.step(policy(obs))
                if terminated or truncated:
                    break
            wins += info["is_success"]
            env.close()
        return wins / episodes

    assert success_rate("scripted") > success_rate("random")


def test_policy_edge_cases():
    blank = {"image": np.full((16, 16, 3), 255, np.uint8), "goal": np.full((16, 16, 3), 255, np.uint8)}
    a = ScriptedPolicy(0)(blank)
    assert a.shape == (4,) and np.all(np.abs(a) <= 1)
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("genius")


def test_central_scripted_policy_is_a_function_of_the_observation():
    """``start="central"`` grabs the changed pixel nearest the changed region's centre, whatever the seed."""
    image = np.full((16, 16, 3), 255, np.uint8)
    goal = image.copy()
    image[4:9, 2:7] = 40  # the part now: centre (6, 4)
    goal[4:9, 9:14] = 40  # where it should be: shifted 7 pixels right
    obs = {"image": image, "goal": goal}
    drags = [ScriptedPolicy(seed, start="central")(obs) for seed in range(3)]
    assert all(np.array_equal(d, drags[0]) for d in drags)
    x0, y0, x1, y1 = (drags[0] + 1) / 2 * 16 - 0.5  # back to pixel indices
    assert (round(x0), round(y0)) == (4, 6) and round(x1 - x0) == 7 and round(y1 - y0) == 0
    random_starts = {tuple(ScriptedPolicy(seed)(obs)[:2]) for seed in range(8)}
    assert len(random_starts) > 1  # the default grabs a random changed pixel
    with pytest.raises(ValueError, match="start must be"):
        ScriptedPolicy(start="middle")
