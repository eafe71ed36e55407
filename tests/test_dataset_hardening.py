"""Datagen deletes only what it wrote, refuses bad configs and shard flags up front, repairs a dataset
on re-run, and verify checks every shape, size and key the reader relies on."""

import argparse
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from partrm_gym.config import ConfigError
from partrm_gym.errors import UsageError, UserError
from partrm_gym.train import datagen, verify
from partrm_gym.train.data_config import DataConfig, load_data_config, plan_objects
from partrm_gym.train.data_format import (
    DatasetError,
    is_generated_path,
    read_npz,
    write_npz,
    write_png,
)
from partrm_gym.train.datagen import merge_manifest, run_shard
from partrm_gym.train.dataset import PartDragDataset
from partrm_gym.train.verify import verify_dataset

CFG = {"name": "hardening", "categories": ("laptop",), "test_category": "microwave", "train_objects_per_category": 1,
       "val_objects_per_category": 1, "test_objects": 1, "max_parts_per_object": 1, "states_per_part": 2,
       "max_drags": 2, "input_resolution": 16, "splatter_resolution": 8, "view_resolution": 16}


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening") / "data"
    run_shard(DataConfig(**CFG), root, progress=False)
    merge_manifest(root)
    return root


@pytest.fixture
def ds(pristine, tmp_path):
    """A private copy of the generated dataset, free to break."""
    root = tmp_path / "data"
    shutil.copytree(pristine, root)
    return root


def _first_object(root: Path) -> Path:
    return sorted(p for p in (root / "objects").iterdir() if not p.name.startswith("."))[0]


# 1. datagen never deletes what it did not write

def test_non_dataset_out_folder_is_refused_untouched(tmp_path):
    out = tmp_path / "mine"
    (out / "objects" / "storage_drawer_0000000").mkdir(parents=True)
    (out / "objects" / "storage_drawer_0000000" / "mywork.txt").write_text("precious")
    (out / "a_notes.txt").write_text("mine too")
    with pytest.raises(DatasetError, match=r"not empty and is not a dataset.*a_notes\.txt.*another --out"):
        run_shard(DataConfig(**CFG), out, progress=False)
    assert sorted(p.name for p in out.rglob("*")) == ["a_notes.txt", "mywork.txt", "objects", "storage_drawer_0000000"]
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(DatasetError, match="not a folder"):
        run_shard(DataConfig(**CFG), afile, progress=False)


@pytest.mark.parametrize("where", ["final", "partial"])
def test_unknown_file_in_unfinished_object_is_kept_and_named(ds, where):
    obj = _first_object(ds)
    (obj / "object.json").unlink()  # unfinished
    folder = obj if where == "final" else obj.rename(obj.with_name(".partial-" + obj.name))
    mine = folder / "states" / "p0_s0" / "mywork.txt"
    mine.write_text("precious")
    with pytest.raises(DatasetError, match=rf"{mine}.*not something datagen writes.*move it out"):
        run_shard(DataConfig(**CFG), ds, progress=False)
    assert mine.read_text() == "precious" and (folder / "object.urdf").is_file()


def test_unfinished_object_of_generated_files_is_redone(ds, pristine):
    obj = _first_object(ds)
    (obj / "object.json").unlink()
    (obj / ".object.json.abc_12.tmp").write_text("{")  # a killed atomic write
    obj.rename(obj.with_name(".partial-" + obj.name))
    run = run_shard(DataConfig(**CFG), ds, progress=False)["run"]
    assert run == {"generated": 1, "already_present": 2, "repaired": 0}
    assert _digest(ds) == _digest(pristine)


def test_generated_path_names():
    for rel in ("object.json", "object.urdf", "pairs.npz", ".object.json.k2_jx9.tmp", "states/p0_s1/input_3.png",
                "states/p12_s0/view_11.png", "states/p1_s5/arrays.npz"):
        assert is_generated_path(rel), rel
    for rel in ("mywork.txt", "states/p0_s0/mywork.txt", "states/notes/view_00.png", "states/p0_s0/view_1.png",
                "states/p0_s0/extra/arrays.npz", "object.json.bak", "states", ".DS_Store"):
        assert not is_generated_path(rel), rel
    assert is_generated_path("states", is_dir=True) and is_generated_path("states/p3_s2", is_dir=True)
    assert not is_generated_path("backup", is_dir=True)


