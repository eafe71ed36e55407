"""``partrm-gym bench pipeline``: dataset generation states/s and training samples/s per stage.

Both are measured on a small dataset generated into a temporary folder with the resolutions of
``data/default`` (what the bundled ``tiny`` model trains on), so the figures are those of the
real pipeline, only shorter.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from partrm_gym.app.bench.report import emit_report, markdown_table
from partrm_gym.config import load_config, save_config
from partrm_gym.train.data_config import DataConfig
from partrm_gym.train.datagen import merge_manifest, run_shard
from partrm_gym.train.train import main as train_main
from partrm_gym.train.train_config import TrainConfig

LOG_EVERY = 5  # steps per logged samples/s figure
BENCH_OBJECTS = {"train_objects_per_category": 1, "val_objects_per_category": 1, "test_objects": 1}


def bench_datagen(root: Path) -> tuple[float, int, float]:
    """(states/s, states, KB per state) for a 1-object-per-category version of data/default."""
    cfg = replace(load_config(DataConfig, "data/default"), name="bench", **BENCH_OBJECTS)
    t = time.perf_counter()
    summary = run_shard(cfg, root, progress=False)
    seconds = time.perf_counter() - t
    merge_manifest(root)
    states = sum(o["num_states"] for o in summary["objects"])
    size = sum(p.stat().st_size for p in (root / "objects").rglob("*") if p.is_file())
    return states / seconds, states, size / 1024 / states


def bench_training(data: Path, work: Path, steps: int, device: str) -> list[list[object]]:
    """Median samples/s of each stage of the tiny model over ``steps`` steps, leaving out the first logged
    interval (it includes start-up and the first, uncached data loads)."""
    if steps < 2 * LOG_EVERY:
        raise ValueError(f"--train-steps must be at least {2 * LOG_EVERY} (two logged intervals)")
    rows, init = [], None
    for stage in (0, 1, 2):
        cfg = replace(load_config(TrainConfig, f"train/tiny_stage{stage}"), data=str(data), out=str(work / f"s{stage}"),
                      steps=steps, init_from=init, warmup_steps=1, log_every=LOG_EVERY, save_every=steps,
                      sample_every=10 * steps, eval_pairs=1, device=device)
        save_config(cfg, work / f"stage{stage}.yaml")
        train_main([str(work / f"stage{stage}.yaml")])
        with (work / f"s{stage}" / "log.csv").open() as f:
            speeds = [float(r["samples_per_s"]) for r in csv.DictReader(f)][1:]
        rows.append([f"stage {stage}", cfg.batch_size, statistics.median(speeds)])
        init = str(work / f"s{stage}" / "final")
    return rows


def bench_pipeline(args: argparse.Namespace) -> str:
    device = "cuda" if torch.cuda.is_available() and args.device in ("auto", "cuda") else "cpu"
    with tempfile.TemporaryDirectory(prefix="partrm_bench_") as tmp:
        root = Path(tmp)
        rate, states, kb = bench_datagen(root / "data")
        train_rows = bench_training(root / "data", root / "runs", args.train_steps, device)
    table = markdown_table(["what", "figure"], [
        ["datagen (data/default resolutions, 3×3 supersampled RGB, GT splatter fitted)",
         f"{rate:.1f} states/s over {states} states, {kb:.0f} KB/state"],
        *[[f"training {name} (tiny, batch {bs}, {device})", f"{sps:.2f} samples/s"] for name, bs, sps in train_rows]])
    return emit_report("Data generation and training throughput",
                       f"partrm-gym bench pipeline --train-steps {args.train_steps}", table, args.out)
