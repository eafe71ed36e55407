"""Real PartNet-Mobility objects end to end: every object loads facing +x, coloured by its MTL files, with its
task parts moving within their limits; a PartNet-Mobility root is found, split and served by the envs."""

import shutil

import gymnasium as gym
import numpy as np
import pybullet as p
import pytest

import partrm_gym  # noqa: F401  (registers the envs)
from partrm_gym.assets.partnet_colours import dominant_diffuse
from partrm_gym.assets.partnet_root import (
    REAL_CATEGORIES,
    TEST_OBJECT_IDS,
    find_partnet_objects,
    partnet_split,
    task_objects,
)
from partrm_gym.cameras import orbit_camera
from partrm_gym.errors import UsageError
from partrm_gym.scene import Scene


def _object_folders(root):
    return sorted(u.parent for u in root.glob("*/*/mobility.urdf"))


def test_every_real_object_faces_front_and_moves_its_task_parts(partnet_root):
    folders = _object_folders(partnet_root)
    assert len(folders) >= 1
    for folder in folders:
        with Scene.from_partnet(folder) as scene:
            task = scene.task_joints()
            assert task, f"{folder}: no task part"
            assert {scene.joints[k].semantic for k in task} <= {"door", "rotation_door", "drawer", "rotation_lid"}
            front = scene.front_yaw_deg()  # measured again on the turned object: no further turn is needed
            assert front in (None, scene.base_yaw_deg), f"{folder}: faces +x at yaw {front}, not {scene.base_yaw_deg}"
            for k in task:
                joint = scene.joints[k]
                states = scene.get_joint_states()
                corners = []
                for value in (joint.lower, joint.upper):
                    q = states.copy()
                    q[k] = value
                    scene.set_joint_states(q)
                    assert joint.lower - 1e-6 <= scene.get_joint_states()[k] <= joint.upper + 1e-6
                    corners.append(scene.to_world(joint.child_link, np.array([[0.1, 0.1, 0.1]])))
                scene.set_joint_states(states)
                assert joint.range > 0 and np.linalg.norm(corners[1] - corners[0]) > 1e-3, f"{folder}: {joint.name}"


def test_untextured_links_render_in_their_mtl_colour(partnet_root):
    """Under ambient light only, a link whose meshes share one untextured dominant material renders in its Kd."""
    checked = 0
    camera = orbit_camera(20.0, 20.0, 1.6, 45.0, 96)
    for folder in _object_folders(partnet_root)[::3]:
        with Scene.from_partnet(folder) as scene:
            c = scene.client
            by_link: dict[int, set] = {}
            for shape in c.getVisualShapeData(scene.body):
                by_link.setdefault(shape[1], set()).add(dominant_diffuse(shape[4].decode()))
            view, proj = _gl(camera)
            _, _, rgba, _, seg = c.getCameraImage(96, 96, view, proj, renderer=p.ER_TINY_RENDERER,
                                                  lightAmbientCoeff=1.0, lightDiffuseCoeff=0.0,
                                                  lightSpecularCoeff=0.0, shadow=0,
                                                  flags=p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX)
            rgb = np.reshape(rgba, (96, 96, 4))[..., :3] / 255.0
            seg = np.reshape(seg, (96, 96))
            for link, colours in by_link.items():
                if len(colours) != 1 or None in colours:
                    continue
                pixels = ((seg & ((1 << 24) - 1)) == scene.body) & (((seg >> 24) - 1) == link)
                if pixels.sum() < 20:
                    continue
                kd = np.array(next(iter(colours)))
                mean = rgb[pixels].mean(0)
                assert np.abs(mean - kd).max() <= 0.1, f"{folder} link {link}: rendered {mean}, MTL Kd {kd}"
                checked += 1
    assert checked >= 5  # the check saw enough links to mean something


def _gl(camera):
    from partrm_gym.scene import opengl_matrices

    return opengl_matrices(camera)


