"""``partrm-gym datagen``: PartDrag-4D-style data from the simulator, sharded and resumable.

For each object and each animated part: ``states_per_part`` states evenly spaced between
the part's limits (other parts at random states), each rendered into the 12 dataset views,
the 4 input views and the 4 GT-splatter views; then every ordered pair of states of the
part with drags in each input view. An object is built in a ``.partial-*`` folder and
renamed into place when complete, so a killed job loses at most the object in progress
and a re-run of the same command finishes the rest, byte-identical to an uninterrupted run.
A re-run also regenerates a completed object one of whose files went missing (or was emptied).
Datagen deletes only what it writes: it refuses an ``--out`` that is neither empty nor a
dataset of the same config, and an unfinished object folder holding a file it does not name.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.queues
import pickle
import re
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Generator, Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from partrm_gym.articulation import true_joint_geometry
from partrm_gym.assets import generate
from partrm_gym.cameras import canonical_rig, dataset_rig
from partrm_gym.config import apply_overrides, to_dict
from partrm_gym.drags import drags_between_states, grasped_joint, pad_drags
from partrm_gym.errors import UsageError
from partrm_gym.gt_splatter import fit_splatter, splatter_from_frames
from partrm_gym.io import atomic_write_text, path_kind
from partrm_gym.scene import Scene
from partrm_gym.threads import available_cores, set_threads
from partrm_gym.train.data_config import DataConfig, ObjectSpec, load_data_config, plan_objects, shard_objects
from partrm_gym.train.data_format import (
    CONFIG_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    NUM_INPUT_VIEWS,
    OBJECT_FILE,
    PAIRS_FILE,
    PARTIAL_PREFIX,
    SHARDS_DIR,
    STATE_ARRAY_KEYS,
    STATE_ARRAYS,
    STATES_DIR,
    URDF_FILE,
    DatasetError,
    DatasetShapes,
    check_object_meta,
    foreign_entries,
    input_png,
    object_dir,
    object_files,
    read_json,
    shard_file,
    state_name,
    view_png,
    write_json,
    write_npz,
    write_png,
)

__all__ = ["PARTIAL_PREFIX", "generate_object", "is_complete", "main", "merge_manifest", "object_dir", "run_shard",
           "state_name"]

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _object_rng(cfg: DataConfig, spec: ObjectSpec) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, spec.seed, sum(map(ord, spec.category))])


def part_labels(scene: Scene, seg: np.ndarray) -> np.ndarray:
    """Link segmentation (-1 off the object, 0 base, l + 1 link l) -> part labels (int16, same shape):
    -1 off the object, 0 static body, k + 1 the movable joint k a hand pulling on that pixel moves."""
    links = int(seg.max()) + 1 if seg.size else 1
    table = np.zeros(links + 1, dtype=np.int16)  # index s + 1 for segmentation value s
    table[0] = -1
    for value in range(1, links):
        k = grasped_joint(scene.joints, value)
        table[value + 1] = 0 if k is None else k + 1
    return table[seg.astype(np.int64) + 1]


def _partnet_folder(cfg: DataConfig, spec: ObjectSpec) -> Path:
    from partrm_gym.assets.partnet_root import find_partnet_objects

    for entry in find_partnet_objects(cfg.partnet_root):
        if entry.object_id == spec.partnet_id:
            return entry.folder
    raise UsageError(f"PartNet-Mobility object {spec.partnet_id} is no longer under {cfg.partnet_root}; restore it "
                     "or generate into a new folder")


def generate_object(cfg: DataConfig, spec: ObjectSpec, folder: Path) -> dict:
    """Render every state and pair of one object into ``folder``; returns its object.json content."""
    rng = _object_rng(cfg, spec)
    inputs, splat_views, views = (canonical_rig(cfg.input_resolution, cfg.rig),
                                  canonical_rig(cfg.splatter_resolution, cfg.rig),
                                  dataset_rig(cfg.view_resolution, cfg.rig))
    states_meta, pairs = [], {"src": [], "dst": [], "drags": [], "mask": []}
    if spec.partnet_id:
        scene = Scene.from_partnet(_partnet_folder(cfg, spec))
        (folder / URDF_FILE).write_text(scene.urdf_path.read_text())  # the coloured copy the scene loaded
    else:
        obj = generate(spec.category, spec.seed)
        (folder / URDF_FILE).write_text(obj.urdf())
        scene = Scene.from_object(obj)
    with scene:
        task = scene.task_joints()  # doors, drawers, lids (every joint of a procedural object)
        n_parts = min(len(task), cfg.max_parts_per_object)
        animated = sorted(task[i] for i in rng.choice(len(task), size=n_parts, replace=False).tolist())
        for part in animated:
            fractions = rng.uniform(0.0, 1.0, len(scene.joints))
            first = len(states_meta)
            joint_values, input_frames, unfitted, arrays = [], [], [], []
            for s in range(cfg.states_per_part):
                fractions[part] = s / (cfg.states_per_part - 1)
                scene.set_joint_fractions(fractions)
                values = scene.get_joint_states()
                joint_values.append(values)
                name = state_name(part, s)
                sdir = folder / STATES_DIR / name
                sdir.mkdir(parents=True)
                in_frames = scene.render_views(inputs)
                input_frames.append(in_frames)
                for v, f in enumerate(in_frames):
                    write_png(sdir / input_png(v), f.rgb)
                view_frames = scene.render_views(views)
                for v, f in enumerate(view_frames):
                    write_png(sdir / view_png(v), f.rgb)
                splat_frames = scene.render_views(splat_views)
                unfitted.append(splatter_from_frames(splat_frames, splat_views))
                geometry = [true_joint_geometry(scene, k) for k in range(len(scene.joints))]
                arrays.append({
                    "depth": np.stack([f.depth for f in view_frames]).astype(np.float16),
                    "seg": np.stack([f.seg for f in view_frames]).astype(np.int16),
                    "part": part_labels(scene, np.stack([f.seg for f in splat_frames])),
                    "joint_axis": np.array([g[1] for g in geometry], dtype=np.float32).reshape(-1, 3),
                    "joint_pivot": np.array([g[2] for g in geometry], dtype=np.float32).reshape(-1, 3),
                })
                states_meta.append({"name": name, "part": int(part), "joint": scene.joints[part].name,
                                    "joint_states": [round(float(x), 9) for x in values]})
            # the part's states are fitted in one batch (each as if alone; batched is ~1.5x faster per state)
            fitted = fit_splatter(np.stack(unfitted), np.stack([[f.rgb for f in frames] for frames in input_frames]),
                                  inputs, cfg.splatter_fit)
            for meta, state_arrays, splatter in zip(states_meta[first:], arrays, fitted):
                state_arrays["splatter"] = splatter
                write_npz(folder / STATES_DIR / meta["name"] / STATE_ARRAYS,
                          {key: state_arrays[key] for key in STATE_ARRAY_KEYS})
            for i in range(cfg.states_per_part):
                for j in range(cfg.states_per_part):
                    if i == j:
                        continue
                    per_view = [pad_drags(drags_between_states(scene, part, joint_values[i], joint_values[j],
                                                               cam, cfg.max_drags, rng, frame_a=input_frames[i][v]),
                                          cfg.max_drags) for v, cam in enumerate(inputs)]
                    pairs["src"].append(first + i)
                    pairs["dst"].append(first + j)
                    pairs["drags"].append(np.stack([d for d, _ in per_view]))
                    pairs["mask"].append(np.stack([m for _, m in per_view]))
        joints = [{"name": j.name, "type": j.type, "lower": j.lower, "upper": j.upper, "semantic": j.semantic}
                  for j in scene.joints]
        scale = scene.scale
    write_npz(folder / PAIRS_FILE, {
        "src": np.asarray(pairs["src"], dtype=np.int32), "dst": np.asarray(pairs["dst"], dtype=np.int32),
        "drags": np.asarray(pairs["drags"], dtype=np.float32).reshape(-1, NUM_INPUT_VIEWS, cfg.max_drags, 4),
        "mask": np.asarray(pairs["mask"], dtype=bool).reshape(-1, NUM_INPUT_VIEWS, cfg.max_drags),
    })
    meta = {"object_id": spec.object_id, "category": spec.category, "seed": spec.seed, "split": spec.split,
            **({"partnet_id": spec.partnet_id} if spec.partnet_id else {}),
            "scale": round(float(scale), 9), "joints": joints, "states": states_meta,
            "num_pairs": len(pairs["src"]), "format_version": FORMAT_VERSION}
    write_json(folder / OBJECT_FILE, meta)  # written last: its presence marks the object complete
    return meta


def _first_file(path: Path) -> Path:
    """The first file under ``path`` in sorted order (``path`` itself for a file or an empty folder)."""
    while path.is_dir() and not path.is_symlink():
        children = sorted(path.iterdir())
        if not children:
            break
        path = children[0]
    return path


def _check_out_folder(out: Path) -> None:
    """Refuse an --out that exists and is neither empty nor a dataset (one with a config.yaml)."""
    if not out.exists():
        if out.is_symlink():
            raise DatasetError(f"--out {out} is a broken link; give a new or empty folder")
        return
    if not out.is_dir():
        raise DatasetError(f"--out {out} is {path_kind(out)}, not a folder; give a new or empty folder")
    if (out / CONFIG_FILE).exists():
        return  # a dataset: _check_or_write_config compares its config
    # a run killed before writing config.yaml can have left only the temp file of its atomic write
    config_temp = re.compile(rf"\.{re.escape(CONFIG_FILE)}\.[A-Za-z0-9_]+\.tmp")
    entries = sorted(p for p in out.iterdir() if not config_temp.fullmatch(p.name))
    if entries:
        more = f" (and {len(entries) - 1} more)" if len(entries) > 1 else ""
        raise DatasetError(f"--out {out} is not empty and is not a dataset folder (no {CONFIG_FILE}): it holds "
                           f"{_first_file(entries[0])}{more}. Datagen writes only into a new or empty folder, or "
                           "resumes a dataset it wrote; give another --out folder (nothing was written)")


def _check_or_write_config(out: Path, cfg: DataConfig) -> None:
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
    path = out / CONFIG_FILE
    if path.exists():
        if not path.is_file() or path.read_text() != text:
            raise DatasetError(f"{path} holds a different config than the one given; use another --out folder "
                               "or the same config to resume")
    else:
        atomic_write_text(path, text)


def _present(folder: Path, files: list[str]) -> bool:
    """Every file exists and is non-empty (a cheap check: nothing is decoded)."""
    for rel in files:
        try:
            if (folder / rel).stat().st_size == 0:
                return False
        except OSError:
            return False
    return True


def is_complete(out: Path, spec: ObjectSpec, cfg: DataConfig | None = None) -> bool:
    """Whether the object's folder holds a readable object.json and (given ``cfg``) every file it
    implies, non-empty. An object of another format version is an error, never regenerated."""
    folder = object_dir(out, spec.object_id)
    path = folder / OBJECT_FILE
    if not path.is_file():
        return False
    try:
        meta = read_json(path)
        names = check_object_meta(path, meta)
    except DatasetError:
        return False
    if meta["format_version"] != FORMAT_VERSION:
        raise DatasetError(f"{path}: dataset format version {meta['format_version']}, this package writes version "
                           f"{FORMAT_VERSION}; generate the dataset again into a new --out folder")
    return cfg is None or _present(folder, object_files(names, DatasetShapes.of(cfg).num_views))


def _remove_unfinished(folder: Path, aside: Path) -> None:
    """Delete an unfinished object folder, but only if datagen wrote everything in it (see
    :func:`~partrm_gym.train.data_format.is_generated_path`); it is first renamed to ``aside``."""
    foreign = foreign_entries(folder)
    if foreign:
        where = "" if foreign[0] == folder else f", inside the unfinished object folder {folder},"
        raise DatasetError(f"{foreign[0]}{where} is not something datagen writes, and datagen has to regenerate "
                           f"this object; move it out of the dataset folder and re-run the same command "
                           "(nothing was deleted)")
    if folder != aside:
        folder.rename(aside)
    shutil.rmtree(aside)


def _generate_one(cfg: DataConfig, out: Path, spec: ObjectSpec) -> tuple[int, bool]:
    """Generate one object into its ``.partial-*`` folder and rename it into place; returns its
    number of states and whether it replaced a complete-looking folder (a repair)."""
    final = object_dir(out, spec.object_id)
    partial = final.with_name(PARTIAL_PREFIX + spec.object_id)
    if partial.exists() or partial.is_symlink():  # left by a killed run: start this object again
        _remove_unfinished(partial, partial)
    repaired = False
    if final.exists() or final.is_symlink():  # without object.json (cannot come from a rename) or incomplete
        repaired = (final / OBJECT_FILE).is_file()
        _remove_unfinished(final, partial)
    partial.mkdir(parents=True)
    meta = generate_object(cfg, spec, partial)
    partial.rename(final)
    return len(meta["states"]), repaired


def _worker_init() -> None:
    """A datagen worker: one thread (the workers share the cores), Ctrl-C is the parent's to handle,
    and on Linux it dies with the parent (a ``kill -9`` of ``partrm-gym datagen`` leaves no worker
    writing beside the run that resumes it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    set_threads(1)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits (prctl PR_SET_PDEATHSIG); elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no glibc (musl, ...): workers then finish their object and exit
        pass


def _generate_reported(job: tuple[DataConfig, Path, ObjectSpec]) -> tuple[str, object]:
    """Run :func:`_generate_one`; an error comes back as a value that survives pickling, re-raised by the
    parent with its own type and message."""
    try:
        return "ok", _generate_one(*job)
    except Exception as e:
        detail = traceback.format_exc()
        try:
            pickle.loads(pickle.dumps(e))
        except Exception:
            e = RuntimeError(f"{type(e).__name__}: {e}")
        return "error", (e, detail)


def _worker_loop(tasks: multiprocessing.queues.Queue, results: multiprocessing.queues.Queue) -> None:
    """A spawned worker: generate the objects it takes from ``tasks`` until it takes ``None``."""
    _worker_init()
    while (job := tasks.get()) is not None:
        results.put(_generate_reported(job))


class _WorkerTraceback(Exception):
    """Where in the worker the error was raised (the cause of the re-raised error; shown with --debug)."""


def _generate_parallel(cfg: DataConfig, out: Path, todo: list[ObjectSpec], workers: int) -> Iterator[tuple[int, bool]]:
    """:func:`_generate_one` for every object of ``todo`` in ``workers - 1`` spawned processes and this one, all
    taking objects from one queue, yielded as they finish.

    Why this process works too: it has torch and the package loaded already, so it generates while the spawned
    workers spend their first seconds importing them, and an idle parent would leave a core's share unused.
    Every process generates with one torch thread; the queue hands out one object at a time, so no process waits
    on another's backlog at the end. Every process, this one included, ends on its own stop sign behind the
    objects, so none can wait on an empty queue."""
    ctx = multiprocessing.get_context("spawn")  # PyBullet and torch do not survive fork
    tasks, results = ctx.Queue(), ctx.Queue()
    for spec in todo:
        tasks.put((cfg, out, spec))
    spawned = min(workers, len(todo)) - 1
    for _ in range(spawned + 1):
        tasks.put(None)  # one stop sign per process, behind every object
    import torch

    own_threads = torch.get_num_threads()
    procs: list[BaseProcess] = []
    finished = False
    try:
        # Workers start with Ctrl-C ignored (inherited), so only this process sees it and stops them.
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
        try:
            for _ in range(spawned):
                procs.append(ctx.Process(target=_worker_loop, args=(tasks, results), daemon=True))
                procs[-1].start()
        finally:
            if main_thread:
                signal.signal(signal.SIGINT, previous)
        torch.set_num_threads(1)  # as a worker: the bytes of an object do not depend on which process made it
        remaining = len(todo)
        while (job := tasks.get()) is not None:
            yield _generate_one(*job)
            remaining -= 1
            while remaining and not results.empty():
                yield _worker_result(results.get())
                remaining -= 1
        while remaining:  # this process's stop sign: wait for what the workers still make
            yield _worker_result(_next_result(results, procs))
            remaining -= 1
        finished = True
    finally:
        torch.set_num_threads(own_threads)
        if not finished:  # an error, Ctrl-C or an abandoned loop: stop the workers (their objects stay .partial-*)
            tasks.cancel_join_thread()  # objects still queued for nobody must not hold this process at exit
        for proc in procs:
            if not finished:
                proc.terminate()
            proc.join()
        tasks.close()
        results.close()


def _worker_result(report: tuple[str, object]) -> tuple[int, bool]:
    """A worker's :func:`_generate_reported` value, or its error raised here with the worker's traceback as cause."""
    status, value = report
    if status == "error":
        error, detail = value
        raise error from _WorkerTraceback("in a datagen worker:\n" + detail)
    return value


def _next_result(results: multiprocessing.queues.Queue, procs: list[BaseProcess]) -> tuple[str, object]:
    """The next worker result; an error if every worker has died without sending one (killed from outside)."""
    import queue

    all_gone = False
    while True:
        try:
            return results.get(timeout=1.0)
        except queue.Empty:
            if all_gone:
                raise RuntimeError("every datagen worker stopped before finishing its objects (killed?); "
                                   "run the same command again to finish them") from None
            # one more wait once the last worker is gone: its last result can reach the queue just after it exits
            all_gone = not any(proc.is_alive() for proc in procs)


def run_shard(cfg: DataConfig, out: Path, shard: int = 0, num_shards: int = 1, progress: bool = True,
              workers: int = 1) -> dict:
    """Generate (or finish, or repair) one shard; returns the shard summary it writes, plus ``"run"``:
    ``{"generated", "already_present", "repaired"}`` object counts of this call (not written to disk, so
    the summary file of a resumed run is byte-identical to an uninterrupted one). ``repaired`` counts the
    generated objects that replaced a complete-looking folder with missing or empty files.

    ``workers`` > 1 generates whole objects in that many processes of one thread each (this one and
    ``workers - 1`` spawned, :func:`_generate_parallel`); every
    object's randomness is its own (:func:`_object_rng`), so the dataset is byte-identical for any
    ``workers``. With 1 the objects are generated in this process, in order."""
    if workers < 1:
        raise UsageError(f"workers = {workers} is out of range: it must be >= 1")
    specs = shard_objects(plan_objects(cfg), shard, num_shards)  # UsageError before anything is written
    _check_out_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_or_write_config(out, cfg)
    todo = [s for s in specs if not is_complete(out, s, cfg)]
    t0, states, repaired = time.perf_counter(), 0, 0
    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc=f"datagen shard {shard}/{num_shards}",
               unit="obj", disable=not progress)
    if workers == 1 or len(todo) <= 1:
        done: Generator[tuple[int, bool], None, None] = (_generate_one(cfg, out, spec) for spec in todo)
    else:
        done = _generate_parallel(cfg, out, todo, workers)
    try:
        for n_states, was_repaired in done:
            states += n_states
            repaired += was_repaired
            bar.update(1)
            bar.set_postfix(states_per_s=f"{states / (time.perf_counter() - t0):.1f}")
    finally:
        done.close()  # the spawned workers, if any, are stopped before this returns or raises
        bar.close()
    summary = _shard_summary(out, specs, shard, num_shards)
    write_json(out / SHARDS_DIR / shard_file(shard, num_shards), summary)
    return {**summary, "run": {"generated": len(todo), "already_present": len(specs) - len(todo),
                               "repaired": repaired}}


