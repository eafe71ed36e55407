"""The world-model environment with a tiny random model: API checks, no simulator after reset, bad input."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import MINI
from gymnasium.utils.env_checker import check_env

from partrm_gym.articulation import STATIC, ArticulatedState, PartJoint
from partrm_gym.envs.task import TaskConfig, observation_camera
from partrm_gym.envs.task_part import carve_task_part, claim_task_border, find_task_part
from partrm_gym.envs.world_model_env import PartRMEnv
from partrm_gym.errors import UsageError
from partrm_gym.gaussians import Gaussians
from partrm_gym.model.partrm import PartRM
from partrm_gym.model.world_model import WorldModel
from partrm_gym.rendering import render_images

MINI_ART = MINI  # with the articulation head
NO_HEAD = replace(MINI, articulation_head=False)


@pytest.fixture(params=["articulated", "regenerate"])
def env(request):
    torch.manual_seed(0)
    e = PartRMEnv(world_model=WorldModel(PartRM(MINI_ART), MINI_ART), category="drawer", resolution=32, max_steps=3,
                  transition=request.param)
    yield e
    e.close()


def test_articulated_needs_a_model_with_the_head():
    with pytest.raises(UsageError, match="articulation head"):
        PartRMEnv(world_model=WorldModel(PartRM(NO_HEAD), NO_HEAD), category="drawer")
    with pytest.raises(UsageError, match="transition"):
        PartRMEnv(world_model=WorldModel(PartRM(MINI_ART), MINI_ART), transition="teleport")


def test_articulated_rollout_moves_only_the_grasped_part_and_never_changes_appearance():
    torch.manual_seed(0)
    env = PartRMEnv(world_model=WorldModel(PartRM(MINI_ART), MINI_ART), category="drawer", resolution=32,
                    max_steps=20)
    env.reset(seed=3)
    base = env.state.base
    # a known articulation, so the rollout has parts to move: two halves of the object, one prismatic, one revolute
    x = base.means[0, :, 0]
    labels = torch.where(x > x.median(), 0, 1)
    labels[base.opacities[0] < 0.05] = STATIC
    env.transition.state = ArticulatedState(base, labels, [
        PartJoint("prismatic", np.array([1.0, 0.0, 0.0]), np.zeros(3), -0.3, 0.3, 0.0),
        PartJoint("revolute", np.array([0.0, 0.0, 1.0]), np.zeros(3), -1.0, 1.0, 0.0)])
    env.transition.task_part = 0
    env.transition.render_current()
    rng = np.random.default_rng(0)
    previous = env.gaussians
    moved_steps = 0
    for _ in range(8):
        rows, cols = np.nonzero(np.isfinite(env.transition.depth))
        i = rng.integers(len(rows))
        start = (np.array([cols[i], rows[i]]) + 0.5) / 32 * 2 - 1
        action = np.clip(np.concatenate([start, start + rng.normal(0, 0.3, 2)]), -1, 1).astype(np.float32)
        env.step(action)
        now = env.gaussians
        for name in ("opacities", "scales", "colors"):
            assert torch.equal(getattr(now, name), getattr(base, name)), name
        changed = (now.means[0] != previous.means[0]).any(-1)
        if changed.any():
            moved_steps += 1
            assert len(set(labels[changed].tolist())) == 1 and STATIC not in labels[changed].tolist()
        previous = now
    assert moved_steps >= 2  # the check above ran on real motion


def test_articulated_goal_image_is_the_imagined_state_at_the_goal_value():
    """As in the twin, the observation equals the goal image exactly when the imagined task joint is at its goal."""
    torch.manual_seed(0)
    env = PartRMEnv(world_model=WorldModel(PartRM(MINI_ART), MINI_ART), category="drawer", resolution=32)
    request = env.prepare_reset(seed=3)
    initial = env.predict_resets([request])[0]  # the articulated reset reconstructs the initial state only
    base = initial.base
    x = base.means[0, :, 0]
    labels = torch.where(x > x.median(), 0, STATIC)
    labels[base.opacities[0] < 0.05] = STATIC
    state = ArticulatedState(base, labels, [PartJoint("prismatic", np.array([1.0, 0.0, 0.0]), np.zeros(3), -0.5, 0.5,
                                                      0.0)])
    obs, info = env.finish_reset(request, state)
    assert env.task_part == 0
    lower, upper = info["joint_limits"]
    solved = env.state.copy()
    solved.set_value(0, lower + info["goal_fraction"] * (upper - lower))
    np.testing.assert_array_equal(obs["goal"], render_images(solved.gaussians(), [env.camera]).rgb[0])
    assert not np.array_equal(obs["image"], obs["goal"])  # the task asks for a visible motion


def test_articulated_reset_renders_the_reconstruction_in_its_camera_once(monkeypatch):
    """Finding the task part, its border claim and the first observation share one render of the unmoved state
    (they change part labels only), so a reset pays for it once; the observation is still that render."""
    import partrm_gym.envs.task_part as task_part_module
    import partrm_gym.envs.transitions as env_module

    torch.manual_seed(0)
    env = PartRMEnv(world_model=WorldModel(PartRM(MINI_ART), MINI_ART), category="drawer", resolution=32)
    request = env.prepare_reset(seed=3)
    initial = env.predict_resets([request])[0]
    base = initial.base
    x = base.means[0, :, 0]
    labels = torch.where(x > x.median(), 0, 1)  # two parts, so finding the task part compares their motions
    labels[base.opacities[0] < 0.05] = STATIC
    state = ArticulatedState(base, labels, [PartJoint("prismatic", np.array([1.0, 0.0, 0.0]), np.zeros(3), -0.5, 0.5,
                                                      0.0) for _ in range(2)])
    unmoved_renders = []

    def counting(gaussians, cameras, *args, **kwargs):
        if gaussians is base:
            unmoved_renders.append(cameras)
        return render_images(gaussians, cameras, *args, **kwargs)

    monkeypatch.setattr(env_module, "render_images", counting)
    monkeypatch.setattr(task_part_module, "render_images", counting)
    obs, _ = env.finish_reset(request, state)
    assert len(unmoved_renders) == 1
    np.testing.assert_array_equal(obs["image"], render_images(env.state.gaussians(), [env.camera]).rgb[0])


def test_task_part_is_the_part_whose_motion_makes_the_cameras_change():
    """The rule compares what changes, so views whose colours differ from the reconstruction's (here the camera's are
    darker and bluer) still pick the part that moved, whichever it is; the chosen part takes the task's terms."""
    camera = observation_camera(TaskConfig(resolution=32))
    g = torch.Generator().manual_seed(0)
    n = 600
    means = torch.rand(1, n, 3, generator=g) * 0.5 - 0.25
    gaussians = Gaussians(means, torch.full((1, n), 0.9), torch.full((1, n, 3), 0.02),
                          torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(1, n, 4), torch.rand(1, n, 3, generator=g))
    labels = (means[0, :, 0] > 0).long()  # part 0: the left half, part 1: the right half
    sideways = [PartJoint("prismatic", np.array([-1.0, 0.0, 0.0]), np.zeros(3), -1.0, 1.0, 0.0),
                PartJoint("prismatic", np.array([1.0, 0.0, 0.0]), np.zeros(3), -1.0, 1.0, 0.0)]
    state = ArticulatedState(gaussians, labels, sideways)

    def camera_view(s: ArticulatedState) -> np.ndarray:  # the camera sees other colours than the reconstruction
        rgb = render_images(s.gaussians(), [camera]).rgb[0].astype(np.float32)
        return np.clip(rgb * [0.7, 0.7, 0.9] + [0, 0, 20], 0, 255).astype(np.uint8)

    for moved in (0, 1):
        goal = state.copy()
        goal.set_value(moved, 0.15)
        trial = state.copy()
        assert find_task_part(trial, camera, camera_view(state), camera_view(goal), 0.0, 0.15, (0.0, 0.5)) == moved
        assert (trial.joints[moved].lower, trial.joints[moved].upper) == (0.0, 0.5)
        trial = state.copy()  # the planner's rule: the moved render nearest the goal view (same colours here)
        goal_view = render_images(goal.gaussians(), [camera]).rgb[0]
        assert find_task_part(trial, camera, goal_view, goal_view, 0.0, 0.15, (0.0, 0.5), rule="goal_image") == moved
    empty = ArticulatedState(gaussians, torch.full_like(labels, STATIC), [])
    assert find_task_part(empty, camera, camera_view(state), camera_view(state), 0.0, 0.15, (0.0, 0.5)) is None
    with pytest.raises(ValueError, match="rule must be"):
        find_task_part(state.copy(), camera, camera_view(state), camera_view(state), 0.0, 0.15, (0.0, 0.5), rule="x")