def test_a_partnet_root_is_found_at_depth_one_or_two_and_split(partnet_root, tmp_path):
    entries = find_partnet_objects(partnet_root)  # <Category>/<id>/ layout
    assert len(entries) == len(_object_folders(partnet_root))
    assert all(e.split == "test" for e in entries if e.partnet_category == "Dishwasher")
    assert {e.object_id for e in entries if e.split == "test"} >= (TEST_OBJECT_IDS & {e.object_id for e in entries})
    flat = tmp_path / "flat"  # the dataset's own <id>/ layout
    flat.mkdir()
    source = _object_folders(partnet_root)[0]
    (flat / source.name).symlink_to(source)
    [entry] = find_partnet_objects(flat)
    assert entry.object_id == source.name and entry.partnet_category == source.parent.name
    assert find_partnet_objects(source)[0].folder == source  # one object's folder is a root of one object
    assert partnet_split("999999", "Dishwasher") == "test"  # every dishwasher, listed or not
    # an object nobody listed gets a stable split, about one in five test
    shares = [partnet_split(str(i), "StorageFurniture") == "test" for i in range(200_000, 201_000)]
    assert 0.12 < np.mean(shares) < 0.28
    with pytest.raises(UsageError, match="not a folder"):
        find_partnet_objects(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="holds no PartNet-Mobility object"):
        find_partnet_objects(empty)
    with pytest.raises(UsageError, match="no PartNet-Mobility object .* laptop task part"):
        task_objects(flat, "laptop", "train")


def test_envs_run_on_real_objects_of_a_category(partnet_root):
    for category in ("drawer", "door"):
        names = REAL_CATEGORIES["storage_" + category][1]
        for env_id in ("PartRMSim-Articulated-v0",):
            env = gym.make(env_id, partnet_root=str(partnet_root), category=category, resolution=48, max_steps=2)
            obs, info = env.reset(seed=0)
            base = env.unwrapped
            assert base.scene.joints[base.task.joint].semantic in names
            assert base.task.extras["partnet_id"] and info["category"] == "storage_" + category
            assert obs["image"].shape == (48, 48, 3)
            _, _, _, _, info = env.step(env.action_space.sample())
            assert 0.0 <= info["goal_fraction"] <= 1.0
            env.close()
    with pytest.raises(UsageError, match="partnet_root"):
        gym.make("PartRMSim-Articulated-v0", partnet_root=str(partnet_root / "no-such-folder"))


def test_world_model_env_imagines_a_real_object(partnet_root, tmp_path):
    from dataclasses import replace

    import torch
    from conftest import MINI

    from partrm_gym.model.partrm import PartRM
    from partrm_gym.model.world_model import WorldModel

    torch.manual_seed(0)
    cfg = replace(MINI, articulation_head=True)
    model = WorldModel(PartRM(cfg), cfg)
    one = tmp_path / "one"
    shutil.copytree(_object_folders(partnet_root)[0], one)  # one object's folder: that object, whatever its split
    env = gym.make("PartRM-Articulated-v0", world_model=model, partnet_root=str(one), resolution=32, max_steps=2)
    obs, info = env.reset(seed=0)
    assert env.unwrapped.task.extras["partnet_id"] == "one" and obs["image"].shape == (32, 32, 3)
    env.step(env.action_space.sample())
    env.close()


def test_dataset_from_real_objects_has_the_same_labels(partnet_root, tmp_path):
    from partrm_gym.train.data_config import DataConfig
    from partrm_gym.train.datagen import merge_manifest, run_shard
    from partrm_gym.train.dataset import PartDragDataset
    from partrm_gym.train.verify import verify_dataset

    folder = partnet_root / "StorageFurniture" / "45261"  # a train-split object with five drawers (and no knob task)
    cfg = DataConfig(name="real", procedural=False, partnet_root=str(folder), max_parts_per_object=1,
                     states_per_part=2, max_drags=3, input_resolution=16, splatter_resolution=8, view_resolution=16)
    run_shard(cfg, tmp_path / "data", progress=False)
    manifest = merge_manifest(tmp_path / "data")
    assert [o["object_id"] for o in manifest["objects"]] == ["partnet_45261"]
    assert verify_dataset(tmp_path / "data") == []
    data = PartDragDataset(tmp_path / "data", "train")
    item = data[0]
    moved = item["part_src"][item["part_src"] > 0].unique()
    assert len(data) == 2 and len(moved) >= 1  # drawer pixels carry their joint's label
    joint = int(moved[0]) - 1
    assert data.state("partnet_45261", data.items[0].src)["joint_revolute"][joint].item() is False  # a slider
    with pytest.raises(UsageError, match="--partnet"):
        run_shard(DataConfig(procedural=False), tmp_path / "none", progress=False)
