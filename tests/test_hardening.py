"""Property-based fuzzing (hypothesis) of what users feed in: env actions, checkpoints, dataset files, URDFs."""

import shutil

import numpy as np
import pytest
import torch
from conftest import MINI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from partrm_gym.assets.partnet import AssetError
from partrm_gym.envs.sim_env import PartRMSimEnv
from partrm_gym.envs.world_model_env import PartRMEnv
from partrm_gym.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from partrm_gym.model.partrm import PartRM
from partrm_gym.model.world_model import WorldModel
from partrm_gym.scene import Scene
from partrm_gym.train.data_config import DataConfig
from partrm_gym.train.data_format import DatasetError
from partrm_gym.train.datagen import merge_manifest, run_shard
from partrm_gym.train.dataset import PartDragDataset

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ANY_FLOAT = st.floats(width=32, allow_nan=True, allow_infinity=True)


@pytest.mark.parametrize("family", ["twin", "world_model"])
def test_env_actions_fuzz(family):
    torch.manual_seed(0)
    env = (PartRMSimEnv(category="drawer", resolution=32, max_steps=3) if family == "twin" else
           PartRMEnv(world_model=WorldModel(PartRM(MINI), MINI), category="drawer", resolution=32, max_steps=3))
    env.reset(seed=0)

    @FUZZ
    @given(action=arrays(np.float32, 4, elements=ANY_FLOAT))
    def check(action):
        if not np.isfinite(action).all():
            with pytest.raises(ValueError, match="NaN or inf"):
                env.step(action)
            return
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs) and np.isfinite(reward)
        if terminated or truncated:
            env.reset()

    check()
    env.close()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "mini"
    torch.manual_seed(0)
    save_checkpoint(PartRM(MINI), MINI, folder)
    return folder


@FUZZ
@given(where=st.floats(0.0, 1.0, exclude_max=True), flip=st.integers(1, 255))
def test_corrupted_checkpoint_never_loads_silently(checkpoint, tmp_path_factory, where, flip):
    folder = tmp_path_factory.mktemp("bad") / "ckpt"
    shutil.copytree(checkpoint, folder)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[int(where * len(data))] ^= flip  # always a change
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(folder)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzzdata") / "data"
    cfg = DataConfig(name="fuzz", categories=("laptop",), test_category="microwave", train_objects_per_category=1,
                     val_objects_per_category=1, test_objects=1, max_parts_per_object=1, states_per_part=2,
                     max_drags=2, input_resolution=16, splatter_resolution=8, view_resolution=16)
    run_shard(cfg, root, progress=False)
    merge_manifest(root)
    return root


def _read_all(root):
    ds = PartDragDataset(root, "train", cache_states=0)
    return [ds[i] for i in range(len(ds))]


@FUZZ
@given(pick=st.integers(0, 10_000), where=st.floats(0.0, 1.0, exclude_max=True), flip=st.integers(1, 255))
def test_corrupted_dataset_files_are_named_or_harmless(dataset, pick, where, flip):
    """A flipped byte in a PNG or npz either raises DatasetError naming the file or decodes to the same data."""
    reference = _read_all(dataset)
    files = sorted(p for p in (dataset / "objects").rglob("*") if p.suffix in (".png", ".npz"))
    victim = files[pick % len(files)]
    original = victim.read_bytes()
    data = bytearray(original)
    data[int(where * len(data))] ^= flip
    victim.write_bytes(bytes(data))
    try:
        try:
            items = _read_all(dataset)
        except DatasetError as e:
            assert victim.name in str(e)
            return
        for a, b in zip(items, reference):
            for k in a:
                assert torch.equal(a[k], b[k]), f"{victim} was corrupted and read back as different data ({k})"
    finally:
        victim.write_bytes(original)


@FUZZ
@given(text=st.text(max_size=300))
def test_garbage_urdf_is_an_asset_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("urdf") / "x.urdf"
    path.write_text(text)
    with pytest.raises(AssetError, match="x.urdf"):
        Scene(path)


@pytest.mark.parametrize("mutation, message", [
    (lambda u: u.replace('lower="', 'lower="nan'), "not a number|not finite"),
    (lambda u: u.replace("<limit", "<nolimit", 1), "no <limit>"),
    (lambda u: u.replace('child link="', 'child link="ghost_', 1), "not defined"),
    (lambda u: u.replace("</robot>", ""), "not well-formed"),
])
def test_malformed_procedural_urdf_names_the_problem(tmp_path, mutation, message):
    from partrm_gym.assets.procedural import generate

    urdf = generate("storage_drawer", 0).urdf()
    path = tmp_path / "object.urdf"
    path.write_text(mutation(urdf))
    with pytest.raises(AssetError, match=message):
        Scene(path)
