"""``partrm-gym bundle``: make a trained run the package's default model (model/weights/default/).

Copies the final stage's inference checkpoint and writes beside it what a user needs to trust
it: the data config, a training summary (steps, samples/s and validation PSNR per stage) and
the evaluation table.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

from partrm_gym.io import atomic_write_json, atomic_write_text
from partrm_gym.model.checkpoint import CHECKSUM_KEY, CONFIG, PROVENANCE, WEIGHTS, file_sha256, load_checkpoint
from partrm_gym.model.world_model import default_checkpoint_dir

MAX_BUNDLE_BYTES = 20 * 2**20


def stage_summary(run: Path) -> dict:
    rows = list(csv.DictReader((run / "log.csv").open()))
    sps = [float(r["samples_per_s"]) for r in rows if r.get("samples_per_s")]
    val = [(int(r["step"]), float(r["val_psnr"])) for r in rows if r.get("val_psnr")]
    return {"run": str(run), "steps": int(rows[-1]["step"]) if rows else 0, "final_loss": float(rows[-1]["loss"]),
            "median_samples_per_s": sorted(sps)[len(sps) // 2] if sps else None, "val_psnr_by_step": val}


def bundle(stages: list[Path], data: Path, eval_mds: list[Path], dest: Path | None = None) -> Path:
    dest = dest or default_checkpoint_dir()
    final = stages[-1] / "final"
    load_checkpoint(final)  # refuse to bundle something that does not load
    size = (final / WEIGHTS).stat().st_size
    if size > MAX_BUNDLE_BYTES:
        raise ValueError(f"{final / WEIGHTS} is {size / 2**20:.1f} MB, over the "
                         f"{MAX_BUNDLE_BYTES // 2**20} MB bundle limit")
    dest.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS, CONFIG):
        shutil.copyfile(final / name, dest / name)
    provenance = json.loads((final / PROVENANCE).read_text()) if (final / PROVENANCE).is_file() else {}
    atomic_write_json(dest / PROVENANCE, {**provenance, CHECKSUM_KEY: file_sha256(dest / WEIGHTS)})
    shutil.copyfile(data / "config.yaml", dest / "data_config.yaml")
    atomic_write_json(dest / "training_summary.json", {"stages": [stage_summary(s) for s in stages]})
    if eval_mds:
        atomic_write_text(dest / "eval.md", "\n".join(p.read_text() for p in eval_mds))
    return dest


def main(args: argparse.Namespace) -> int:
    dest = bundle([Path(s) for s in args.stages], Path(args.data), [Path(e) for e in args.eval])
    print(f"bundled into {dest}:")
    for p in sorted(dest.iterdir()):
        print(f"  {p.name}  {p.stat().st_size / 2**20:.2f} MB")
    print(json.dumps(json.loads((dest / "training_summary.json").read_text()), indent=1)[:2000])
    return 0
