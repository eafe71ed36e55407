"""Checkpoints and the inference API: round trip, clear errors, WorldModel.predict."""

import numpy as np
import pytest
import torch
from conftest import MINI, mini_inputs

from partrm_gym.config import save_config
from partrm_gym.model.checkpoint import CheckpointError, file_sha256, load_checkpoint, save_checkpoint
from partrm_gym.model.partrm import PartRM
from partrm_gym.model.world_model import WorldModel


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    model = PartRM(MINI)
    save_checkpoint(model, MINI, tmp_path / "ckpt", {"note": "test"})
    return tmp_path / "ckpt", model


def test_round_trip_identical_outputs(ckpt):
    folder, model = ckpt
    loaded, cfg, prov = load_checkpoint(folder)
    assert cfg == MINI and prov["note"] == "test"
    assert prov["weights_sha256"] == file_sha256(folder / "model.safetensors")  # checked on every load
    x = mini_inputs()
    torch.testing.assert_close(loaded(*x), model.eval()(*x), rtol=0, atol=0)
    assert not any(p.suffix in (".pt", ".pth", ".pkl") for p in folder.iterdir())


def test_corrupt_missing_and_mismatched(ckpt, tmp_path):
    folder, _ = ckpt
    (folder / "model.safetensors").write_bytes(b"\x00" * 50)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_checkpoint(folder)
    with pytest.raises(CheckpointError, match="nope is nothing, not a checkpoint folder"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="is a device, not a checkpoint folder"):
        load_checkpoint("/dev/null")
    torch.manual_seed(0)
    save_checkpoint(PartRM(MINI), MINI, tmp_path / "other")
    bigger = MINI.__class__(**{**MINI.__dict__, "down_channels": (8, 16, 24), "up_channels": (24, 8)})
    save_config(bigger, tmp_path / "other" / "config.yaml")
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(tmp_path / "other")


def test_world_model_predict(ckpt):
    folder, _ = ckpt
    wm = WorldModel.from_pretrained(folder)
    images, _, drags, mask = mini_inputs(B=2)
    u8 = (images.permute(0, 1, 3, 4, 2) * 255).byte().numpy()
    g = wm.predict(u8, drags, mask)
    assert g.means.shape == (2, 4 * 8 * 8, 3)
    g.validate()
    static = wm.predict(u8)
    assert torch.equal(static.means, wm.predict(u8, drags, mask).means)  # zero-initialised drag convs
    with pytest.raises(ValueError, match="drags must be"):
        wm.predict(u8, drags[:, :, :2])
    with pytest.raises(ValueError, match="normalised"):
        wm.predict(u8, drags * 3, mask)
    with pytest.raises(ValueError, match="views must be"):
        wm.predict(np.zeros((2, 3, 16, 16, 3), np.uint8))
