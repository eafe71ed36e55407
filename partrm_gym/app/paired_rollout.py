"""One drag sequence in both worlds: the loop that ``bench rollout``, ``demo`` and ``compare`` share.

The twin and the world-model env are reset with the same seed (so the same object and task); each step
the policy chooses a drag from the *twin's* observation, the twin executes it and imagination replays it.
There is no early stop: a comparison wants exactly ``steps`` drags, whatever either world says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np


class PairedStep(NamedTuple):
    """Both worlds after ``step`` drags (step 0: after reset); ``action`` is the drag of this step (None at 0)."""

    step: int
    action: np.ndarray | None
    twin_obs: dict[str, np.ndarray]
    twin_info: dict[str, Any]
    imagined_obs: dict[str, np.ndarray]
    imagined_info: dict[str, Any]


def paired_rollout(twin: Any, imagined: Any, act: Callable[[dict[str, np.ndarray]], np.ndarray], seed: int,
                   steps: int) -> Iterator[PairedStep]:
    """Reset ``twin`` (a ``PartRMSimEnv``) and ``imagined`` (a ``PartRMEnv``) with ``seed``, then apply ``steps``
    actions ``act(twin_obs)`` to both; yields :class:`PairedStep` for step 0 .. ``steps``. Both envs need
    ``max_steps`` > ``steps`` or a caller that ignores their truncation (the loop does not stop on it)."""
    twin_obs, twin_info = twin.reset(seed=seed)
    imagined_obs, imagined_info = imagined.reset(seed=seed)
    twin_task, imagined_task = twin.task, imagined.task
    if (twin_task.category, twin_task.seed, twin_task.joint) != (imagined_task.category, imagined_task.seed,
                                                                  imagined_task.joint):
        raise RuntimeError("the twin and the world-model env drew different tasks from one seed: make both with "
                           "the same task settings (category, split, partnet_root)")
    yield PairedStep(0, None, twin_obs, twin_info, imagined_obs, imagined_info)
    for step in range(1, steps + 1):
        action = act(twin_obs)
        twin_obs, _, _, _, twin_info = twin.step(action)
        imagined_obs, _, _, _, imagined_info = imagined.step(action)
        yield PairedStep(step, action, twin_obs, twin_info, imagined_obs, imagined_info)
