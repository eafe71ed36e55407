"""The on-disk dataset format (version 2): layout, byte-deterministic writers, readers.

See docs/dataset.md. Images are PNG, arrays are deflate-compressed ``.npz`` written with
fixed zip timestamps (NumPy's own writer stamps the current time, which would make two
runs with the same seed differ), metadata is JSON with sorted keys.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from partrm_gym.io import atomic_write_bytes

# 2: simulator RGB area-averaged over 3×3 samples per pixel and TinyRenderer's half-pixel offset
#    corrected (version 1 images sit half a pixel off the cameras and are aliased).
# 3: the GT splatter is stored as fitted to the input views (partrm_gym.gt_splatter.fit_splatter),
#    not as the colour/depth/mask it was back-projected from.
FORMAT_VERSION = 3
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

STATE_ARRAY_KEYS = ("depth", "seg", "splatter")
PAIR_ARRAY_KEYS = ("src", "dst", "drags", "mask")


class DatasetError(RuntimeError):
    """A dataset file is missing or corrupt; the message names it and says how to repair it."""


def input_png(v: int) -> str:
    return f"input_{v}.png"


def view_png(v: int) -> str:
    return f"view_{v:02d}.png"


def shard_file(shard: int, num_shards: int) -> str:
    return f"shard-{shard:05d}-of-{num_shards:05d}.json"


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


def read_npz(path: Path, keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; re-run the same `partrm-gym datagen` command to regenerate it") from None
    except Exception as e:  # zipfile.BadZipFile, ValueError, EOFError, zlib.error ...
        raise DatasetError(f"{path}: corrupt ({type(e).__name__}: {e}); delete its object folder and re-run "
                           "the same `partrm-gym datagen` command to regenerate it") from None
    missing = [k for k in keys if k not in out]
    if missing:
        raise DatasetError(f"{path}: lacks arrays {missing}; delete its object folder and re-run datagen")
    return out


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise DatasetError("PNG encoding failed")
    return buf.tobytes()


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Plain write, as :func:`write_npz`."""
    path.write_bytes(png_bytes(rgb))


def read_png(path: Path) -> np.ndarray:
    """RGB uint8 (H, W, 3)."""
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise DatasetError(f"{path}: missing; re-run the same `partrm-gym datagen` command to regenerate it")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise DatasetError(f"{path}: corrupt PNG; delete its object folder and re-run datagen to regenerate it")
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
