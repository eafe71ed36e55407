"""What the world-model env and its twin share as Gymnasium environments (spaces, camera, lifecycle)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from partrm_gym.envs.task import TaskConfig, make_spaces, observation_camera
from partrm_gym.errors import UsageError


class ArticulatedTaskEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, render_mode: str | None, task_kwargs: dict[str, Any]) -> None:
        self.cfg = TaskConfig.from_kwargs(task_kwargs)
        self.action_space, self.observation_space = make_spaces(self.cfg)
        if render_mode not in (None, "rgb_array"):
            raise UsageError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.camera = observation_camera(self.cfg)
        self._closed = False

    def _start_reset(self, seed: int | None) -> None:
        super().reset(seed=seed)
        if self._closed:
            raise RuntimeError("reset() after close(): make a new environment")

    def _lifecycle_error(self) -> RuntimeError:
        return RuntimeError("step() after close()" if self._closed else "step() before reset()")