def test_carving_keeps_in_the_task_part_only_what_the_cameras_see_change():
    """Two drawers side by side that the head labelled as one part: only the right one moves between the camera's
    views, so the task part keeps the right half and the left half becomes a part of its own with the same joint;
    a part whose every Gaussian changes is left whole."""
    camera = observation_camera(TaskConfig(resolution=32))
    g = torch.Generator().manual_seed(1)
    n = 800
    right = torch.arange(n) % 2 == 1  # two boxes apart along y, as the camera sees them: left and right
    means = (torch.rand(1, n, 3, generator=g) - 0.5) * torch.tensor([0.1, 0.15, 0.15])
    means[0, :, 1] += torch.where(right, 0.2, -0.2)
    gaussians = Gaussians(means, torch.full((1, n), 0.9), torch.full((1, n, 3), 0.02),
                          torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(1, n, 4), torch.rand(1, n, 3, generator=g))
    up = PartJoint("prismatic", np.array([0.0, 0.0, 1.0]), np.zeros(3), 0.0, 0.3, 0.0)
    truth = ArticulatedState(gaussians, torch.where(right, 0, STATIC), [replace(up)])
    goal = truth.copy()
    goal.set_value(0, 0.1)
    image, goal_image = (render_images(s.gaussians(), [camera]).rgb[0] for s in (truth, goal))

    merged = ArticulatedState(gaussians, torch.zeros(n, dtype=torch.long), [replace(up)])
    new = carve_task_part(merged, 0, camera, image, goal_image, goal_value=0.1)
    assert new == 1 and len(merged.joints) == 2
    task, other = merged.part_mask(0), merged.part_mask(1)
    precision = float((task & right).sum() / task.sum())
    recall = float((task & right).sum() / right.sum())
    assert precision > 0.8 and recall > 0.8, (precision, recall)
    assert (task | other).all() and merged.joints[1].type == "prismatic"
    assert (merged.joints[1].lower, merged.joints[1].upper) == (-0.5, 0.5)  # default limits around its start

    whole = ArticulatedState(gaussians, torch.where(right, 0, STATIC), [replace(up)])
    assert carve_task_part(whole, 0, camera, image, goal_image, goal_value=0.1) is None
    assert len(whole.joints) == 1 and torch.equal(whole.labels, truth.labels)
    assert carve_task_part(whole, None, camera, image, goal_image, goal_value=0.1) is None