def _shard_summary(out: Path, specs: list[ObjectSpec], shard: int, num_shards: int) -> dict:
    objects = []
    for spec in specs:
        meta = read_json(object_dir(out, spec.object_id) / OBJECT_FILE)
        objects.append({"object_id": spec.object_id, "category": spec.category, "split": spec.split,
                        "num_states": len(meta["states"]), "num_pairs": meta["num_pairs"]})
    return {"shard": shard, "num_shards": num_shards, "objects": objects}


def merge_manifest(out: Path) -> dict:
    """Merge every shard summary into manifest.json (objects, per-split counts, missing shards)."""
    cfg_path = out / CONFIG_FILE
    if not cfg_path.is_file():
        raise DatasetError(f"{out}: no {CONFIG_FILE}; is this a dataset folder?")
    summaries = [read_json(p) for p in sorted((out / SHARDS_DIR).glob("shard-*.json"))]
    if not summaries:
        raise DatasetError(f"{out}: no shard summaries in {SHARDS_DIR}/; run datagen first")
    num_shards = summaries[0]["num_shards"]
    present = sorted(s["shard"] for s in summaries if s["num_shards"] == num_shards)
    objects = sorted((o for s in summaries if s["num_shards"] == num_shards for o in s["objects"]),
                     key=lambda o: o["object_id"])
    counts: dict[str, dict[str, int]] = {}
    for o in objects:
        c = counts.setdefault(o["split"], {"objects": 0, "states": 0, "pairs": 0})
        c["objects"] += 1
        c["states"] += o["num_states"]
        c["pairs"] += o["num_pairs"]
    manifest = {"format_version": FORMAT_VERSION, "config": yaml.safe_load(cfg_path.read_text()),
                "num_shards": num_shards, "missing_shards": sorted(set(range(num_shards)) - set(present)),
                "splits": counts, "objects": objects}
    write_json(out / MANIFEST_FILE, manifest)
    return manifest


