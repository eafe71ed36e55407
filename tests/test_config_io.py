from dataclasses import dataclass, field

import pytest

from partrm_gym.config import ConfigError, from_dict, load_config, save_config
from partrm_gym.io import atomic_open, atomic_write_text


@dataclass
class Inner:
    lr: float = 1e-3
    steps: int = 10


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    sizes: tuple[int, ...] = (1, 2)
    device: str | None = None


def test_yaml_round_trip(tmp_path):
    cfg = Outer(name="y", inner=Inner(lr=0.5, steps=3), sizes=(4, 5), device="cpu")
    path = save_config(cfg, tmp_path / "c.yaml")
    assert load_config(Outer, path) == cfg


@pytest.mark.parametrize("data, message", [
    ({"nme": "x"}, "unknown key"),
    ({"inner": {"steps": 1.5}}, r"inner.steps: expected an integer"),
    ({"inner": {"lr": "fast"}}, r"inner.lr: expected a number"),
    ({"sizes": 3}, "expected a list"),
])
def test_strict_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Outer, tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Outer, bad)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_open(path, "w") as f:
        f.write("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temp file left behind


def test_every_shipped_training_config_is_valid():
    from pathlib import Path

    from partrm_gym.train.train_config import TrainConfig

    shipped = sorted((Path(__file__).parents[1] / "configs" / "train").glob("*.yaml"))
    assert len(shipped) >= 6
    for path in shipped:
        cfg = load_config(TrainConfig, path)
        assert cfg.stage in (0, 1, 2, 3), path
    mixed = load_config(TrainConfig, Path(__file__).parents[1] / "configs" / "train" / "tiny_stage2_real.yaml")
    assert mixed.extra_data == ("data/real",)