# 2. bad configs and shard flags are refused before any work

@pytest.mark.parametrize("change, message", [
    ({"train_objects_per_category": -1}, r"train_objects_per_category = -1 is out of range: it must be between 0"),
    ({"test_objects": -2}, r"test_objects = -2 .*between 0 and"),
    ({"train_objects_per_category": 0, "val_objects_per_category": 0, "test_objects": 0}, "no objects"),
    ({"states_per_part": 1}, r"states_per_part = 1 .*≥ 2"),
    ({"categories": ()}, "categories is empty"),
    ({"categories": ("laptop", "laptop")}, "more than once"),
    ({"input_resolution": 0}, r"input_resolution = 0 .*≥ 1"),
    ({"view_resolution": -16}, r"view_resolution = -16 .*≥ 1"),
    ({"max_drags": 0}, r"max_drags = 0 .*≥ 1"),
    ({"seed": -1}, r"seed = -1 .*≥ 0"),
])
def test_out_of_range_configs_name_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**{**CFG, **change})


def test_empty_and_bad_config_files(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    with pytest.raises(ConfigError, match=r"empty\.yaml is empty; copy a shipped one, e.g. configs/data/tiny\.yaml"):
        load_data_config(empty)
    args = argparse.Namespace(config=str(empty), out=str(tmp_path / "out"), shard=0, num_shards=1, quiet=True,
                              workers=1)
    with pytest.raises(ConfigError, match="is empty"):
        datagen.main(args)
    assert not (tmp_path / "out").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**CFG, "categories": list(CFG["categories"]), "test_objects": -1}))
    with pytest.raises(ConfigError, match=r"bad\.yaml.*test_objects = -1"):
        load_data_config(bad)
    assert load_data_config("data/tiny").name == "tiny"


@pytest.mark.parametrize("shard, num_shards, message", [
    (-1, 1, r"--shard -1 is out of range: .* between 0 and 0"),
    (0, 0, r"--num-shards 0 is out of range: it must be between 1 and 3"),
    (2, 2, r"--shard 2 is out of range: with --num-shards 2 it must be between 0 and 1"),
    (0, 4, r"--num-shards 4 is out of range"),
])
def test_bad_shard_flags_fail_before_any_write(tmp_path, shard, num_shards, message):
    out = tmp_path / "out"
    with pytest.raises(UsageError, match=message) as info:
        run_shard(DataConfig(**CFG), out, shard, num_shards, progress=False)
    assert isinstance(info.value, UserError) and not out.exists()


# 3. verify checks what the reader relies on, and names the file

def _break_png_size(root):
    path = sorted(root.rglob("view_07.png"))[0]
    write_png(path, np.zeros((8, 16, 3), np.uint8))
    return path, r"a 16x8 image .*expected 16x16 RGB"


def _break_png_channels(root):
    import cv2

    path = sorted(root.rglob("input_2.png"))[0]
    path.write_bytes(cv2.imencode(".png", np.zeros((16, 16, 4), np.uint8))[1].tobytes())
    return path, r"4 channel"


def _break_state_key(root):
    path = sorted(root.rglob("arrays.npz"))[0]
    arrays = read_npz(path)
    write_npz(path, {k: v for k, v in arrays.items() if k != "seg"})
    return path, r"lacks arrays \['seg'\]"


def _break_state_dtype(root):
    path = sorted(root.rglob("arrays.npz"))[1]
    arrays = read_npz(path)
    write_npz(path, {**arrays, "depth": arrays["depth"].astype(np.float32)})
    return path, r"depth has dtype float32, expected float16"


def _break_depth_shape(root):
    path = sorted(root.rglob("arrays.npz"))[2]
    arrays = read_npz(path)
    write_npz(path, {**arrays, "depth": arrays["depth"][:6]})
    return path, r"depth has shape \(6, 16, 16\), expected \(12, 16, 16\)"


def _break_pairs_shape(root):
    path = sorted(root.rglob("pairs.npz"))[0]
    pairs = read_npz(path)
    write_npz(path, {**pairs, "drags": pairs["drags"][:, :, :1]})
    return path, r"drags has shape \(2, 4, 1, 4\), expected \(2, 4, 2, 4\)"


