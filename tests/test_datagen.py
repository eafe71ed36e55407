"""Dataset generation: resumable after kill -9, byte-identical, sharded, verified, readable."""

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from partrm_gym.train.data_config import DataConfig, plan_objects
from partrm_gym.train.data_format import PARTIAL_PREFIX, DatasetError, read_npz, write_npz
from partrm_gym.train.datagen import merge_manifest, run_shard
from partrm_gym.train.dataset import PartDragDataset
from partrm_gym.train.verify import verify_dataset

TINY = {
    "name": "test", "seed": 3, "categories": ["laptop", "trashcan", "storage_drawer"], "test_category": "microwave",
    "train_objects_per_category": 3, "val_objects_per_category": 1, "test_objects": 2, "max_parts_per_object": 1,
    "states_per_part": 3, "max_drags": 4, "input_resolution": 24, "splatter_resolution": 16, "view_resolution": 24,
}


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def _datagen(cfg: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "partrm_gym.app.cli", "datagen", str(cfg), "--out", str(out),
                             "--quiet", "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _tree_digest(root: Path, sub: str = "") -> dict[str, str]:
    base = root / sub
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(base.rglob("*")) if p.is_file()}


def _finished_objects(root: Path) -> set[str]:
    """Objects whose folder is in place (an unfinished one writes its object.json before it is renamed)."""
    return {p.parent.name for p in (root / "objects").glob("*/object.json")
            if not p.parent.name.startswith(PARTIAL_PREFIX)}


def test_killed_run_resumes_to_byte_identical_dataset(tmp_path):
    cfg = _config_file(tmp_path)
    reference, resumed = tmp_path / "ref", tmp_path / "resumed"
    assert _datagen(cfg, reference).wait(timeout=300) == 0

    proc = _datagen(cfg, resumed)
    deadline = time.time() + 120
    while time.time() < deadline and not _finished_objects(resumed):
        time.sleep(0.002)
    proc.kill()  # SIGKILL: no cleanup handlers run
    proc.wait()
    assert not (resumed / "manifest.json").exists(), "the run finished before it could be killed"
    done_before = _finished_objects(resumed)
    assert done_before

    mtimes = {p: p.stat().st_mtime_ns for n in done_before for p in (resumed / "objects" / n).rglob("*")}
    assert _datagen(cfg, resumed).wait(timeout=300) == 0
    # finished objects were not redone
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    assert _tree_digest(resumed) == _tree_digest(reference)
    assert verify_dataset(resumed) == []


def test_shards_merge_to_the_same_objects(tmp_path):
    cfg = DataConfig(**{**TINY, "categories": tuple(TINY["categories"])})
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    run_shard(cfg, single, progress=False)
    merge_manifest(single)
    run_shard(cfg, sharded, 1, 2, progress=False)
    assert merge_manifest(sharded)["missing_shards"] == [0]
    with pytest.raises(DatasetError, match=r"shards \[0\]"):
        PartDragDataset(sharded)
    run_shard(cfg, sharded, 0, 2, progress=False)
    manifest = merge_manifest(sharded)
    assert manifest["missing_shards"] == []
    assert _tree_digest(sharded, "objects") == _tree_digest(single, "objects")
    n = len(plan_objects(cfg))
    assert sum(c["objects"] for c in manifest["splits"].values()) == n
    assert manifest["splits"]["test"]["objects"] == TINY["test_objects"]
    categories = {o["category"] for o in manifest["objects"] if o["split"] == "test"}
    assert categories == {"microwave"}


def test_reader_items_and_corruption_is_named(tmp_path):
    cfg = DataConfig(**{**TINY, "categories": tuple(TINY["categories"])})
    root = tmp_path / "ds"
    run_shard(cfg, root, progress=False)
    merge_manifest(root)
    ds = PartDragDataset(root, "train")
    assert len(ds) == 3 * 3 * 3 * 2  # categories x objects x ordered pairs of 3 states
    item = ds[0]
    assert item["input_rgb"].shape == (4, 3, 24, 24) and item["plucker"].shape == (4, 6, 24, 24)
    assert item["drags"].shape == (4, 4, 4) and item["drag_mask"].dtype == torch.bool
    assert item["splatter_src"].shape == (4, 14, 16, 16) and item["target_rgb"].shape == (12, 3, 24, 24)
    assert item["drag_mask"].any(), "no drags at all in the first pair"
    moved = (item["splatter_src"] - item["splatter_dst"]).abs().sum() > 0
    assert moved, "source and destination states are identical"

    victim = sorted(root.rglob("view_03.png"))[0]
    victim.write_bytes(victim.read_bytes()[:40])
    arrays = sorted(root.rglob("arrays.npz"))[1]
    arrays.write_bytes(b"not a zip")
    problems = verify_dataset(root)
    assert any(str(victim) in p and "corrupt" in p for p in problems)
    assert any(str(arrays) in p and "corrupt" in p for p in problems)
    fresh = PartDragDataset(root, "train", cache_states=0)
    with pytest.raises(DatasetError, match="corrupt"):
        for i in range(len(fresh)):
            fresh[i]


def test_other_format_version_is_refused(tmp_path):
    cfg = DataConfig(**{**TINY, "categories": tuple(TINY["categories"]), "train_objects_per_category": 1})
    run_shard(cfg, tmp_path, progress=False)
    manifest = merge_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1}))
    with pytest.raises(DatasetError, match="format version 1.*generate it again"):
        PartDragDataset(tmp_path, "train")


def test_wrong_splatter_shape_is_named(tmp_path):
    cfg = DataConfig(**{**TINY, "categories": tuple(TINY["categories"]), "train_objects_per_category": 1})
    run_shard(cfg, tmp_path, progress=False)
    merge_manifest(tmp_path)
    state = sorted(tmp_path.rglob("arrays.npz"))[0]
    arrays = read_npz(state)
    write_npz(state, {**arrays, "splatter": arrays["splatter"][:, :, :8]})  # e.g. written by another resolution
    ds = PartDragDataset(tmp_path, "train", cache_states=0)
    with pytest.raises(DatasetError, match=f"{state}: splatter has shape .*expected \\(4, 14, 16, 16\\)"):
        for i in range(len(ds)):
            ds[i]


def test_mismatched_config_is_refused(tmp_path):
    cfg = DataConfig(**{**TINY, "categories": tuple(TINY["categories"])})
    run_shard(cfg, tmp_path, progress=False)
    other = DataConfig(**{**TINY, "categories": tuple(TINY["categories"]), "seed": 4})
    with pytest.raises(DatasetError, match="different config"):
        run_shard(other, tmp_path, progress=False)


def test_bad_data_configs():
    with pytest.raises(ValueError, match="must not be a training category"):
        DataConfig(categories=("laptop",), test_category="laptop")
    with pytest.raises(ValueError, match="unknown category"):
        DataConfig(categories=("spaceship",))
    with pytest.raises(ValueError, match="at least 2"):
        DataConfig(states_per_part=1)
