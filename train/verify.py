"""``partrm-gym verify DIR``: decode every file of a dataset and name each one that is broken."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from partrm_gym.train.data_format import (
    MANIFEST_FILE,
    NUM_INPUT_VIEWS,
    OBJECT_FILE,
    OBJECTS_DIR,
    PAIR_ARRAY_KEYS,
    PAIRS_FILE,
    STATE_ARRAY_KEYS,
    STATE_ARRAYS,
    STATES_DIR,
    DatasetError,
    input_png,
    read_json,
    read_npz,
    read_png,
    view_png,
)
from partrm_gym.train.datagen import PARTIAL_PREFIX
from partrm_gym.train.dataset import load_manifest


def verify_dataset(root: str | Path, progress: bool = False) -> list[str]:
    """Every problem found, one line each (empty when the dataset is whole)."""
    root = Path(root)
    try:
        manifest, cfg = load_manifest(root)
    except (DatasetError, KeyError, TypeError, ValueError) as e:
        return [f"{root / MANIFEST_FILE}: unreadable manifest ({e}); re-run datagen to rebuild it"]
    problems = [f"shard {s} missing: run datagen with --shard {s} --num-shards {manifest['num_shards']}"
                for s in manifest.get("missing_shards", [])]
    n_views = round(360.0 / cfg.rig.dataset_azimuth_step_deg)
    for partial in sorted((root / OBJECTS_DIR).glob(PARTIAL_PREFIX + "*")):
        problems.append(f"{partial}: incomplete object from an interrupted run; re-run datagen to finish it")
    for entry in tqdm(manifest["objects"], desc="verify", unit="obj", disable=not progress):
        odir = root / OBJECTS_DIR / entry["object_id"]

        def check(fn, *args) -> None:
            try:
                fn(*args)
            except DatasetError as e:
                problems.append(str(e))

        try:
            meta = read_json(odir / OBJECT_FILE)
        except DatasetError as e:
            problems.append(str(e))
            continue
        check(read_npz, odir / PAIRS_FILE, PAIR_ARRAY_KEYS)
        for state in meta["states"]:
            sdir = odir / STATES_DIR / state["name"]
            check(read_npz, sdir / STATE_ARRAYS, STATE_ARRAY_KEYS)
            for v in range(NUM_INPUT_VIEWS):
                check(read_png, sdir / input_png(v))
            for v in range(n_views):
                check(read_png, sdir / view_png(v))
    return problems


def main(args: argparse.Namespace) -> int:
    problems = verify_dataset(args.dataset, progress=True)
    for line in problems:
        print(line)
    print(f"{args.dataset}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0
