"""The PyBullet twin environments: Gymnasium/SB3 API checks, determinism, bad input, a solvable task."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import partrm_gym  # noqa: F401  (registers the env IDs)
from partrm_gym.drags import drags_between_states
from partrm_gym.registration import ENV_CATEGORIES


@pytest.mark.parametrize("name", sorted(ENV_CATEGORIES))
def test_twin_envs_pass_api_checkers(name):
    env = gym.make(f"PartRMSim-{name}-v0")
    check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)
    env.close()


def _rollout(seed, actions):
    env = gym.make("PartRMSim-Articulated-v0")
    obs, info = env.reset(seed=seed)
    out = [(obs["image"].copy(), info["joint_state"])]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs["image"].copy(), info["joint_state"], r, term, trunc))
    env.close()
    return out


def test_same_seed_same_episode():
    actions = np.random.default_rng(0).uniform(-1, 1, (4, 4)).astype(np.float32)
    a, b = _rollout(3, actions), _rollout(3, actions)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            assert np.array_equal(u, v)
    c = _rollout(4, actions)
    assert not np.array_equal(a[0][0], c[0][0])


def test_bad_actions_and_lifecycle():
    env = gym.make("PartRMSim-Laptop-v0").unwrapped
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.zeros(4, np.float32))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan, 0, 0, 0], np.float32))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        env.step(np.zeros(3, np.float32))
    obs, *_ = env.step(np.array([5.0, -7.0, 3.0, 0.0], np.float32))  # out of range: clipped, documented
    assert obs["image"].shape == (64, 64, 3)
    env.close()
    with pytest.raises(RuntimeError, match="after close"):
        env.step(np.zeros(4, np.float32))


def test_oracle_drag_solves_the_task():
    """A drag computed from the true initial and goal states reaches the goal in one step."""
    successes = 0
    for seed in range(5):
        env = gym.make("PartRMSim-Drawer-v0", control_mode="pixel_drag").unwrapped
        env.reset(seed=seed)
        task = env.task
        drags = drags_between_states(env.scene, task.joint, task.initial, task.goal, env.camera, max_drags=1)
        if len(drags) == 0:
            env.close()
            continue
        _, reward, terminated, _, info = env.step((drags[0] * 2 - 1).astype(np.float32))
        successes += info["is_success"]
        assert terminated == info["is_success"]
        assert reward > 0  # the joint moved towards its goal
        env.close()
    assert successes >= 4
