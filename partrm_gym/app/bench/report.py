"""Timing and Markdown reporting shared by every ``partrm-gym bench`` subcommand."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from partrm_gym.io import atomic_write_text


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


def emit_report(title: str, command: str, table: str, out: str | Path | None) -> str:
    """Print the report (title, command, machine, table) and write it to ``out`` if given."""
    text = f"## {title}\n\nMeasured with `{command}` on {machine_line()}.\n\n{table}\n"
    print(text)
    if out:
        atomic_write_text(out, text)
    return text


def view_fit_kwargs(steps: int | None) -> dict[str, int]:
    """The world-model env keywords of ``--view-fit-steps`` (empty when not given: the env's default)."""
    return {} if steps is None else {"view_fit_steps": steps}


def view_fit_flag(steps: int | None) -> str:
    """``--view-fit-steps`` as it goes into a report's command line ("" when not given)."""
    return "" if steps is None else f" --view-fit-steps {steps}"
