"""``partrm-gym bench rollout``: the oracle moves a reconstruction like the simulator; the report's last line."""

from __future__ import annotations

import argparse

import numpy as np
import torch
from conftest import MINI

from partrm_gym.app.bench.rollout import _psnr, bench_rollout, label_accuracy, oracle_state
from partrm_gym.cameras import canonical_rig
from partrm_gym.envs.task import TaskConfig, observation_camera
from partrm_gym.gaussians import Gaussians
from partrm_gym.gt_splatter import SplatterFit, gt_splatter
from partrm_gym.model.checkpoint import save_checkpoint
from partrm_gym.model.partrm import PartRM
from partrm_gym.rendering import render_images
from partrm_gym.scene import Scene


def test_oracle_moves_the_reconstruction_with_the_simulator():
    camera = observation_camera(TaskConfig(resolution=64))
    cams = canonical_rig(64)
    with Scene.procedural("storage_door", 3) as scene:
        k = 0
        scene.set_joint_fractions(np.zeros(len(scene.joints)))
        base = Gaussians.from_splatter(torch.from_numpy(gt_splatter(scene, cams, SplatterFit(steps=0)))[None])
        oracle = oracle_state(base, scene, cams)
        moved = oracle.labels == k
        assert moved.sum() > 50 and (oracle.labels == -1).sum() > 50
        q = scene.get_joint_states()
        q[k] = scene.joints[k].lower + 0.7 * scene.joints[k].range
        scene.set_joint_states(q)
        truth = scene.render(camera).rgb
        oracle.set_value(k, float(q[k]))
        static = _psnr(render_images(base, [camera]).rgb[0], truth)
        after = _psnr(render_images(oracle.gaussians(), [camera]).rgb[0], truth)
        assert after > static + 3.0, (static, after)


def test_label_accuracy_maps_part_ids_and_reports_movable_parts_apart():
    true = torch.tensor([-1, -1, -1, -1, 0, 0, 1, 1])
    opacities = torch.ones(8)
    assert label_accuracy(torch.tensor([-1, -1, -1, -1, 5, 5, 2, 2]), true, opacities) == (1.0, 1.0)
    overall, movable = label_accuracy(torch.full((8,), -1), true, opacities)  # no part found at all
    assert overall == 0.5 and movable == 0.0


def test_bench_rollout_last_line(tmp_path, capsys):
    torch.manual_seed(0)
    save_checkpoint(PartRM(MINI), MINI, tmp_path / "mini")
    args = argparse.Namespace(episodes=2, steps=2, policy="random", transition="articulated",
                              model=str(tmp_path / "mini"), out=str(tmp_path / "rollout.md"))
    bench_rollout(args)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("rollout: transition=articulated policy=random episodes=2 steps=2 joint_error_median=")
    for key in ("psnr_last=", "oracle_last=", "static_last="):
        assert key in last
    assert "| 2 |" in (tmp_path / "rollout.md").read_text()


def test_paired_rollout_replays_the_twins_drags_in_imagination():
    """Step 0 is the reset, then exactly ``steps`` drags chosen from the twin's observation reach both worlds; two
    envs that would draw different tasks from one seed are refused."""
    from partrm_gym.app.paired_rollout import paired_rollout
    from partrm_gym.envs.sim_env import PartRMSimEnv
    from partrm_gym.envs.world_model_env import PartRMEnv
    from partrm_gym.model.world_model import WorldModel

    torch.manual_seed(0)
    model = WorldModel(PartRM(MINI), MINI)
    task = {"resolution": 32, "max_steps": 10, "control_mode": "pixel_drag"}
    twin, imagined = PartRMSimEnv(category="drawer", **task), PartRMEnv(world_model=model, category="drawer", **task)
    seen = []

    def act(obs: dict) -> np.ndarray:
        seen.append(obs["image"].copy())
        return np.array([0.0, 0.0, 0.3, 0.0], np.float32)

    steps = list(paired_rollout(twin, imagined, act, seed=5, steps=3))
    assert [s.step for s in steps] == [0, 1, 2, 3] and steps[0].action is None
    assert all(np.array_equal(a, s.twin_obs["image"]) for a, s in zip(seen, steps[:3]))  # chosen from the twin
    assert imagined.task.seed == twin.task.seed and "joint_fraction" in steps[-1].imagined_info
    twin.close()
    other = PartRMEnv(world_model=model, category="door", **task)
    with np.testing.assert_raises_regex(RuntimeError, "different tasks"):
        list(paired_rollout(PartRMSimEnv(category="drawer", **task), other, act, seed=5, steps=1))
    imagined.close()
    other.close()