def main(args: argparse.Namespace) -> int:
    cfg = load_data_config(args.config)
    partnet = getattr(args, "partnet", None)
    cfg = apply_overrides(cfg, partnet_root=str(Path(partnet).expanduser().resolve()) if partnet else None)
    out = Path(args.out)
    workers = getattr(args, "workers", None) or available_cores()
    if workers == 1 and getattr(args, "threads", None) is None:
        set_threads(1)  # the one worker is this process: one thread, as any worker
    t0 = time.perf_counter()
    summary = run_shard(cfg, out, args.shard, args.num_shards, progress=not args.quiet, workers=workers)
    manifest = merge_manifest(out)
    dt = time.perf_counter() - t0
    run = summary["run"]
    n_states = sum(o["num_states"] for o in summary["objects"])
    repaired = f" ({run['repaired']} repaired)" if run["repaired"] else ""
    print(f"shard {args.shard}/{args.num_shards}: {run['generated']} generated{repaired}, {run['already_present']} "
          f"already present ({len(summary['objects'])} objects, {n_states} states) in {dt:.1f} s")
    if manifest["missing_shards"]:
        print(f"manifest: waiting for shards {manifest['missing_shards']}")
    print(f"wrote {out / MANIFEST_FILE}: " + ", ".join(f"{k} {v['objects']} objects / {v['pairs']} pairs"
                                                      for k, v in sorted(manifest["splits"].items())))
    return 0