def test_the_task_part_claims_the_body_gaussians_drawn_on_its_border_where_it_leaves():
    """A panel facing the camera slides to the camera's right; the head labelled its left band body (a blurred
    border). The camera sees the band's pixels change and the imagined panel at its goal does not cover them, so the
    band's Gaussians join the part; a body panel beside it, which does not change, keeps every label."""
    camera = observation_camera(TaskConfig(resolution=64))
    c2w = camera.cam_to_world
    right, down, forward = (torch.as_tensor(c2w[:3, i], dtype=torch.float32) for i in range(3))
    g = torch.Generator().manual_seed(2)
    n = 1200
    a, b = torch.rand(n, generator=g) * 0.3 - 0.15, torch.rand(n, generator=g) * 0.2 - 0.1
    on_part = torch.arange(n) % 3 != 0  # a third of the Gaussians: a body panel further left
    a = torch.where(on_part, a, a - 0.45)
    centre = torch.as_tensor(camera.center, dtype=torch.float32) + 1.4 * forward
    means = (centre + a[:, None] * right + b[:, None] * down)[None]
    gaussians = Gaussians(means, torch.full((1, n), 0.9), torch.full((1, n, 3), 0.015),
                          torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(1, n, 4), torch.rand(1, n, 3, generator=g))
    slide = PartJoint("prismatic", right.numpy(), np.zeros(3), 0.0, 0.3, 0.0)
    truth = ArticulatedState(gaussians, torch.where(on_part, 0, STATIC), [replace(slide)])
    goal = truth.copy()
    goal.set_value(0, 0.1)
    image, goal_image = (render_images(s.gaussians(), [camera]).rgb[0] for s in (truth, goal))

    band = on_part & (a < -0.11)
    blurred = ArticulatedState(gaussians, torch.where(on_part & ~band, 0, STATIC), [replace(slide)])
    claimed = claim_task_border(blurred, 0, camera, image, goal_image, goal_value=0.1)
    gained = (blurred.labels == 0) & band
    assert claimed == int(gained.sum()) == int((blurred.labels == 0).sum() - (on_part & ~band).sum())
    assert claimed >= 0.5 * int(band.sum()), (claimed, int(band.sum()))
    assert (blurred.labels[~on_part] == STATIC).all()  # the panel that does not change keeps its labels
    assert claim_task_border(blurred, None, camera, image, goal_image, goal_value=0.1) == 0


