"""What the world-model env and its twin share as Gymnasium environments: spaces, camera, lifecycle, and the
episode's bookkeeping (steps, distances, the reward's progress)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from partrm_gym.envs.task import Task, TaskConfig, compute_reward, make_spaces, observation_camera
from partrm_gym.errors import UsageError


@dataclass
class Episode:
    """Everything an episode carries from one step to the next, in both env families (declared here only)."""

    task: Task
    goal_image: np.ndarray  # (H, W, 3) uint8: the observation that means "solved"
    initial_distance: float  # image distance of the first observation to the goal image
    initial_error: float  # what the dense reward's progress is measured on, at reset
    distance: float = float("nan")  # the current observation's image distance to the goal image
    error: float = float("nan")
    steps: int = 0

    def __post_init__(self) -> None:
        self.distance, self.error = self.initial_distance, self.initial_error

    def advance(self, cfg: TaskConfig, distance: float, error: float, success: bool) -> tuple[float, bool, bool]:
        """Count one step that left the observation ``distance`` from the goal image and the progress measure at
        ``error``: (reward, terminated, truncated)."""
        reward = compute_reward(cfg, error, self.error, self.initial_error, success)
        self.distance, self.error = distance, error
        self.steps += 1
        return float(reward), bool(success), bool(self.steps >= cfg.max_steps and not success)


class ArticulatedTaskEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, render_mode: str | None, task_kwargs: dict[str, Any]) -> None:
        self.cfg = TaskConfig.from_kwargs(task_kwargs)
        self.action_space, self.observation_space = make_spaces(self.cfg)
        if render_mode not in (None, "rgb_array"):
            raise UsageError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.camera = observation_camera(self.cfg)
        self.episode: Episode | None = None
        self._closed = False

    def _start_reset(self, seed: int | None) -> None:
        super().reset(seed=seed)
        if self._closed:
            raise RuntimeError("reset() after close(): make a new environment")

    def _lifecycle_error(self) -> RuntimeError:
        return RuntimeError("step() after close()" if self._closed else "step() before reset()")
