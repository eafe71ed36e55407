"""Fine-tuning from LGM-format weights: `init_from: lgm:PATH`, stage 1 against the frozen teacher, then stages 2 and
3, on a tiny dataset rendered in LGM's rig (elevation 0) with the existing datagen; the shipped lgm configs."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train import _config as train_config

from partrm_gym.cameras import RigConfig
from partrm_gym.config import load_config, save_config
from partrm_gym.model.config import ModelConfig
from partrm_gym.model.lgm_weights import lgm_config
from partrm_gym.model.networks import build_network
from partrm_gym.train.data_config import DataConfig, load_data_config
from partrm_gym.train.data_format import DatasetError
from partrm_gym.train.datagen import merge_manifest, run_shard
from partrm_gym.train.train import check_data_fits_model
from partrm_gym.train.train import main as train_main
from partrm_gym.train.train_config import TrainConfig

SMALL = Path(__file__).parent / "fixtures" / "lgm" / "small"
LGM_RIG = RigConfig(canonical_elevation_deg=0.0)
DATA = {"name": "lgm-test", "categories": ("laptop",), "test_category": "microwave", "train_objects_per_category": 1,
        "val_objects_per_category": 1, "test_objects": 0, "max_parts_per_object": 1, "states_per_part": 2,
        "max_drags": 10, "input_resolution": 64, "splatter_resolution": 32, "view_resolution": 32}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("lgm_train")
    run_shard(DataConfig(**DATA, rig=LGM_RIG), root / "data", progress=False)
    merge_manifest(root / "data")
    save_config(lgm_config(json.loads((SMALL / "config.json").read_text())), root / "model.yaml")
    return root


def _config(root: Path, name: str, **kw) -> Path:
    """test_train's run config, with the small LGM network, 2 steps of batch 2 (the dataset has 4 training pairs)."""
    return train_config(root, name, **{"model": str(root / "model.yaml"), "batch_size": 2, "steps": 2,
                                       "eval_pairs": 1, **kw})


def test_lgm_stages_chain_from_lgm_weights(setup):
    lgm = f"lgm:{SMALL / 'model.safetensors'}"
    assert train_main([str(_config(setup, "s1", stage=1, splatter_target="teacher", init_from=lgm))]) == 0
    assert train_main([str(_config(setup, "s2", stage=2, init_from=str(setup / "s1" / "final")))]) == 0
    assert train_main([str(_config(setup, "s3", stage=3, init_from=str(setup / "s2" / "final")))]) == 0
    fixture = load_file(str(SMALL / "model.safetensors"))
    s1 = load_file(str(setup / "s1" / "final" / "model.safetensors"))
    assert set(fixture) <= set(s1) and any(k.startswith("drag_embedding.") for k in s1)
    assert any(not torch.equal(fixture[k].float(), s1[k]) for k in fixture)  # stage 1 trained LGM's weights
    s2, s3 = (load_file(str(setup / s / "final" / "model.safetensors")) for s in ("s2", "s3"))
    changed = {k for k in s3 if k not in s2 or not torch.equal(s2[k], s3[k])}
    assert changed and all(k.startswith("articulation.") for k in changed)  # stage 3: the head alone
    assert load_config(ModelConfig, setup / "s3" / "final" / "config.yaml").layout == "lgm"


@pytest.mark.slow
def test_lgm_teacher_run_resumes_exactly(setup):
    lgm = f"lgm:{SMALL / 'model.safetensors'}"
    straight = _config(setup, "straight", stage=1, splatter_target="teacher", init_from=lgm, steps=4)
    assert train_main([str(straight)]) == 0
    cut = _config(setup, "cut", stage=1, splatter_target="teacher", init_from=lgm, steps=2)
    assert train_main([str(cut)]) == 0
    assert train_main([str(cut), "--resume", "--steps", "4"]) == 0
    a, b = (load_file(str(setup / n / "final" / "model.safetensors")) for n in ("straight", "cut"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def test_data_must_be_rendered_in_the_models_rig(setup):
    model_cfg = lgm_config(json.loads((SMALL / "config.json").read_text()))
    check_data_fits_model(DataConfig(**DATA, rig=LGM_RIG), model_cfg, "data")
    with pytest.raises(DatasetError, match=r"elevation 20.0°.*not the model's.*elevation 0.0°"):
        check_data_fits_model(DataConfig(**DATA), model_cfg, "data/default")
    with pytest.raises(ValueError, match="lgm:"):
        train_main([str(_config(setup, "wrong", stage=1, init_from=f"lgm:{SMALL / 'model.safetensors'}",
                                model="model/tiny"))])


def test_shipped_lgm_configs():
    for stage in (1, 2, 3):
        cfg = load_config(TrainConfig, f"train/lgm_stage{stage}")
        assert cfg.stage == stage and cfg.mixed_precision
        assert cfg.activation_checkpointing == (stage < 3)  # stage 3 trains the head on stored features
    assert load_config(TrainConfig, "train/lgm_stage1").splatter_target == "teacher"
    assert load_config(TrainConfig, "train/lgm_stage1").init_from.startswith("lgm:")
    assert load_config(TrainConfig, "train/lgm_stage3").reconstruction_cache_states == 512
    model = load_config(ModelConfig, "model/lgm_big")
    assert model.layout == "lgm" and model.input_elevation_deg == 0.0 and model.output_size == 128
    with torch.device("meta"):  # docs/scale.md's count: LGM's 415.0 M + the paper's drag embedding
        assert round(sum(p.numel() for p in build_network(model).parameters()) / 1e6, 1) == 460.3
    released = load_config(ModelConfig, "model/lgm_big_released")
    assert released.drag_embedding == "released" and released.lgm_cam_radius == 2.4
    data = load_data_config("data/paper")
    assert data.rig.canonical_elevation_deg == 0.0 and data.input_resolution == model.input_size == 256
    assert data.splatter_resolution == model.output_size and data.rig.radius == model.rig_radius
    check_data_fits_model(data, model, "data/paper")


def test_a_bad_lgm_path_fails_before_the_data_is_read(tmp_path, capsys):
    """`init_from: lgm:PATH` is checked first: the run's data folder does not even exist here."""
    from partrm_gym.app.cli import main

    config = train_config(tmp_path, "run", stage=1, init_from=f"lgm:{tmp_path / 'nope.safetensors'}",
                          data=str(tmp_path / "no_data"))
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope.safetensors: no such LGM weights file" in err and "ashawkey/LGM" in err
    config = train_config(tmp_path, "run2", stage=1, init_from=f"lgm:{tmp_path}", data=str(tmp_path / "no_data"))
    assert main(["train", str(config)]) == 2
    assert "is a folder, not an LGM weights file" in capsys.readouterr().err


def test_python_m_train_reports_user_errors_in_one_line(tmp_path):
    """What torchrun launches prints the same one-line error as `partrm-gym train`, with no traceback."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "partrm_gym.train", str(tmp_path / "missing.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("partrm-gym train: error:") and "missing.yaml" in lines[0]
