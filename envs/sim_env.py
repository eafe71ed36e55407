"""``PartRMSim-*-v0``: the PyBullet twin of the world-model environments (ground truth).

Same spaces, task sampling and reward as ``PartRM-*-v0``; the drag is applied through the
drag -> joint solver (:func:`partrm_gym.drags.solve_drag`) and physics (motors off, a
position-controlled motor drives the grasped joint to the solved value). ``info`` carries
the true joint state and ``is_success`` (the grasped joint within
``joint_success_tolerance`` of its goal), which is also what terminates an episode.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from partrm_gym.drags import solve_drag
from partrm_gym.envs.base import ArticulatedTaskEnv
from partrm_gym.envs.task import Task, compute_reward, drag_from_action, evaluate_joint, image_distance, sample_task
from partrm_gym.scene import Scene


class PartRMSimEnv(ArticulatedTaskEnv):
    def __init__(self, render_mode: str | None = "rgb_array", **task_kwargs: Any) -> None:
        super().__init__(render_mode, task_kwargs)
        self.scene: Scene | None = None
        self.task: Task | None = None

    # -- gymnasium API ------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self._start_reset(seed)
        if self.scene is not None:
            self.scene.close()
        self.task, self.scene = sample_task(self.cfg, self.np_random)
        self.scene.set_joint_states(self.task.goal)
        self._goal_image = self.scene.render(self.camera).rgb
        self.scene.set_joint_states(self.task.initial)
        self._frame = self.scene.render(self.camera)
        self._distance = image_distance(self._frame.rgb, self._goal_image)
        self._steps = 0
        info = self._info(missed=False)
        self._initial_error = self._error = info["joint_error"]
        return self._obs(), info

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        if self.scene is None or self.task is None:
            raise self._lifecycle_error()
        drag = drag_from_action(self.cfg, action, self._frame.rgb)
        solution = solve_drag(self.scene, self.camera, drag, frame=self._frame)
        if solution is not None:
            self.scene.drive_joint(solution.joint_position, solution.value)
        self._frame = self.scene.render(self.camera)
        self._distance = image_distance(self._frame.rgb, self._goal_image)
        info = self._info(missed=solution is None)
        reward = compute_reward(self.cfg, info["joint_error"], self._error, self._initial_error, info["is_success"])
        self._error = info["joint_error"]
        self._steps += 1
        terminated = info["is_success"]
        truncated = self._steps >= self.cfg.max_steps and not terminated
        return self._obs(), float(reward), terminated, truncated, info

    def evaluate(self) -> dict[str, Any]:
        """Success and what the reward reads, from the true task joint (:func:`evaluate_joint`), plus its value."""
        assert self.scene is not None and self.task is not None
        k = self.task.joint
        joint = self.scene.joints[k]
        q = float(self.scene.get_joint_states()[k])
        return {"joint_value": q, **evaluate_joint(self.cfg, (q - joint.lower) / joint.range,
                                                  (self.task.goal[k] - joint.lower) / joint.range)}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self.scene is None:
            return None
        return self._frame.rgb.copy()

    def close(self) -> None:
        if self.scene is not None:
            self.scene.close()
        self.scene, self._closed = None, True

    def render_camera(self, cameras: list) -> tuple[np.ndarray, np.ndarray]:
        """The current simulated state from any cameras: uint8 RGB (C, H, W, 3) and depth (C, H, W), ``inf``
        off the object — the same call as the world-model env's, so planners can run on either."""
        if self.scene is None:
            raise RuntimeError("no simulated state: call reset() first")
        frames = self.scene.render_views(list(cameras))
        return np.stack([f.rgb for f in frames]), np.stack([f.depth for f in frames])

    def task_part_mask(self) -> np.ndarray:
        """(H, W) bool: the observation's pixels that show the task part (the simulator's segmentation)."""
        if self.scene is None or self.task is None:
            raise RuntimeError("no simulated state: call reset() first")
        return self._frame.part_mask(self.scene.joints[self.task.joint])

    # -- helpers --------------------------------------------------------------------------------------------
    def _obs(self) -> dict[str, np.ndarray]:
        return {"image": self._frame.rgb.copy(), "goal": self._goal_image.copy()}

    def _info(self, missed: bool) -> dict[str, Any]:
        assert self.scene is not None and self.task is not None
        # all joints as tuples: their number varies by object, and vector envs stack array-valued info keys
        return {"joint_state": tuple(map(float, self.scene.get_joint_states())),
                "goal_joint_state": tuple(map(float, self.task.goal)), "joint": self.task.joint, **self.evaluate(),
                "image_distance": self._distance, "missed": missed, "category": self.task.category,
                "object_seed": self.task.seed}
