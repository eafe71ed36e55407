"""The on-disk dataset format (version 4): layout, file names, expected shapes, byte-deterministic
writers, checked readers.

See docs/dataset.md. Images are PNG, arrays are deflate-compressed ``.npz`` written with
fixed zip timestamps (NumPy's own writer stamps the current time, which would make two
runs with the same seed differ), metadata is JSON with sorted keys.

This module is the one place that names the files of an object folder
(:func:`object_files`, :func:`is_generated_path`) and the shapes the reader relies on
(:class:`DatasetShapes`): datagen, the reader and ``verify`` all use it.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from partrm_gym.errors import UserError
from partrm_gym.gaussians import SPLATTER_CHANNELS
from partrm_gym.io import atomic_write_bytes

# 2: simulator RGB area-averaged over 3×3 samples per pixel and TinyRenderer's half-pixel offset
#    corrected (version 1 images sit half a pixel off the cameras and are aliased).
# 3: the GT splatter is stored as fitted to the input views (partrm_gym.gt_splatter.fit_splatter),
#    not as the colour/depth/mask it was back-projected from.
# 4: articulation labels per state: ``part`` (4, h, w) — per GT splatter pixel, -1 background, 0 static body,
#    k + 1 movable joint k — and ``joint_axis`` / ``joint_pivot`` (J, 3), each joint's axis and a point on it in
#    the normalised world frame at that state (partrm_gym.articulation.true_joint_geometry).
FORMAT_VERSION = 4
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

CONFIG_FILE = "config.yaml"
MANIFEST_FILE = "manifest.json"
OBJECTS_DIR = "objects"
SHARDS_DIR = "shards"
OBJECT_FILE = "object.json"
URDF_FILE = "object.urdf"
PAIRS_FILE = "pairs.npz"
STATES_DIR = "states"
STATE_ARRAYS = "arrays.npz"
NUM_INPUT_VIEWS = 4

STATE_ARRAY_KEYS = ("depth", "seg", "splatter", "part", "joint_axis", "joint_pivot")
PAIR_ARRAY_KEYS = ("src", "dst", "drags", "mask")
PARTIAL_PREFIX = ".partial-"  # objects/.partial-<id>/: an object being generated, renamed when complete
# object.json: the keys the reader, verify and the shard summaries rely on (see docs/dataset.md)
OBJECT_KEYS = ("object_id", "category", "seed", "split", "scale", "joints", "states", "num_pairs", "format_version")
STATE_META_KEYS = ("name", "part", "joint", "joint_states")

# What to do about a file that is missing or broken. Re-running datagen regenerates every object whose
# files are not all present and non-empty; a present but undecodable file has to be deleted first.
REGENERATE = ("re-run the `partrm-gym datagen` command that wrote this dataset (`partrm-gym verify` prints it); "
              "it regenerates incomplete objects")
DELETE_AND_REGENERATE = "delete this file, then " + REGENERATE

_STATE_NAME = re.compile(r"p\d+_s\d+")
_STATE_FILE = re.compile(r"input_\d+\.png|view_\d{2,}\.png|" + re.escape(STATE_ARRAYS))
_OBJECT_FILES = (OBJECT_FILE, URDF_FILE, PAIRS_FILE)
# temp files of partrm_gym.io's atomic writes: ".<name>.<random>.tmp" beside <name>
_TEMP = re.compile(r"\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp")


class DatasetError(UserError, RuntimeError):
    """A dataset file is missing or corrupt; the message names it and says how to repair it."""


def object_dir(root: str | Path, object_id: str) -> Path:
    """``root/objects/<object_id>``: where one object's files live (the reader, verify and datagen agree)."""
    return Path(root) / OBJECTS_DIR / object_id


def state_dir(root: str | Path, object_id: str, name: str) -> Path:
    """``root/objects/<object_id>/states/<name>``: one state's PNGs and arrays."""
    return object_dir(root, object_id) / STATES_DIR / name


def state_name(part: int, index: int) -> str:
    return f"p{part}_s{index}"


def input_png(v: int) -> str:
    return f"input_{v}.png"


def view_png(v: int) -> str:
    return f"view_{v:02d}.png"


def shard_file(shard: int, num_shards: int) -> str:
    return f"shard-{shard:05d}-of-{num_shards:05d}.json"


def state_files(num_views: int) -> list[str]:
    """The files of one state folder."""
    return [*(input_png(v) for v in range(NUM_INPUT_VIEWS)), *(view_png(v) for v in range(num_views)), STATE_ARRAYS]


def object_files(state_names: list[str], num_views: int) -> list[str]:
    """Every file of a complete object folder, relative to it (POSIX separators), ``object.json`` last."""
    files = [URDF_FILE, PAIRS_FILE]
    for name in state_names:
        files += [f"{STATES_DIR}/{name}/{f}" for f in state_files(num_views)]
    return [*files, OBJECT_FILE]


