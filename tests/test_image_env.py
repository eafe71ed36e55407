"""``PartRM-Images-v0`` and its task folders: export round trip, no simulator, every bad-folder case, Zero123++ with a
stub, inference on a state whose answer is known, the vector env. A tiny random model throughout."""

from __future__ import annotations

import json
import shutil

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import MINI

import partrm_gym  # noqa: F401  (registers the envs)
from partrm_gym.articulation import ArticulatedState, PartJoint
from partrm_gym.cameras import orbit_camera
from partrm_gym.envs.image_env import PartRMImagesEnv
from partrm_gym.envs.image_task import TaskFolderError, load_task, write_task
from partrm_gym.envs.task_export import export_task
from partrm_gym.envs.task_inference import TaskInference
from partrm_gym.envs.world_model_env import PartRMEnv
from partrm_gym.errors import UserError
from partrm_gym.gaussians import Gaussians
from partrm_gym.model.partrm import PartRM
from partrm_gym.model.view_sources import ViewSourceUnavailable, Zero123PlusPlusSource
from partrm_gym.model.world_model import WorldModel
from partrm_gym.rendering import render_images

SEED = 100_000
TASK = {"category": "storage_drawer", "split": "test", "resolution": 32}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return WorldModel(PartRM(MINI), MINI)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model):
    """A test-split drawer task of the twin, exported once (depth and goal views included)."""
    return export_task("PartRMSim-Drawer-v0", SEED, tmp_path_factory.mktemp("task") / "drawer", model.rig,
                       model.input_size, split="test", resolution=32)


def copy_task(exported, tmp_path):
    folder = tmp_path / "task"
    shutil.copytree(exported, folder)
    return folder


def test_export_round_trip_gives_the_known_goal_env_exactly(exported, model):
    """With the oracle side file, the image env is the known-goal env: the same first observation, goal and imagined
    state as PartRM-Drawer-v0 on that seed (the folder holds exactly what the twin rendered)."""
    known = PartRMEnv(world_model=model, **TASK)
    obs_known, info_known = known.reset(seed=SEED)
    side = PartRMImagesEnv(task_dir=exported, goal_from="side_file", world_model=model, depth="off")
    obs, info = side.reset(seed=0)
    np.testing.assert_array_equal(obs["image"], obs_known["image"])
    np.testing.assert_array_equal(obs["goal"], obs_known["goal"])
    for name in ("means", "opacities", "scales", "quats", "colors"):
        assert torch.equal(getattr(side.gaussians, name), getattr(known.gaussians, name)), name
    assert torch.equal(side.state.labels, known.state.labels) and side.task_part == known.task_part
    assert info["joint_limits"] == info_known["joint_limits"] and info["goal_fraction"] == info_known["goal_fraction"]
    task = load_task(exported)
    assert task.oracle().source["seed"] == SEED and task.view_depths is not None and task.goal_views is not None
    assert np.isfinite(task.view_depths).any() and task.image_depth is not None and task.goal_depth is not None


def test_inferred_task_reports_its_inference_and_a_start_relative_range(exported, model):
    env = PartRMImagesEnv(task_dir=exported, world_model=model, depth="off")
    obs, info = env.reset(seed=0)
    assert {"inferred_task_part", "inferred_joint_type", "inferred_goal_value", "inference_score",
            "inference_changed_pixels", "task_dir"} <= set(info)
    if info["inferred_task_part"] is not None:
        lower, upper = info["joint_limits"]
        assert info["joint_value"] == 0.0 and lower <= 0.0 < upper  # values relative to the start
        assert info["goal_fraction"] == pytest.approx(0.4 if info["inferred_goal_value"] > 0 else 0.0)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert np.isfinite(reward) and obs["image"].shape == (32, 32, 3)


