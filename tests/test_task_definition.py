"""One task in both worlds: control modes, one success rule and one reward, checked for both env families."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import MINI
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from partrm_gym.app.bench.actions import anchoring_rates
from partrm_gym.drags import drags_between_states
from partrm_gym.envs.sim_env import PartRMSimEnv
from partrm_gym.envs.task import (
    JointReadout,
    TaskConfig,
    action_for_drag,
    compute_reward,
    drag_from_action,
    evaluate_joint,
    object_mask,
)
from partrm_gym.envs.world_model_env import PartRMEnv
from partrm_gym.errors import UsageError
from partrm_gym.model.partrm import PartRM
from partrm_gym.model.world_model import WorldModel

MODES = ("object_drag", "pixel_drag")
JOINT_KEYS = {"joint_value", "joint_fraction", "goal_fraction", "joint_error", "is_success"}


def _world_model() -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(PartRM(MINI), MINI)


def _env(family: str, mode: str, wm: WorldModel | None = None, **kwargs) -> gym.Env:
    task = {"category": "drawer", "resolution": 40, "max_steps": 3, "control_mode": mode, **kwargs}
    return PartRMSimEnv(**task) if family == "twin" else PartRMEnv(world_model=wm or _world_model(), **task)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", ["twin", "world model"])
def test_both_families_pass_both_checkers_in_both_control_modes(family, mode):
    env = _env(family, mode)
    check_env(env, skip_render_check=False)
    sb3_check_env(env)
    obs, info = env.reset(seed=3)
    assert JOINT_KEYS <= set(info) and info["is_success"] in (True, False)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert JOINT_KEYS <= set(info) and np.isfinite(reward) and "image_distance" in info
    env.close()


def test_object_drag_snaps_onto_the_object_and_pulls_by_drag_scale():
    image = np.full((20, 20, 3), 255, np.uint8)
    image[5:8, 10:16] = 90  # the object: rows 5-7, columns 10-15
    cfg = TaskConfig(control_mode="object_drag", drag_scale=0.5)
    drag = drag_from_action(cfg, np.array([-1.0, -1.0, 0.0, 0.0]), image)  # the box's top-left corner
    assert drag[:2] == pytest.approx([10.5 / 20, 5.5 / 20]) and drag[2:] == pytest.approx(drag[:2])
    drag = drag_from_action(cfg, np.array([1.0, 1.0, 1.0, -0.4]), image)  # bottom-right, pulled right and up
    assert drag[:2] == pytest.approx([15.5 / 20, 7.5 / 20])
    assert drag[2] == 1.0 and drag[3] == pytest.approx(7.5 / 20 - 0.2)  # clipped to the image; 0.4 x 0.5 up
    image[5:8, 12:14] = 255  # a hole in the middle: the box centre snaps to the nearest object pixel
    drag = drag_from_action(cfg, np.zeros(4), image)
    assert object_mask(image)[int(drag[1] * 20), int(drag[0] * 20)]
    blank = np.full((20, 20, 3), 255, np.uint8)  # nothing in view: the image centre
    assert drag_from_action(cfg, np.zeros(4), blank)[:2] == pytest.approx([0.5, 0.5])
    pixel = TaskConfig(control_mode="pixel_drag")
    assert drag_from_action(pixel, np.array([-1, 1, 0, 0.5]), image) == pytest.approx([0, 1, 0.5, 0.75])
    with pytest.raises(UsageError, match="control_mode='grasp'.*object_drag"):
        TaskConfig(control_mode="grasp")


def test_action_for_drag_inverts_drag_from_action_in_both_control_modes():
    """A pixel drag that starts on an object pixel's centre and pulls within drag_scale is the same drag once turned
    into an action of either mode; one that does not becomes the nearest drag (start snapped, pull clipped)."""
    rng = np.random.default_rng(0)
    image = np.full((24, 24, 3), 255, np.uint8)
    image[4:15, 6:20] = 90
    image[8:10, 9:12] = 255  # a hole: not every box point is on the object
    rows, cols = np.nonzero(object_mask(image))
    for mode in ("object_drag", "pixel_drag"):
        cfg = TaskConfig(control_mode=mode, drag_scale=0.5)
        for _ in range(50):
            k = rng.integers(len(rows))
            start = np.array([(cols[k] + 0.5) / 24, (rows[k] + 0.5) / 24])
            drag = np.concatenate([start, np.clip(start + rng.uniform(-0.45, 0.45, 2), 0, 1)])
            action = action_for_drag(cfg, drag, image)
            assert action.shape == (4,) and np.all(np.abs(action) <= 1)
            assert drag_from_action(cfg, action, image) == pytest.approx(drag, abs=1e-6)  # float32 actions
    cfg = TaskConfig(control_mode="object_drag", drag_scale=0.5)
    off = drag_from_action(cfg, action_for_drag(cfg, np.array([0.02, 0.02, 0.98, 0.98]), image), image)
    assert object_mask(image)[int(off[1] * 24), int(off[0] * 24)]  # the start snapped onto the object
    assert off[2:] - off[:2] == pytest.approx([0.5, 0.5])  # the pull clipped to drag_scale


@pytest.mark.parametrize("family", ["twin", "world model"])
def test_random_object_drags_always_start_on_the_object(family):
    env = _env(family, "object_drag")
    on_object, _ = anchoring_rates(env, episodes=2, actions=50)
    assert on_object == 1.0
    env.close()


def test_random_object_drags_find_the_task_part_far_more_often_in_the_twin():
    rates = {}
    for mode in MODES:
        env = PartRMSimEnv(category="drawer", split="test", control_mode=mode)
        rates[mode] = anchoring_rates(env, episodes=6, actions=150)
        env.close()
    assert rates["object_drag"][1] >= 3 * rates["pixel_drag"][1] > 0, rates


def test_success_and_reward_read_the_task_joint():
    cfg = TaskConfig()
    assert evaluate_joint(cfg, JointReadout(0.55, 0.6, 0.0, 1.0))["is_success"]
    assert not evaluate_joint(cfg, JointReadout(0.45, 0.6, 0.0, 1.0))["is_success"]
    assert evaluate_joint(cfg, JointReadout(0.45, 0.6, 0.0, 1.0))["joint_error"] == pytest.approx(0.15)
    # a fraction of the range
    assert evaluate_joint(cfg, JointReadout(0.2, 0.5, -1.0, 1.0))["joint_fraction"] == pytest.approx(0.6)
    # halfway to the goal: half the dense reward; reaching it: the rest plus the bonus
    assert compute_reward(cfg, 0.25, 0.5, 0.5, False) == pytest.approx(0.5)
    assert compute_reward(cfg, 0.05, 0.25, 0.5, True) == pytest.approx(0.4 + cfg.success_bonus)
    assert compute_reward(TaskConfig(reward_mode="sparse"), 0.05, 0.25, 0.5, True) == 1.0

    env = PartRMSimEnv(category="drawer", control_mode="pixel_drag")
    _, info = env.reset(seed=1)
    task = env.task
    drag = drags_between_states(env.scene, task.joint, task.initial, task.goal, env.camera, max_drags=1)[0]
    _, reward, terminated, _, after = env.step((drag * 2 - 1).astype(np.float32))
    joint = env.scene.joints[task.joint]
    assert after["joint_fraction"] == pytest.approx((env.scene.get_joint_states()[task.joint] - joint.lower)
                                                    / joint.range)
    assert terminated == after["is_success"] == (after["joint_error"] <= cfg.joint_success_tolerance)
    expected = (info["joint_error"] - after["joint_error"]) / info["joint_error"] + after["is_success"]
    assert reward == pytest.approx(expected)
    env.close()


def test_world_model_success_is_the_imagined_joint():
    env = _env("world model", "pixel_drag")
    _, info = env.reset(seed=2)
    value = info["joint_value"]
    lower, upper = env.joint_readout().lower, env.joint_readout().upper
    assert (lower, upper) == info["joint_limits"]
    assert info["joint_fraction"] == pytest.approx((value - lower) / (upper - lower))
    assert info["is_success"] == (info["joint_error"] <= env.cfg.joint_success_tolerance)
    env.close()
    regenerate = _env("world model", "pixel_drag", transition="regenerate")
    _, info = regenerate.reset(seed=2)
    assert "joint_fraction" not in info and info["is_success"] in (True, False)  # no joint: the image rule
    assert regenerate.joint_readout() is None
    regenerate.close()
