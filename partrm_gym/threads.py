"""How many CPU threads this process's torch (and its child processes) use, set on purpose.

Two torch processes that each start one OpenMP thread per core fight over the cores: on a
2-core machine a data generation beside a training run slowed both 15-30x, while the same
two processes with one thread each ran side by side at full speed (and two ``datagen``
shard processes of one thread each made 1.44 states/s, against ~0.6 states/s for one
process of two threads). So every ``partrm-gym`` command sets its thread count at start-up
(``--threads N``), and the worker processes of ``partrm-gym datagen --workers N`` use one
thread each. When several processes run at once, give each one thread.

Threads that wait sleep rather than spin (``OMP_WAIT_POLICY=PASSIVE``, set before torch loads
unless the user set it): torch's OpenMP threads otherwise spin on a core between parallel
regions, and a spinning process starves the one beside it. Measured on 2 cores, a small
``datagen`` beside a ``partrm-gym bench render`` loop took 1.3x its time alone with both
processes passive, and over 10x with both spinning (OpenMP's default); a process alone pays
for it (the CPU rasterizer about 10-20% slower, datagen about 5%). Set ``OMP_WAIT_POLICY=ACTIVE``
on a machine that runs nothing else.

Default, when no count is given: ``$PARTRM_GYM_THREADS`` if set; else ``$OMP_NUM_THREADS`` if
set (so ``OMP_NUM_THREADS=1 partrm-gym ...`` keeps meaning one thread); else the number of
cores this process may run on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from partrm_gym.errors import UsageError

THREADS_ENV = "PARTRM_GYM_THREADS"
# What child processes (and libraries started later) read; OPENBLAS_CORETYPE is deliberately left alone.
CHILD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"  # read once, when OpenMP loads (with torch): set before the import
DEFAULT_WAIT_POLICY = "PASSIVE"

__all__ = ["CHILD_ENV_VARS", "DEFAULT_WAIT_POLICY", "THREADS_ENV", "WAIT_POLICY_ENV", "available_cores",
           "child_threads", "default_threads", "set_threads"]


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it, else all of them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def _env_count(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"{name}={text!r} is not a positive integer; set it to a thread count such as 1, "
                         "or unset it")
    return value


def default_threads() -> int:
    """``$PARTRM_GYM_THREADS``, else ``$OMP_NUM_THREADS``, else :func:`available_cores`."""
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        value = _env_count(name)
        if value is not None:
            return value
    return available_cores()


def set_threads(n: int | None = None) -> int:
    """Use ``n`` CPU threads in this process and its future child processes; returns the count used.

    ``n=None`` takes :func:`default_threads`. Sets torch's intra-op threads, its inter-op threads
    where still allowed (torch accepts that only once, before any parallel work; later calls
    leave it as it is), and ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS``
    for child processes, and ``OMP_WAIT_POLICY=PASSIVE`` unless set (effective only when torch
    was not imported yet, as in the CLI). See the module docstring for why (two processes with a thread per
    core each slow each other down many times over; run each with one thread instead).
    """
    if n is None:
        n = default_threads()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"thread count {n!r} is not a positive integer")
    for name in CHILD_ENV_VARS:
        os.environ[name] = str(n)
    os.environ.setdefault(WAIT_POLICY_ENV, DEFAULT_WAIT_POLICY)  # no effect if torch is already loaded
    import torch  # here, not at module import: `partrm-gym --help` stays fast

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # already set, or parallel work already started: keep what it is
        pass
    return n


@contextmanager
def child_threads(n: int) -> Iterator[None]:
    """Processes started inside this block use ``n`` threads (through ``OMP_NUM_THREADS`` and its
    kin, which torch reads when it loads); this process keeps its own count. For pools of
    worker processes that share the cores, such as Gymnasium's ``AsyncVectorEnv``."""
    before = {name: os.environ.get(name) for name in CHILD_ENV_VARS}
    os.environ.update({name: str(n) for name in CHILD_ENV_VARS})
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