def _is_file_or_temp(name: str, is_file: Callable[[str], bool]) -> bool:
    m = _TEMP.fullmatch(name)
    return is_file(name) or (m is not None and is_file(m["name"]))


def is_generated_path(rel: str | PurePosixPath, is_dir: bool = False) -> bool:
    """Whether ``rel``, relative to an object folder, is a file (or, with ``is_dir``, a folder) that
    datagen writes there: object.urdf, pairs.npz, object.json, states/<state>/{input_<v>.png,
    view_<vv>.png, arrays.npz}, or a temp file of one of them. Only such paths may be deleted."""
    parts = PurePosixPath(rel).parts
    if is_dir:
        return parts == (STATES_DIR,) or (len(parts) == 2 and parts[0] == STATES_DIR
                                          and _STATE_NAME.fullmatch(parts[1]) is not None)
    if len(parts) == 1:
        return _is_file_or_temp(parts[0], lambda n: n in _OBJECT_FILES)
    return (len(parts) == 3 and parts[0] == STATES_DIR and _STATE_NAME.fullmatch(parts[1]) is not None
            and _is_file_or_temp(parts[2], lambda n: _STATE_FILE.fullmatch(n) is not None))


def foreign_entries(folder: Path) -> list[Path]:
    """Everything under an object folder that datagen does not write (sorted; a link counts as foreign,
    and so does ``folder`` itself if it is a link or not a folder). Empty when datagen may delete it."""
    if folder.is_symlink() or not folder.is_dir():
        return [folder]
    foreign = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        keep = []
        for name in dirnames:
            path = here / name
            if path.is_symlink() or not is_generated_path(path.relative_to(folder).as_posix(), is_dir=True):
                foreign.append(path)
            else:
                keep.append(name)
        dirnames[:] = keep  # do not walk into a foreign folder: it is reported whole
        foreign += [here / n for n in filenames
                    if (here / n).is_symlink() or not is_generated_path((here / n).relative_to(folder).as_posix())]
    return sorted(foreign)


