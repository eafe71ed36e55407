"""The default model shipped in the package loads, is small, documents itself, and drives the env."""

import json

import gymnasium as gym
import numpy as np

import partrm_gym  # noqa: F401
from partrm_gym.model.world_model import WorldModel, default_checkpoint_dir

MAX_MB = 20


def test_bundle_files_and_size():
    folder = default_checkpoint_dir()
    for name in ("model.safetensors", "config.yaml", "provenance.json", "data_config.yaml", "training_summary.json",
                 "eval.md"):
        assert (folder / name).is_file(), name
    assert (folder / "model.safetensors").stat().st_size <= MAX_MB * 2**20
    stages = json.loads((folder / "training_summary.json").read_text())["stages"]
    assert all(s["steps"] > 0 for s in stages)
    # stages 0-2 first; the articulation head is trained last, on the backbone as bundled (stage 3 freezes it)
    assert [s["stage"] for s in stages[:3]] == [0, 1, 2] and stages[-1]["stage"] == 3


def test_default_model_drives_the_world_model_env():
    wm = WorldModel.from_pretrained()
    assert wm.config.name == "tiny"
    env = gym.make("PartRM-Drawer-v0", world_model=wm)
    obs, _ = env.reset(seed=0)
    obs, reward, *_ = env.step(np.array([0.0, 0.1, -0.2, 0.1], np.float32))
    assert obs["image"].shape == (64, 64, 3) and np.isfinite(reward)
    env.close()
