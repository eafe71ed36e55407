"""``partrm-gym verify DIR``: decode every file of a dataset, check every shape, size, dtype and key the
reader relies on (:class:`~partrm_gym.train.data_format.DatasetShapes`), and name each file that is
missing, corrupt or not written by datagen; then print the datagen command that repairs the dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from partrm_gym.io import path_kind
from partrm_gym.train.data_config import DataConfig, plan_objects
from partrm_gym.train.data_format import (
    CONFIG_FILE,
    DELETE_AND_REGENERATE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    NUM_INPUT_VIEWS,
    OBJECT_FILE,
    OBJECTS_DIR,
    PAIR_ARRAY_KEYS,
    PAIRS_FILE,
    PARTIAL_PREFIX,
    REGENERATE,
    STATE_ARRAY_KEYS,
    STATE_ARRAYS,
    STATES_DIR,
    URDF_FILE,
    DatasetError,
    DatasetShapes,
    check_arrays,
    check_object_meta,
    check_pairs,
    foreign_entries,
    input_png,
    object_dir,
    read_json,
    read_npz,
    read_png,
    view_png,
)
from partrm_gym.train.dataset import load_manifest

MANIFEST_ENTRY_KEYS = ("object_id", "category", "split", "num_states", "num_pairs")
MOVE_AWAY = "move it out of the dataset"
REBUILD_MANIFEST = "re-run the `partrm-gym datagen` command that wrote this dataset to rebuild it"


class _Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.broken: set[str] = set()  # object ids with a problem
        self.act_first = False  # a file must be deleted or moved away before datagen can repair the dataset

    def add(self, message: str, object_id: str | None = None) -> None:
        self.problems.append(message)
        if object_id is not None:
            self.broken.add(object_id)
        self.act_first |= DELETE_AND_REGENERATE in message or MOVE_AWAY in message


def _check_object(root: Path, entry: dict, shapes: DatasetShapes, report: _Report) -> None:
    oid = entry["object_id"]
    odir = object_dir(root, oid)

    def check(fn, *args) -> None:
        try:
            fn(*args)
        except DatasetError as e:
            report.add(str(e), oid)

    if not odir.is_dir():
        report.add(f"{odir}: missing object folder; {REGENERATE}", oid)
        return
    meta_path = odir / OBJECT_FILE
    if not meta_path.exists():
        report.add(f"{meta_path}: missing; {REGENERATE}", oid)
        return
    try:
        meta = read_json(meta_path)
    except DatasetError as e:
        report.add(f"{e}; {DELETE_AND_REGENERATE}", oid)
        return
    try:
        names = check_object_meta(meta_path, meta)
    except DatasetError as e:
        report.add(str(e), oid)
        return
    if meta["object_id"] != oid:
        report.add(f"{meta_path}: object_id {meta['object_id']!r}, expected {oid!r} (its folder name); "
                   f"{DELETE_AND_REGENERATE}", oid)
    if meta["format_version"] != FORMAT_VERSION:
        report.add(f"{meta_path}: format version {meta['format_version']}, the dataset is version {FORMAT_VERSION}; "
                   "generate the dataset again into a new folder")
    if (len(names), meta["num_pairs"]) != (entry["num_states"], entry["num_pairs"]):
        report.add(f"{root / MANIFEST_FILE}: lists {entry['num_states']} states / {entry['num_pairs']} pairs for "
                   f"{oid}, its {OBJECT_FILE} has {len(names)} / {meta['num_pairs']}; {REBUILD_MANIFEST}", oid)
    if not (odir / URDF_FILE).is_file() or (odir / URDF_FILE).stat().st_size == 0:
        report.add(f"{odir / URDF_FILE}: missing or empty; {REGENERATE}", oid)

    def pairs() -> None:
        check_pairs(odir / PAIRS_FILE, read_npz(odir / PAIRS_FILE, PAIR_ARRAY_KEYS), shapes, len(names),
                    meta["num_pairs"])

    check(pairs)
    for name in names:
        sdir = odir / STATES_DIR / name
        check(lambda p=sdir / STATE_ARRAYS: check_arrays(p, read_npz(p, STATE_ARRAY_KEYS),
                                                             shapes.state_arrays(len(meta["joints"]))))
        for v in range(NUM_INPUT_VIEWS):
            check(read_png, sdir / input_png(v), shapes.input_resolution)
        for v in range(shapes.num_views):
            check(read_png, sdir / view_png(v), shapes.view_resolution)
    for path in foreign_entries(odir):
        report.add(f"{path}: not a file datagen writes; {MOVE_AWAY} (datagen never deletes it, so it "
                   "blocks regenerating this object)", oid)


def _verify(root: Path, progress: bool) -> tuple[_Report, dict | None, DataConfig | None]:
    report = _Report()
    if not root.is_dir():
        report.add(f"{root}: {path_kind(root)}, not a folder; give the --out folder of `partrm-gym datagen`")
        return report, None, None
    try:
        manifest, cfg = load_manifest(root)
        objects = manifest["objects"]
        if not isinstance(objects, list) or not all(isinstance(o, dict) and all(k in o for k in MANIFEST_ENTRY_KEYS)
                                                    for o in objects):
            raise ValueError(f"'objects' must be a list of entries with keys {list(MANIFEST_ENTRY_KEYS)}")
    except (DatasetError, KeyError, TypeError, ValueError, AttributeError) as e:
        report.add(f"{root / MANIFEST_FILE}: unreadable manifest ({e}); {REBUILD_MANIFEST}")
        return report, None, None
    missing_shards = manifest.get("missing_shards", [])
    for s in missing_shards:
        report.add(f"shard {s} missing: run datagen with --shard {s} --num-shards {manifest['num_shards']}")
    if not objects:
        report.add(f"{root / MANIFEST_FILE}: lists no objects; the dataset is empty")
    elif not missing_shards:
        planned = {s.object_id for s in plan_objects(cfg)}
        listed = {o["object_id"] for o in objects}
        if listed != planned:
            report.add(f"{root / MANIFEST_FILE}: lists {len(listed)} objects, its config plans {len(planned)} "
                       f"({len(planned - listed)} not listed, {len(listed - planned)} not planned); {REBUILD_MANIFEST}")
    for partial in sorted((root / OBJECTS_DIR).glob(PARTIAL_PREFIX + "*")):
        oid = partial.name[len(PARTIAL_PREFIX):]
        report.add(f"{partial}: incomplete object from an interrupted run; {REGENERATE}", oid)
    shapes = DatasetShapes.of(cfg)
    for entry in tqdm(objects, desc="verify", unit="obj", disable=not progress):
        _check_object(root, entry, shapes, report)
    return report, manifest, cfg


def verify_dataset(root: str | Path, progress: bool = False) -> list[str]:
    """Every problem found, one line each (empty when the dataset is whole)."""
    return _verify(Path(root), progress)[0].problems


def repair_commands(root: Path, report: _Report, manifest: dict | None, cfg: DataConfig | None) -> list[str]:
    """The datagen command(s) that regenerate what ``report`` found broken (one per affected shard)."""
    if manifest is None or cfg is None:
        return []
    num_shards = manifest["num_shards"]
    index = {s.object_id: i for i, s in enumerate(plan_objects(cfg))}
    shards = sorted({index[o] % num_shards for o in report.broken if o in index} | set(manifest["missing_shards"]))
    if not shards and report.problems:
        shards = list(range(num_shards))
    base = f"partrm-gym datagen {root / CONFIG_FILE} --out {root}"
    return [base if num_shards == 1 else f"{base} --shard {s} --num-shards {num_shards}" for s in shards]


def main(args: argparse.Namespace) -> int:
    root = Path(args.dataset)
    if not root.is_dir():
        raise DatasetError(f"{root}: {path_kind(root)}, not a folder; give the --out folder of `partrm-gym datagen`")
    report, manifest, cfg = _verify(root, progress=True)
    for line in report.problems:
        print(line)
    print(f"{root}: {'OK' if not report.problems else f'{len(report.problems)} problem(s)'}")
    commands = repair_commands(root, report, manifest, cfg)
    if commands:
        first = " (after deleting or moving away the files named above)" if report.act_first else ""
        print(f"to repair, run{first}:")
        for command in commands:
            print(f"  {command}")
    return 1 if report.problems else 0