@dataclass(frozen=True)
class DatasetShapes:
    """What the files of a dataset hold, from its config; the reader and ``verify`` check these."""

    input_resolution: int
    view_resolution: int
    splatter_resolution: int
    num_views: int
    max_drags: int

    @classmethod
    def of(cls, cfg: Any) -> DatasetShapes:
        """From a :class:`~partrm_gym.train.data_config.DataConfig`."""
        return cls(cfg.input_resolution, cfg.view_resolution, cfg.splatter_resolution,
                   cfg.rig.num_dataset_views, cfg.max_drags)

    @property
    def splatter(self) -> tuple[int, ...]:
        return (NUM_INPUT_VIEWS, SPLATTER_CHANNELS, self.splatter_resolution, self.splatter_resolution)

    def state_arrays(self, num_joints: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """arrays.npz of a state of an object with ``num_joints`` movable joints: key -> (shape, dtype)."""
        views = (self.num_views, self.view_resolution, self.view_resolution)
        splat = (NUM_INPUT_VIEWS, self.splatter_resolution, self.splatter_resolution)
        return {"depth": (views, np.dtype(np.float16)), "seg": (views, np.dtype(np.int16)),
                "splatter": (self.splatter, np.dtype(np.float32)), "part": (splat, np.dtype(np.int16)),
                "joint_axis": ((num_joints, 3), np.dtype(np.float32)),
                "joint_pivot": ((num_joints, 3), np.dtype(np.float32))}

    def pair_arrays(self, num_pairs: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """pairs.npz of an object with ``num_pairs`` pairs: key -> (shape, dtype)."""
        drags = (num_pairs, NUM_INPUT_VIEWS, self.max_drags)
        return {"src": ((num_pairs,), np.dtype(np.int32)), "dst": ((num_pairs,), np.dtype(np.int32)),
                "drags": ((*drags, 4), np.dtype(np.float32)), "mask": (drags, np.dtype(bool))}


def check_arrays(path: Path, arrays: dict[str, np.ndarray],
                 expected: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """Raise :class:`DatasetError` naming ``path`` and the key if an array has another shape or dtype."""
    for key, (shape, dtype) in expected.items():
        if key not in arrays:
            raise DatasetError(f"{path}: lacks array {key!r}; {DELETE_AND_REGENERATE}")
        a = arrays[key]
        if a.shape != shape:
            raise DatasetError(f"{path}: {key} has shape {a.shape}, expected {shape}; {DELETE_AND_REGENERATE}")
        if a.dtype != dtype:
            raise DatasetError(f"{path}: {key} has dtype {a.dtype}, expected {dtype}; {DELETE_AND_REGENERATE}")


def check_pairs(path: Path, pairs: dict[str, np.ndarray], shapes: DatasetShapes, num_states: int,
                num_pairs: int) -> None:
    """pairs.npz of an object with ``num_states`` states and ``num_pairs`` pairs (as its object.json says)."""
    check_arrays(path, pairs, shapes.pair_arrays(num_pairs))
    for key in ("src", "dst"):
        bad = (pairs[key] < 0) | (pairs[key] >= num_states)
        if bad.any():
            raise DatasetError(f"{path}: {key}[{int(np.argmax(bad))}] = {int(pairs[key][bad][0])} is not a state "
                               f"index (the object has {num_states} states); {DELETE_AND_REGENERATE}")


def check_object_meta(path: Path, meta: Any) -> list[str]:
    """The state names of an object.json, after checking the keys the reader and verify rely on."""
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: expected a JSON object, got {type(meta).__name__}; {DELETE_AND_REGENERATE}")
    missing = [k for k in OBJECT_KEYS if k not in meta]
    if missing:
        raise DatasetError(f"{path}: lacks key(s) {missing}; {DELETE_AND_REGENERATE}")
    states = meta["states"]
    if not isinstance(states, list) or not states:
        raise DatasetError(f"{path}: 'states' must be a non-empty list; {DELETE_AND_REGENERATE}")
    names = []
    for i, state in enumerate(states):
        lacks = [k for k in STATE_META_KEYS if k not in state] if isinstance(state, dict) else list(STATE_META_KEYS)
        if lacks:
            raise DatasetError(f"{path}: states[{i}] lacks key(s) {lacks}; {DELETE_AND_REGENERATE}")
        name = state["name"]
        if not isinstance(name, str) or not _STATE_NAME.fullmatch(name) or name in names:
            raise DatasetError(f"{path}: states[{i}].name {name!r} is not a state name (p<part>_s<k>) or repeats "
                               f"one; {DELETE_AND_REGENERATE}")
        names.append(name)
    joints = meta["joints"]
    if not isinstance(joints, list) or not all(isinstance(j, dict) and j.get("type") in ("revolute", "prismatic")
                                               for j in joints):
        raise DatasetError(f"{path}: 'joints' must be a list of joints with a type (revolute or prismatic); "
                           f"{DELETE_AND_REGENERATE}")
    num_pairs = meta["num_pairs"]
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 0:
        raise DatasetError(f"{path}: num_pairs {num_pairs!r} is not a count; {DELETE_AND_REGENERATE}")
    return names


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed .npz whose bytes depend only on the arrays (fixed order and timestamps)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            arr = io.BytesIO()
            np.lib.format.write_array(arr, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            zf.writestr(info, arr.getvalue())
    return buf.getvalue()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Plain write: object files are only written inside a partial folder renamed when complete."""
    path.write_bytes(npz_bytes(arrays))


def _missing_or_empty(path: Path) -> str | None:
    """The problem, and the fix, of a file that datagen regenerates on a re-run (see REGENERATE)."""
    if not path.is_file():
        return f"{path}: missing; {REGENERATE}"
    if path.stat().st_size == 0:
        return f"{path}: empty; {REGENERATE}"
    return None


def read_npz(path: Path, keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    if problem := _missing_or_empty(path):
        raise DatasetError(problem)
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; {REGENERATE}") from None
    except Exception as e:  # zipfile.BadZipFile, ValueError, EOFError, zlib.error ...
        raise DatasetError(f"{path}: corrupt ({type(e).__name__}: {e}); {DELETE_AND_REGENERATE}") from None
    missing = [k for k in keys if k not in out]
    if missing:
        raise DatasetError(f"{path}: lacks arrays {missing}; {DELETE_AND_REGENERATE}")
    return out


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise DatasetError("PNG encoding failed")
    return buf.tobytes()


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Plain write, as :func:`write_npz`."""
    path.write_bytes(png_bytes(rgb))


def read_png(path: Path, size: int | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3); with ``size``, anything but a ``size``×``size`` 8-bit RGB image is an error."""
    if problem := _missing_or_empty(path):
        raise DatasetError(problem)
    img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"{path}: corrupt PNG; {DELETE_AND_REGENERATE}")
    wrong_size = size is not None and img.shape[:2] != (size, size)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or wrong_size:
        channels = 1 if img.ndim == 2 else img.shape[2]
        raise DatasetError(f"{path}: a {img.shape[1]}x{img.shape[0]} image with {channels} channel(s) of {img.dtype}, "
                           f"expected {f'{size}x{size} ' if size else ''}RGB (3 channels of uint8); "
                           f"{DELETE_AND_REGENERATE}")
    return img[..., ::-1].copy()


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: corrupt JSON ({e})") from None
    except OSError as e:  # a folder in its place, no permission ...
        raise DatasetError(f"{path}: unreadable ({e})") from None
