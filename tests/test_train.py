"""Training: the three stages run, resume is exact, and 2-process DDP matches one process."""

import csv
import os
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import MINI
from safetensors.torch import load_file

from partrm_gym.config import save_config
from partrm_gym.train.data_config import DataConfig
from partrm_gym.train.datagen import merge_manifest, run_shard
from partrm_gym.train.train import main as train_main

DATA = {"name": "train-test", "categories": ("laptop", "trashcan"), "test_category": "microwave",
        "train_objects_per_category": 2, "val_objects_per_category": 1, "test_objects": 1,
        "max_parts_per_object": 1, "states_per_part": 3, "max_drags": 3, "input_resolution": 16,
        "splatter_resolution": 8, "view_resolution": 16}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    run_shard(DataConfig(**DATA), root / "data", progress=False)
    merge_manifest(root / "data")
    save_config(MINI, root / "mini.yaml")
    return root


def _config(root, name, **kw):
    cfg = {"model": str(root / "mini.yaml"), "data": str(root / "data"), "out": str(root / name), "batch_size": 4,
           "steps": 4, "warmup_steps": 1, "log_every": 1, "save_every": 2, "sample_every": 2, "eval_pairs": 2,
           "render_views": 2, "seed": 0, **kw}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def _losses(run):
    with open(run / "log.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_three_stages_chain(setup):
    assert train_main([str(_config(setup, "s0", stage=0))]) == 0
    assert train_main([str(_config(setup, "s1", stage=1, init_from=str(setup / "s0" / "final")))]) == 0
    assert train_main([str(_config(setup, "s2", stage=2, init_from=str(setup / "s1" / "final")))]) == 0
    for stage in ("s0", "s1", "s2"):
        assert (setup / stage / "final" / "model.safetensors").is_file()
        assert len(_losses(setup / stage)) == 4
    assert list((setup / "s2" / "samples").glob("*.png"))
    # stage 1 starts from stage 0's weights, not from scratch
    s0, s1_start = _weights(setup / "s0" / "final"), _weights(setup / "s1" / "checkpoints" / "step_0000002")
    assert any(not torch.equal(s0[k], s1_start[k]) for k in s0)


def test_resume_is_exact(setup):
    straight = _config(setup, "straight", stage=1)
    assert train_main([str(straight)]) == 0
    interrupted = _config(setup, "interrupted", stage=1, steps=2)
    assert train_main([str(interrupted)]) == 0
    assert train_main([str(interrupted), "--resume", "--steps", "4"]) == 0
    a, b = _weights(setup / "straight" / "final"), _weights(setup / "interrupted" / "final")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_main([str(_config(setup, "fresh", stage=1)), "--resume"])


def test_sigkill_during_training_then_resume(setup):
    """A training process killed with SIGKILL mid-run resumes from its last checkpoint and ends with the
    same weights as an uninterrupted run (the checkpoint written before the kill is intact)."""
    import time

    straight = _config(setup, "kill_ref", stage=1, steps=12, save_every=2, sample_every=100)
    assert train_main([str(straight)]) == 0
    killed = _config(setup, "killed", stage=1, steps=12, save_every=2, sample_every=100)
    proc = subprocess.Popen([sys.executable, "-m", "partrm_gym.train", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    pointer = setup / "killed" / "checkpoints" / "latest.txt"
    deadline = time.time() + 240
    while time.time() < deadline and not pointer.exists():
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert pointer.exists() and not (setup / "killed" / "final").exists(), "killed too late or too early"
    assert train_main([str(killed), "--resume"]) == 0
    a, b = _weights(setup / "kill_ref" / "final"), _weights(setup / "killed" / "final")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def test_ddp_two_processes_match_one(setup):
    single = _config(setup, "single", stage=1, steps=2, save_every=2)
    assert train_main([str(single)]) == 0
    ddp = _config(setup, "ddp", stage=1, steps=2, save_every=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
                        "-m", "partrm_gym.train", str(ddp)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    # rank 0 logs its own half-batch loss; the weights after 2 steps are the real check
    a, b = _weights(setup / "single" / "final"), _weights(setup / "ddp" / "final")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_eval_rows_and_report(setup, tmp_path):
    import argparse

    from partrm_gym.train.evaluate import evaluate, summarise
    from partrm_gym.train.evaluate import main as eval_main

    if not (setup / "s1" / "final").is_dir():
        assert train_main([str(_config(setup, "s1e", stage=1))]) == 0
        ckpt = setup / "s1e" / "final"
    else:
        ckpt = setup / "s1" / "final"
    rows = evaluate(ckpt, setup / "data", "test")
    methods = {r["method"] for r in rows}
    assert methods == {"static", "model", "gt_upper_bound"}
    assert all(r["psnr"] > 0 and 0 <= r["ssim"] <= 1 and r["chamfer"] >= 0 for r in rows)
    summary = summarise(rows)
    assert summary["all"]["gt_upper_bound"]["chamfer"] < summary["all"]["static"]["chamfer"]
    args = argparse.Namespace(checkpoint="none", data=str(setup / "data"), split="test", max_pairs=2, device="cpu",
                              out=str(tmp_path), lpips_weights=None)
    assert eval_main(args) == 0
    text = (tmp_path / "eval_test.md").read_text()
    assert "static" in text and "model |" not in text and "LPIPS: unavailable" in text
    assert (tmp_path / "eval_test.csv").is_file() and (tmp_path / "eval_test.png").is_file()
    # with a (stand-in) perceptual metric the column appears and is filled per pair
    calls = []

    def fake_lpips(pred, target):
        assert pred.shape[1] == 3 and pred.min() >= -1 and pred.max() <= 1
        calls.append(pred.shape[0])
        return (pred - target).abs().mean(dim=(1, 2, 3))

    rows = evaluate(None, setup / "data", "test", max_pairs=2, lpips_fn=fake_lpips)
    assert all(r["lpips"] >= 0 for r in rows) and calls == [8] * len(rows)  # the 8 evaluation views
    from partrm_gym.train.evaluate import markdown

    table = markdown(summarise(rows), "n/a")
    assert "LPIPS ↓" in table and "LPIPS: n/a" not in table


def test_splatter_loss_ignores_background_placeholders_and_quaternion_sign():
    from partrm_gym.gaussians import OPACITY, ROTATION, XYZ
    from partrm_gym.train.losses import splatter_loss

    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 4, 14, 8, 8, generator=g)
    target[:, :, ROTATION] = torch.nn.functional.normalize(target[:, :, ROTATION], dim=2)
    target[:, :, OPACITY] = (torch.rand(1, 4, 1, 8, 8, generator=g) > 0.5).float()
    assert splatter_loss(target, target) == 0
    flipped = target.clone()
    flipped[:, :, ROTATION] *= -1  # the same rotations
    assert splatter_loss(flipped, target) < 1e-12
    background = target[:, :, OPACITY] == 0
    moved = target.clone()
    moved[:, :, XYZ] += 5.0 * background  # placeholders of pixels with no Gaussian
    assert splatter_loss(moved, target) < 1e-12
    moved[:, :, XYZ] += 5.0 * ~background  # real Gaussians
    assert splatter_loss(moved, target) > 1.0
    opaque = target.clone()
    opaque[:, :, OPACITY] = 1.0  # background predicted as opaque is wrong
    assert splatter_loss(opaque, target) > 0.01


def test_stage3_trains_the_head_alone_on_the_models_own_reconstruction(setup):
    from partrm_gym.train.dataset import PartDragDataset
    from partrm_gym.train.reconstructions import FrozenReconstructions

    assert train_main([str(_config(setup, "a0", stage=0, steps=2))]) == 0
    assert train_main([str(_config(setup, "a3", stage=3, init_from=str(setup / "a0" / "final")))]) == 0
    before, after = _weights(setup / "a0" / "final"), _weights(setup / "a3" / "final")
    changed = {k for k in after if k not in before or not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("articulation.") for k in changed)  # the head learns, the backbone is untouched
    with open(setup / "a3" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(float(r["art_movable"]) > 0 for r in rows)
    # the labels belong to the reconstruction: an invisible Gaussian is never scored, every visible one is
    from partrm_gym.model.checkpoint import load_checkpoint

    model, _, _ = load_checkpoint(setup / "a3" / "final")
    data = FrozenReconstructions(PartDragDataset(setup / "data", "train"), model)
    item, pair = data[0], data.dataset[0]
    splatter, _ = model.reconstruct_with_features(pair["input_rgb"][None], pair["plucker"][None])
    visible = splatter[0, :, 3] > 0.05
    assert torch.equal(item["part_recon"] >= 0, visible)
    assert item["features_src"].shape[:2] == (4, MINI.up_channels[-1])


def test_extra_data_trains_on_several_datasets_and_refuses_ones_that_do_not_fit(setup, tmp_path):
    import json

    from partrm_gym.train.data_format import DatasetError
    from partrm_gym.train.dataset import PartDragDataset, training_pairs

    def generate(name, **changes):
        run_shard(DataConfig(**{**DATA, "categories": ("storage_drawer",), "test_category": "oven", **changes}),
                  tmp_path / name, progress=False)
        merge_manifest(tmp_path / name)
        return tmp_path / name

    other = generate("other")
    mixed = training_pairs([setup / "data", other], "train")
    first, second = PartDragDataset(setup / "data", "train"), PartDragDataset(other, "train")
    assert len(mixed) == len(first) + len(second)
    assert set(mixed.objects) == set(first.objects) | set(second.objects)
    assert torch.equal(mixed[len(mixed) - 1]["splatter_dst"], second[len(second) - 1]["splatter_dst"])
    assert mixed.category(0) == first.category(0) and mixed.category(len(first)) == "storage_drawer"

    assert train_main([str(_config(setup, "mix", stage=0, steps=2, extra_data=[str(other)]))]) == 0
    prov = json.loads((setup / "mix" / "final" / "provenance.json").read_text())
    assert prov["dataset"] == str(setup / "data") and prov["extra_datasets"][0]["dataset"] == str(other)
    assert prov["extra_datasets"][0]["dataset_hash"]

    from partrm_gym.train.dataset import MixedPartDragDataset

    with pytest.raises(DatasetError, match="no pairs in this split"):
        MixedPartDragDataset([first, PartDragDataset(other, "train", categories=["laptop"])])
    with pytest.raises(DatasetError, match="in both"):
        training_pairs([setup / "data", setup / "data"])
    with pytest.raises(DatasetError, match="rig or resolutions"):
        training_pairs([setup / "data", generate("finer", categories=("refrigerator",), input_resolution=32)])