def test_no_simulator_is_ever_connected(exported, model, monkeypatch):
    """Making the env, its resets and steps, and the vector env never connect PyBullet."""
    import pybullet
    from pybullet_utils import bullet_client

    def forbidden(*args, **kwargs):
        raise AssertionError("an image-defined env connected a simulator")

    monkeypatch.setattr(pybullet, "connect", forbidden)
    monkeypatch.setattr(bullet_client.BulletClient, "__init__", forbidden)
    env = PartRMImagesEnv(tasks=[exported, exported], world_model=model, depth="off")
    env.reset(seed=1)
    for _ in range(2):
        env.step(env.action_space.sample())
    venv = gym.make_vec("PartRM-Images-v0", num_envs=2, vectorization_mode="vector_entry_point", task_dir=exported,
                        world_model=model, depth="off")
    obs, _ = venv.reset(seed=0)
    assert obs["image"].shape == (2, 32, 32, 3)
    obs, rewards, *_ = venv.step(venv.action_space.sample())
    assert rewards.shape == (2,)
    venv.close()


def test_vector_env_resets_match_single_envs(exported, model):
    venv = gym.make_vec("PartRM-Images-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        tasks=[exported, exported], world_model=model, depth="off")
    obs, info = venv.reset(seed=3)
    single = PartRMImagesEnv(tasks=[exported, exported], world_model=model, depth="off")
    for i in range(2):
        o, _ = single.reset(seed=3 + i)
        np.testing.assert_array_equal(obs["image"][i], o["image"])
        np.testing.assert_array_equal(obs["goal"][i], o["goal"])
    venv.close()


def _rewrite_json(folder, name, change):
    data = json.loads((folder / name).read_text())
    change(data)
    (folder / name).write_text(json.dumps(data))


def _png(folder, name, array):
    (folder / name).write_bytes(iio.imwrite("<bytes>", array, extension=".png"))


def _camera_away(data):
    """A camera 1.5 above the object looking up, away from it."""
    data["observation"]["world_to_cam"] = [[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, -1.5], [0, 0, 0, 1]]


def _camera_aside(data):
    """The camera moved 3 units sideways: the object's centre projects far outside the image."""
    data["observation"]["world_to_cam"][0][3] += 3.0


def _zero123pp_without_photo(folder):
    for k in range(4):
        (folder / f"input_{k}.png").unlink()
        (folder / f"input_{k}.depth.png").unlink()
    _rewrite_json(folder, "cameras.json", lambda d: d.update(views_from="zero123pp"))


def _zero123pp_photo(folder, photo):
    _zero123pp_without_photo(folder)
    _png(folder, "photo.png", photo)


def _goal_views_at(folder, side):
    for k in range(4):
        _png(folder, f"goal_input_{k}.png", np.zeros((side, side, 3), np.uint8))
        (folder / f"goal_input_{k}.depth.png").unlink()


BAD_FOLDERS = [
    ("missing view", lambda f: (f / "input_2.png").unlink(), "input_2.png is missing"),
    ("wrong size", lambda f: _png(f, "input_1.png", np.zeros((8, 8, 3), np.uint8)), "input_1.png is 8x8"),
    ("observation size", lambda f: _png(f, "goal.png", np.zeros((16, 16, 3), np.uint8)), "goal.png is 16x16"),
    ("not RGB", lambda f: _png(f, "initial.png", np.zeros((32, 32), np.uint8)), "initial.png is not RGB"),
    ("not an image", lambda f: (f / "goal.png").write_text("hello"), "goal.png is not a readable image"),
    ("no cameras.json", lambda f: (f / "cameras.json").unlink(), "cameras.json is missing"),
    ("bad JSON", lambda f: (f / "cameras.json").write_text("{"), "cameras.json is not valid JSON"),
    ("version", lambda f: _rewrite_json(f, "cameras.json", lambda d: d.update(version=7)), "version 7"),
    ("no rig", lambda f: _rewrite_json(f, "cameras.json", lambda d: d.pop("input_rig")), "input_rig is missing"),
    ("metric scale", lambda f: _rewrite_json(f, "cameras.json", lambda d: d.update(metric_scale=-1)),
     "metric_scale must be a positive number"),
    ("pose", lambda f: _rewrite_json(f, "cameras.json", lambda d: d["observation"].update(
        world_to_cam=(2 * np.eye(4)).tolist())), "not a rigid transform"),
    ("camera away", lambda f: _rewrite_json(f, "cameras.json", _camera_away), "does not see the object"),
    ("empty observation", lambda f: _png(f, "initial.png", np.full((32, 32, 3), 255, np.uint8)),
     "initial.png shows no object"),
    ("depth size", lambda f: _png(f, "input_0.depth.png", np.zeros((4, 4), np.uint16)), "input_0.depth.png is 4x4"),
    ("depth type", lambda f: _png(f, "input_0.depth.png", np.zeros((16, 16), np.uint8)), "16-bit PNG"),
    ("depth off the object", lambda f: _png(f, "initial.depth.png", np.full((32, 32), 1500, np.uint16)),
     "initial.depth.png is inconsistent with initial.png"),
    ("depth unit", lambda f: _png(f, "goal.depth.png", (iio.imread(f / "goal.depth.png") // 1000).astype(np.uint16)),
     "check the depth unit"),
    ("depth missing inside", lambda f: _png(f, "initial.depth.png", np.zeros((32, 32), np.uint16)),
     "depth covers 0 of the"),
    ("depth not registered", lambda f: _png(f, "input_1.depth.png", np.roll(iio.imread(f / "input_1.depth.png"), 5, 1)),
     "input_1.depth.png is inconsistent with input_1.png"),
    ("some views' depth", lambda f: (f / "input_2.depth.png").unlink(),
     "input_2.depth.png is missing, but input_0.depth.png is there"),
    ("stray depth", lambda f: _png(f, "input_7.depth.png", np.zeros((16, 16), np.uint16)), "the depth of no image"),
    ("goal views' depth", lambda f: _png(f, "goal_input_1.depth.png", np.full((16, 16), 1500, np.uint16)),
     "goal_input_1.depth.png is inconsistent with goal_input_1.png"),
    ("one goal view wrong", lambda f: _png(f, "goal_input_3.png", np.zeros((8, 8, 3), np.uint8)),
     "goal_input_3.png is 8x8 px, but goal_input_0.png is 16x16"),
    ("goal views' size", lambda f: _goal_views_at(f, 8), "goal_input_0.png: 8 px, but the input views are 16 px"),
    ("some goal views", lambda f: (f / "goal_input_0.png").unlink(), "goal_input_0.png is missing"),
    ("views_from", lambda f: _rewrite_json(f, "cameras.json", lambda d: d.update(views_from="phone")),
     "views_from must be one of"),
    ("no photo", _zero123pp_without_photo, "photo.png is missing"),
    ("photo not square", lambda f: _zero123pp_photo(f, np.zeros((16, 12, 3), np.uint8)), "input views are square"),
    ("camera aside", lambda f: _rewrite_json(f, "cameras.json", _camera_aside), "lies outside the image"),
    ("no observation", lambda f: _rewrite_json(f, "cameras.json", lambda d: d.pop("observation")),
     "observation is missing"),
    ("K", lambda f: _rewrite_json(f, "cameras.json", lambda d: d["observation"].update(K=[[1, 0], [0, 1]])),
     "K must be 3x3"),
    ("rig numbers", lambda f: _rewrite_json(f, "cameras.json", lambda d: d["input_rig"].update(radius="far")),
     "input_rig needs numbers"),
    ("task.json", lambda f: (f / "task.json").write_text("[1, 2]"), "task.json: expected a JSON object"),
]


@pytest.mark.parametrize("name, break_it, message", BAD_FOLDERS, ids=[b[0] for b in BAD_FOLDERS])
def test_every_bad_folder_is_one_line_naming_the_file(exported, tmp_path, name, break_it, message):
    folder = copy_task(exported, tmp_path)
    break_it(folder)
    with pytest.raises(TaskFolderError) as error:
        load_task(folder)
    text = str(error.value)
    assert message in text and "\n" not in text and str(folder) in text


def test_white_parts_of_the_object_may_have_depth(exported, tmp_path):
    """Colour cannot tell a white surface of the object from the white background; the depth's place can."""
    folder = copy_task(exported, tmp_path)
    image = iio.imread(folder / "initial.png").copy()
    depth = iio.imread(folder / "initial.depth.png")
    rows = np.nonzero((depth > 0).any(1))[0]
    image[rows[: len(rows) // 2]] = 255  # the object's top half painted white
    _png(folder, "initial.png", image)
    task = load_task(folder)
    assert np.isfinite(task.image_depth).sum() == (depth > 0).sum()


def test_a_malformed_oracle_is_one_line_naming_it(exported, tmp_path, model):
    folder = copy_task(exported, tmp_path)
    _rewrite_json(folder, "oracle.json", lambda d: d.pop("limits"))
    load_task(folder)  # the side file is read only when asked for
    with pytest.raises(TaskFolderError) as error:
        PartRMImagesEnv(task_dir=folder, world_model=model, goal_from="side_file")
    assert "oracle.json: malformed" in str(error.value) and "\n" not in str(error.value)


def test_every_image_of_a_folder_may_have_depth(exported):
    task = load_task(exported)
    assert task.goal_view_depths is not None and task.goal_view_depths.shape == task.view_depths.shape
    assert np.isfinite(task.goal_view_depths).any() and task.photo_depth is None


def test_folder_errors_at_gym_make(exported, tmp_path, model):
    with pytest.raises(TaskFolderError, match="is a file, not a folder"):
        load_task(exported / "initial.png")
    with pytest.raises(TaskFolderError, match="is nothing, not a folder"):
        load_task(tmp_path / "nowhere")
    folder = copy_task(exported, tmp_path)
    _rewrite_json(folder, "cameras.json", lambda d: d["input_rig"].update(elevation_deg=0.0))
    with pytest.raises(TaskFolderError, match="input_rig elevation_deg = 0, but the model's input rig has 20"):
        PartRMImagesEnv(task_dir=folder, world_model=model)
    (folder / "oracle.json").unlink()
    shutil.copy(exported / "cameras.json", folder / "cameras.json")
    with pytest.raises(TaskFolderError, match="oracle.json is missing"):
        PartRMImagesEnv(task_dir=folder, world_model=model, goal_from="side_file")
    for k in range(4):
        (folder / f"goal_input_{k}.png").unlink()
        (folder / f"goal_input_{k}.depth.png").unlink()
    with pytest.raises(UserError, match="goal_input_0.png is missing"):
        PartRMImagesEnv(task_dir=folder, world_model=model, transition="regenerate")
    with pytest.raises(UserError, match="come from the task folder"):
        PartRMImagesEnv(task_dir=folder, world_model=model, category="door")
    with pytest.raises(UserError, match="task_dir=DIR or tasks"):
        PartRMImagesEnv(world_model=model)


def test_export_never_writes_into_a_folder_of_other_files(tmp_path, model):
    (tmp_path / "mine.txt").write_text("notes")
    with pytest.raises(TaskFolderError, match="holds files but no task"):
        export_task("PartRMSim-Drawer-v0", SEED, tmp_path, model.rig, model.input_size)
    assert (tmp_path / "mine.txt").read_text() == "notes"


class StubZero123:
    """Stands in for the Zero123++ pipeline: a 3x2 grid of flat tiles, one grey level per tile."""

    def __call__(self, image, num_inference_steps):
        tiles = [np.full((20, 20, 3), 40 * (k + 1), np.uint8) for k in range(6)]
        return type("Result", (), {"images": [np.concatenate([np.concatenate(tiles[r * 2:r * 2 + 2], axis=1)
                                                              for r in range(3)])]})()


def test_one_photo_and_zero123pp(exported, tmp_path, model):
    folder = copy_task(exported, tmp_path)
    shutil.copy(folder / "input_0.png", folder / "photo.png")
    for k in range(4):
        (folder / f"input_{k}.png").unlink()
        (folder / f"input_{k}.depth.png").unlink()
    _rewrite_json(folder, "cameras.json", lambda d: d.update(views_from="zero123pp"))
    with pytest.raises(ViewSourceUnavailable, match="Zero123\\+\\+ weights not found"):
        PartRMImagesEnv(task_dir=folder, world_model=model)
    env = PartRMImagesEnv(task_dir=folder, world_model=model, view_source=Zero123PlusPlusSource(
        pipeline=StubZero123()))
    obs, _ = env.reset(seed=0)
    views = env._generated[0]
    assert views.shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(views[0], iio.imread(folder / "photo.png"))  # view 0 is the photo itself
    assert (views[1] == 80).all()  # then Zero123++'s tiles (tile 1 of the grid for view 1)
    obs, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(reward)


def _two_part_state():
    """A state of two flat boxes side by side, each its own prismatic part: an answer the inference must find."""
    g = torch.Generator().manual_seed(0)
    n = 600
    xyz = torch.rand(n, 3, generator=g) * torch.tensor([0.05, 0.5, 0.5]) - torch.tensor([0.0, 0.25, 0.25])
    colors = torch.where((xyz[:, 1:2] > 0), torch.tensor([0.9, 0.2, 0.2]), torch.tensor([0.2, 0.3, 0.9]))
    colors = colors + 0.1 * torch.rand(n, 3, generator=g) * (xyz[:, 2:3] > 0)
    gauss = Gaussians(xyz[None], torch.ones(1, n), torch.full((1, n, 3), 0.02), torch.tensor([[1.0, 0, 0, 0]])
                      .expand(1, n, 4).clone(), colors[None].clamp(0, 1))
    labels = torch.where(xyz[:, 1] > 0, 0, 1)
    joints = [PartJoint("prismatic", np.array([1.0, 0, 0]), np.zeros(3), -0.5, 0.5, 0.0) for _ in range(2)]
    return ArticulatedState(gauss, labels, joints)


@pytest.mark.parametrize("depth", [False, True], ids=["rgb", "rgbd"])
@pytest.mark.parametrize("delta", [0.12, -0.08])
def test_inference_finds_the_part_and_the_goal_that_explain_the_change(delta, depth):
    from partrm_gym.envs.task import TaskConfig

    camera = orbit_camera(35.0, 25.0, 1.5, 49.1, 48)
    state = _two_part_state()
    state.joints[1].lower = -0.5
    goal = state.copy()
    goal.set_value(1, delta)
    trial = state.copy()
    if delta < 0:  # closing: the part must stick out of the rest as far as it closes
        moved = trial.base.means.clone()
        moved[0, trial.labels == 1, 0] += 0.1
        trial.base = Gaussians(moved, *(getattr(trial.base, f) for f in ("opacities", "scales", "quats", "colors")))
        goal = trial.copy()
        goal.set_value(1, delta)
    views = [render_images(s.gaussians(), [camera]) for s in (trial, goal)]
    depths = (views[0].depth[0], views[1].depth[0]) if depth else None
    inference = TaskInference(TaskConfig())
    part, terms, info = inference.infer(trial, camera, views[0].rgb[0], views[1].rgb[0], depths=depths)
    assert part == 1 and info["inferred_joint_type"] == "prismatic"
    assert terms.goal == pytest.approx(delta, abs=0.02) and terms.inferred and terms.start == 0.0
    # the implied range: success within a quarter of the goal change, the clamp on the closed side
    assert terms.limits[1] - terms.limits[0] == pytest.approx(abs(terms.goal) / 0.4)
    assert terms.limits[0] == pytest.approx(min(0.0, terms.goal))
    assert trial.joints[1].lower == terms.limits[0]
    assert trial.set_value(1, terms.limits[0] - 0.1) == terms.limits[0]  # a drawer cannot be pushed into the body


def test_no_change_infers_no_task_and_the_episode_cannot_succeed(exported, tmp_path, model):
    folder = copy_task(exported, tmp_path)
    shutil.copy(folder / "initial.png", folder / "goal.png")
    (folder / "goal.depth.png").unlink()
    env = PartRMImagesEnv(task_dir=folder, world_model=model, depth="off")
    _, info = env.reset(seed=0)
    assert info["inferred_task_part"] is None and info["inference_failed"] and not info["is_success"]
    _, _, terminated, _, info = env.step(env.action_space.sample())
    assert not terminated


def test_write_task_refuses_a_file_path(tmp_path, model):
    target = tmp_path / "file"
    target.write_text("x")
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(TaskFolderError, match="is a file, not a folder"):
        write_task(target, rig=model.rig, camera=orbit_camera(0, 20, 1.5, 49.1, 32), views=np.zeros((4, 16, 16, 3),
                   np.uint8), image=image, goal_image=image)
    assert target.read_text() == "x"



def test_with_depth_the_geometry_comes_from_the_cameras(exported, model):
    """RGB-D: the imagined Gaussians are the input views' depth back-projected and fitted (the GT-splatter routine),
    pixel-aligned with the model's output; the model only labels them. RGB only: the model's own reconstruction."""
    from partrm_gym.envs.transitions import depth_geometry

    rgbd = PartRMImagesEnv(task_dir=exported, world_model=model)
    request = rgbd.prepare_reset(seed=0)
    assert request.view_depths is not None and request.depths is not None
    geometry = torch.as_tensor(depth_geometry(request, model))[None]
    assert geometry.shape == (1, 4, 14, model.output_size, model.output_size)
    rgbd.finish_reset(request, rgbd.predict_resets([request])[0])
    assert torch.allclose(rgbd.state.base.means, Gaussians.from_splatter(geometry).means)
    task = load_task(exported)
    cam = task.input_cameras()[0]
    on = np.isfinite(task.view_depths[0])
    # the depth-built Gaussians of view 0 lie on the surface the camera measured (within a millimetre's rounding)
    xyz = geometry[0, 0, :3].permute(1, 2, 0).reshape(-1, 3).numpy()
    opaque = geometry[0, 0, 3].reshape(-1).numpy() > 0
    _, z = cam.project(xyz[opaque].astype(np.float64))
    assert np.all((z > 0.5) & (z < 2.5)) and on.any()
    rgb = PartRMImagesEnv(task_dir=exported, world_model=model, depth="off")
    rgb.reset(seed=0)
    assert not torch.allclose(rgb.state.base.means, rgbd.state.base.means)
    with pytest.raises(ValueError, match="geometry must be splatter images"):
        model.predict_articulated(request.views, geometry=geometry[:, :, :, :4])


def test_the_image_env_evaluates_and_takes_pixel_drags_like_the_others(exported, model):
    env = PartRMImagesEnv(task_dir=exported, world_model=model, depth="off", control_mode="pixel_drag")
    _, info = env.reset(seed=0)
    evaluation = env.evaluate()
    assert {"is_success", "joint_fraction", "goal_fraction"} <= set(evaluation)
    assert evaluation["joint_fraction"] == info["joint_fraction"]
    _, reward, _, _, info = env.step(np.array([0.0, 0.0, 0.5, 0.0], np.float32))
    assert np.isfinite(reward) and env.evaluate()["joint_fraction"] == info["joint_fraction"]


def test_export_task_command_writes_a_folder_the_env_reads(tmp_path, model, capsys):
    from partrm_gym.app.cli import main
    from partrm_gym.model.checkpoint import save_checkpoint

    save_checkpoint(model.network, MINI, tmp_path / "mini")
    out = tmp_path / "task"
    assert main(["export-task", "--env", "PartRMSim-Drawer-v0", "--seed", "7", "--split", "test", "--out", str(out),
                 "--model", str(tmp_path / "mini"), "--no-depth"]) == 0
    assert "oracle.json" in capsys.readouterr().out
    task = load_task(out)
    assert task.view_depths is None and task.image_depth is None and task.oracle().source["seed"] == 7
    assert task.views.shape[1] == MINI.input_size
    assert main(["export-task", "--env", "PartRM-Images-v0", "--seed", "7", "--out", str(tmp_path / "x")]) == 2
    assert "export takes a twin's task" in capsys.readouterr().err


def test_export_of_a_real_object_part(tmp_path, model, partnet_root):
    folder = partnet_root / "StorageFurniture" / "45261"
    out = export_task("PartRMSim-Articulated-v0", 3, tmp_path / "real", model.rig, model.input_size,
                      partnet=folder, joint=1, resolution=32)
    oracle = load_task(out).oracle()
    assert oracle.joint == 1 and oracle.source["partnet_folder"] == str(folder) and oracle.range > 0
    assert oracle.axis is not None and abs(np.linalg.norm(oracle.axis) - 1.0) < 1e-6
    env = PartRMImagesEnv(task_dir=out, world_model=model, goal_from="side_file", depth="off")
    _, info = env.reset(seed=0)
    assert info["joint_limits"] == oracle.limits


def test_bench_images_last_line(tmp_path, model, capsys):
    import argparse

    from partrm_gym.app.bench.images import bench_images
    from partrm_gym.model.checkpoint import save_checkpoint

    save_checkpoint(model.network, MINI, tmp_path / "mini")
    args = argparse.Namespace(episodes=1, steps=1, model=str(tmp_path / "mini"), out=str(tmp_path / "images.md"),
                              partnet=None)
    bench_images(args)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    pattern = (r"images: tasks=1 goal_error_median=\S+ agreement_known=\S+ agreement_rgb=\S+ agreement_depth=\S+$")
    assert __import__("re").match(pattern, last), last
    report = (tmp_path / "images.md").read_text()
    assert "| known goal |" in report and "| images RGB-D |" in report


def test_rgbd_tries_a_hinged_part_as_a_drawer_along_the_front():
    """The head calls the sliding part hinged: RGB-D's metric registration also tries it as a drawer along +x and
    takes the drawer; RGB keeps the head's joint type (its change masks cannot choose between motions)."""
    from partrm_gym.envs.task import TaskConfig
    from partrm_gym.envs.task_inference import InferenceConfig

    camera = orbit_camera(35.0, 25.0, 1.5, 49.1, 48)
    truth = _two_part_state()
    goal = truth.copy()
    goal.set_value(1, 0.12)  # part 1 slides out along +x
    views = [render_images(s.gaussians(), [camera]) for s in (truth, goal)]
    depths = (views[0].depth[0], views[1].depth[0])

    def head_says_hinged():
        state = truth.copy()
        state.joints[1] = PartJoint("revolute", np.array([0.0, 0, 1]), np.array([0.0, 0.25, 0]), -2.0, 2.0, 0.0)
        return state

    state = head_says_hinged()
    part, terms, info = TaskInference(TaskConfig()).infer(state, camera, views[0].rgb[0], views[1].rgb[0],
                                                          depths=depths)
    assert part == 1 and info["inferred_joint_type"] == "prismatic" and terms.goal == pytest.approx(0.12, abs=0.02)
    assert state.joints[1].type == "prismatic" and np.allclose(state.joints[1].axis, [1, 0, 0])
    state = head_says_hinged()
    _, _, info = TaskInference(TaskConfig(), InferenceConfig(drawer_hypothesis=False)).infer(
        state, camera, views[0].rgb[0], views[1].rgb[0], depths=depths)
    assert info["inferred_joint_type"] != "prismatic" or info["inferred_task_part"] != 1
    state = head_says_hinged()
    _, _, info = TaskInference(TaskConfig()).infer(state, camera, views[0].rgb[0], views[1].rgb[0])
    assert info["inferred_task_part"] != 1 or info["inferred_joint_type"] == "revolute"
    assert state.joints[1].type == "revolute"