def _break_pairs_index(root):
    path = sorted(root.rglob("pairs.npz"))[1]
    pairs = read_npz(path)
    write_npz(path, {**pairs, "dst": pairs["dst"] + 5})
    return path, r"dst\[0\] = \d+ is not a state index"


def _break_object_json(root):
    path = sorted(root.rglob("object.json"))[0]
    meta = json.loads(path.read_text())
    del meta["states"]
    path.write_text(json.dumps(meta))
    return path, r"lacks key\(s\) \['states'\]"


@pytest.mark.parametrize("breaker", [_break_png_size, _break_png_channels, _break_state_key, _break_state_dtype,
                                     _break_depth_shape, _break_pairs_shape, _break_pairs_index, _break_object_json])
def test_verify_names_every_kind_of_broken_file(ds, breaker):
    path, message = breaker(ds)
    problems = verify_dataset(ds)
    assert len(problems) == 1 and problems[0].startswith(f"{path}: "), problems
    assert re.search(message, problems[0]), problems[0]
    assert "delete this file, then re-run the `partrm-gym datagen` command" in problems[0]
    with pytest.raises(DatasetError, match=message):  # the reader agrees, with the same message
        train = PartDragDataset(ds, "train", cache_states=0)
        val, test = PartDragDataset(ds, "val", cache_states=0), PartDragDataset(ds, "test", cache_states=0)
        for d in (train, val, test):
            for i in range(len(d)):
                d[i]


def test_verify_flags_empty_dataset_and_foreign_files(ds, capsys):
    (_first_object(ds) / "states" / "p0_s0" / "notes.txt").write_text("mine")
    problems = verify_dataset(ds)
    assert len(problems) == 1 and "notes.txt: not a file datagen writes; move it out" in problems[0]
    manifest = json.loads((ds / "manifest.json").read_text())
    (ds / "manifest.json").write_text(json.dumps({**manifest, "objects": []}))
    assert any("lists no objects" in p for p in verify_dataset(ds))
    assert verify.main(argparse.Namespace(dataset=str(ds))) == 1
    assert f"{ds}: 1 problem(s)" in capsys.readouterr().out
    assert any("not a folder" in p for p in verify_dataset(ds / "nowhere"))


# 4 + 5. a re-run repairs what verify names, byte-identical, and reports what it did

def test_rerun_regenerates_missing_and_emptied_files(ds, pristine, capsys):
    view = sorted(ds.rglob("view_05.png"))[0]
    view.unlink()
    emptied = sorted(ds.rglob("arrays.npz"))[-1]
    emptied.write_bytes(b"")
    problems = verify_dataset(ds)
    assert any(p.startswith(f"{view}: missing; re-run the `partrm-gym datagen` command") for p in problems)
    assert any(p.startswith(f"{emptied}: empty; re-run the `partrm-gym datagen` command") for p in problems)
    assert verify.main(argparse.Namespace(dataset=str(ds))) == 1
    out = capsys.readouterr().out
    command = f"partrm-gym datagen {ds / 'config.yaml'} --out {ds}"
    assert f"to repair, run:\n  {command}\n" in out

    # what verify printed: the dataset's own config.yaml, the same folder
    args = argparse.Namespace(config=str(ds / "config.yaml"), out=str(ds), shard=0, num_shards=1, quiet=True, workers=1)
    assert datagen.main(args) == 0
    assert "shard 0/1: 2 generated (2 repaired), 1 already present (3 objects, 6 states)" \
        in capsys.readouterr().out
    assert _digest(ds) == _digest(pristine)
    assert verify_dataset(ds) == []
    assert run_shard(DataConfig(**CFG), ds, progress=False)["run"] == {"generated": 0, "already_present": 3,
                                                                       "repaired": 0}
    assert _digest(ds) == _digest(pristine)


def test_sharded_repair_names_the_shard(tmp_path):
    cfg = DataConfig(**CFG)
    root = tmp_path / "data"
    for shard in (0, 1):
        run_shard(cfg, root, shard, 2, progress=False)
    merge_manifest(root)
    victim = plan_objects(cfg)[1].object_id  # shard 1 of 2
    (root / "objects" / victim / "pairs.npz").unlink()
    report, manifest, loaded = verify._verify(root, progress=False)
    assert verify.repair_commands(root, report, manifest, loaded) == [
        f"partrm-gym datagen {root / 'config.yaml'} --out {root} --shard 1 --num-shards 2"]
