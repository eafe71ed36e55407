"""Timing and Markdown reporting shared by every ``partrm-gym bench`` subcommand."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from partrm_gym.errors import UsageError
from partrm_gym.io import atomic_write_text

# The last line of every report file; `--out` replaces only a file that ends with it, so a bench never overwrites
# a file the user wrote (notes, a curated docs page) by a mistyped path.
REPORT_MARKER = "<!-- written by partrm-gym bench; running a bench with --out on this file replaces it -->"


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in milliseconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(repeats, 1)):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def machine_line() -> str:
    """One line saying where the numbers were measured."""
    return (f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
            f"python {platform.python_version()}, torch {torch.__version__}"
            + (f", CUDA {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no CUDA"))


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def check_report_path(path: str | Path) -> Path:
    """Refuse ``--out`` where a file exists that no bench wrote (it would be replaced); call it before any work."""
    path = Path(path)
    if path.is_file() and path.read_text(errors="replace").rstrip().splitlines()[-1:] != [REPORT_MARKER]:
        raise UsageError(f"--out {path}: the file exists and was not written by partrm-gym bench, which would "
                         f"replace it; give a new path (e.g. outputs/bench.md)")
    return path


def write_report(path: str | Path, text: str) -> None:
    """Write a report to ``path`` atomically, ending with :data:`REPORT_MARKER` (:func:`check_report_path` first)."""
    atomic_write_text(check_report_path(path), text.rstrip("\n") + "\n\n" + REPORT_MARKER + "\n")


def emit_report(title: str, command: str, table: str, out: str | Path | None) -> str:
    """Print the report (title, command, machine, table) and write it to ``out`` if given."""
    text = f"## {title}\n\nMeasured with `{command}` on {machine_line()}.\n\n{table}\n"
    print(text)
    if out:
        write_report(out, text)
    return text


def view_fit_kwargs(steps: int | None) -> dict[str, int]:
    """The world-model env keywords of ``--view-fit-steps`` (empty when not given: the env's default)."""
    return {} if steps is None else {"view_fit_steps": steps}


def view_fit_flag(steps: int | None) -> str:
    """``--view-fit-steps`` as it goes into a report's command line ("" when not given)."""
    return "" if steps is None else f" --view-fit-steps {steps}"
