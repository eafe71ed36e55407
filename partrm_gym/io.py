"""Atomic file writes: a reader never sees a half-written file, a killed job leaves none.

Every writer in the project goes through these helpers (temp file in the same folder,
fsync, ``os.replace``), which is what makes datagen and training safely resumable. The file
gets the mode a plain ``open()`` would give it (umask respected), or keeps the mode of the file
it replaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from partrm_gym.errors import UsageError


def _current_umask() -> int:
    """The process umask, read now (the user or a caller may change it at any time).

    Linux shows it in /proc/self/status, which is a pure read. Elsewhere the only portable way is
    to set it and put it back, ``os.umask(0)`` then ``os.umask(old)``: a file another thread creates
    in between would get mode 0666, so the window is kept to two system calls.
    """
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _final_mode(path: Path) -> int:
    """Mode for the file that will become ``path``: the existing file's mode if it exists, else what
    ``open()`` would give a new file (0o666 minus the umask). ``mkstemp`` alone gives 0o600, which would
    make every atomically written file private to its owner, unlike any other file the user creates."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on clean exit it replaces ``path`` in one step."""
    if "w" not in mode:
        raise ValueError(f"atomic_open is for writing, got mode {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _final_mode(path))
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(path: str | Path, rows: list[dict[str, Any]], fields: list[str] | None = None) -> None:
    """Rows (dicts) as a CSV with a header: ``fields`` (default: the first row's keys) in that order, keys not in
    it left out; written atomically like every other output."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fields if fields is not None else list(rows[0]) if rows else [],
                            extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_write_image(path: str | Path, image: Any) -> None:
    """Write an image (uint8 H×W or H×W×3/4) as PNG/GIF/JPEG, chosen by the file suffix."""
    import imageio.v3 as iio

    path = Path(path)
    atomic_write_bytes(path, iio.imwrite("<bytes>", image, extension=path.suffix))


def atomic_write_gif(path: str | Path, frames: Any, frame_ms: int = 500) -> None:
    """Write a looping animated GIF of uint8 frames (T, H, W, 3)."""
    import imageio.v3 as iio

    atomic_write_bytes(path, iio.imwrite("<bytes>", frames, extension=".gif", duration=frame_ms, loop=0))


def path_kind(path: str | Path) -> str:
    """What is at ``path``, as an error message names it: "a folder", "a file", "a device", "a FIFO", "a socket",
    "a broken link" or "nothing" (so an error says ``/dev/null is a device``, not that it is a folder)."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        return "a broken link" if p.is_symlink() else "nothing"
    except OSError:
        return "nothing"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "neither a file nor a folder"


def check_output_folder(path: str | Path, flag: str = "--out") -> Path:
    """Refuse an output folder that cannot be one, before any work is done (not after it)."""
    path = Path(path)
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{flag} {path}: {parent} is {path_kind(parent)}, not a folder; give a folder path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UsageError(f"{flag} {path}: {parent} is not writable; choose another folder")
            break
    return path


def check_output_file(path: str | Path, flag: str = "--out") -> Path:
    """Refuse an output file path that is a folder or whose folder cannot be made, before any work."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise UsageError(f"{flag} {path}: is {path_kind(path)}, not a file; give a file path (e.g. "
                         f"{path / 'bench.md' if path.is_dir() else 'outputs/bench.md'})")
    check_output_folder(path.parent, flag)
    return path