def test_api_checker_and_episode(env):
    check_env(env, skip_render_check=False)
    obs, info = env.reset(seed=0)
    assert obs["image"].shape == (32, 32, 3) and obs["goal"].dtype == np.uint8
    assert info["sim_image"].shape == (32, 32, 3)
    steps = 0
    while True:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        steps += 1
        assert np.isfinite(reward) and torch.isfinite(env.gaussians.means).all()
        if terminated or truncated:
            break
    assert steps <= 3


def test_no_simulator_after_reset(env, monkeypatch):
    env.reset(seed=1)
    import partrm_gym.scene as scene_module

    def forbidden(*args, **kwargs):
        raise AssertionError("the world-model env touched the simulator after reset")

    monkeypatch.setattr(scene_module.Scene, "render", forbidden)
    monkeypatch.setattr(scene_module.Scene, "__init__", forbidden)
    for _ in range(2):
        env.step(env.action_space.sample())


def test_bad_input(env, tmp_path):
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.zeros(4, np.float32))
    env.reset(seed=2)
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan, 0, 0, 0], np.float32))
    _, _, _, _, info = env.step(np.array([-1, -1, -0.9, -0.9], np.float32))  # the corner: off the object
    assert info["missed"]
    assert env.export_ply(tmp_path / "state.ply").stat().st_size > 0
    rgb, depth = env.render_camera([env.camera])
    assert rgb.shape == (1, 32, 32, 3) and depth.shape == (1, 32, 32)
    env.close()
    with pytest.raises(RuntimeError, match="after close"):
        env.step(np.zeros(4, np.float32))


def test_vector_env_batches_and_autoresets():
    import gymnasium as gym

    import partrm_gym  # noqa: F401

    # a random model's geometry decides which drags land; this seed pair makes at least 2 of 3 land
    torch.manual_seed(2)
    wm = WorldModel(PartRM(MINI_ART), MINI_ART)
    venv = gym.make_vec("PartRM-Drawer-v0", num_envs=3, vectorization_mode="vector_entry_point", world_model=wm,
                        resolution=32, max_steps=2, transition="regenerate")
    calls = []
    predict = wm.predict
    wm.predict = lambda *a, **k: calls.append(a[0].shape[0]) or predict(*a, **k)
    obs, info = venv.reset(seed=1)
    assert obs["image"].shape == (3, 32, 32, 3)
    assert calls == [6]  # one reset call: the initial and goal views of the 3 envs
    calls.clear()
    # drags at the image centre: one model call for every env whose drag hit the imagined object
    centre = np.tile(np.array([0.0, 0.1, -0.2, 0.1], np.float32), (3, 1))
    obs, rewards, terms, truncs, infos = venv.step(centre)
    hits = int((~infos["missed"]).sum())
    assert hits >= 2 and calls == [hits] and rewards.shape == (3,) and infos["_missed"].all()
    obs, rewards, terms, truncs, infos = venv.step(centre)
    assert (terms | truncs).all()  # max_steps = 2
    calls.clear()
    obs, rewards, terms, truncs, infos = venv.step(centre)  # next-step autoreset: fresh episodes
    assert (rewards == 0).all() and not (terms | truncs).any()
    assert calls == [6]  # the 3 autoresets in one call
    venv.close()


def test_vector_env_resets_match_single_envs():
    """Batched resets (one model call) give each env the episode it gets alone, in the articulated transition."""
    import gymnasium as gym

    import partrm_gym  # noqa: F401

    torch.manual_seed(0)
    wm = WorldModel(PartRM(MINI_ART), MINI_ART)
    venv = gym.make_vec("PartRM-Drawer-v0", num_envs=2, vectorization_mode="vector_entry_point", world_model=wm,
                        resolution=32, max_steps=2)
    obs, info = venv.reset(seed=7)
    for i in range(2):
        single = PartRMEnv(world_model=wm, category="drawer", resolution=32, max_steps=2)
        o, inf = single.reset(seed=7 + i)
        assert np.abs(o["image"].astype(int) - obs["image"][i]).max() <= 1  # batched convolutions: rounding
        assert inf["joint_fraction"] == pytest.approx(info["joint_fraction"][i], abs=1e-5)
        single.close()
    venv.close()


def random_steps(n: int, seed: int = 0) -> int:
    """n random steps (NaN-free actions, some far out of range) across world-model envs of every category."""
    from partrm_gym.registration import ENV_CATEGORIES

    torch.manual_seed(seed)
    wm = WorldModel(PartRM(MINI_ART), MINI_ART)
    rng = np.random.default_rng(seed)
    done = 0
    envs = [PartRMEnv(world_model=wm, category=c, resolution=32, max_steps=5) for c in ENV_CATEGORIES.values()]
    for env in envs:
        env.reset(seed=seed)
    while done < n:
        env = envs[done % len(envs)]
        action = rng.uniform(-1.5, 1.5, 4).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        assert np.isfinite(reward) and obs["image"].dtype == np.uint8
        assert torch.isfinite(env.gaussians.means).all() and torch.isfinite(env.gaussians.scales).all()
        if terminated or truncated:
            env.reset()
        done += 1
    return done


def test_random_steps_never_crash_or_nan():
    assert random_steps(100) == 100


def test_sb3_checker_and_vec_env_compatibility(env):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    sb3_check_env(env)
    wm = env.model
    venv = DummyVecEnv([lambda: PartRMEnv(world_model=wm, category="laptop", resolution=32, max_steps=3)] * 2)
    obs = venv.reset()
    assert obs["image"].shape == (2, 32, 32, 3)
    obs, rewards, dones, infos = venv.step(np.zeros((2, 4), np.float32))
    assert rewards.shape == (2,) and np.isfinite(rewards).all()
    venv.close()


def test_same_seed_same_imagined_episode():
    def rollout():
        torch.manual_seed(0)
        e = PartRMEnv(world_model=WorldModel(PartRM(MINI_ART), MINI_ART), category="any", resolution=32)
        obs, _ = e.reset(seed=5)
        frames = [obs["image"]]
        for a in np.random.default_rng(1).uniform(-1, 1, (3, 4)).astype(np.float32):
            frames.append(e.step(a)[0]["image"])
        e.close()
        return frames

    for a, b in zip(rollout(), rollout()):
        assert np.array_equal(a, b)
