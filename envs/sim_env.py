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
from partrm_gym.envs.task import Task, decode_action, image_distance, reward_and_success, sample_task
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
        self._initial_distance = self._distance = image_distance(self._frame.rgb, self._goal_image)
        self._steps = 0
        return self._obs(), self._info(missed=False)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        if self.scene is None or self.task is None:
            raise self._lifecycle_error()
        drag = decode_action(action)
        solution = solve_drag(self.scene, self.camera, drag, frame=self._frame)
        if solution is not None:
            self.scene.drive_joint(solution.joint_position, solution.value)
        self._frame = self.scene.render(self.camera)
        previous, self._distance = self._distance, image_distance(self._frame.rgb, self._goal_image)
        reward, _ = reward_and_success(self.cfg, self._distance, previous, self._initial_distance)
        info = self._info(missed=solution is None)
        self._steps += 1
        terminated = bool(info["is_success"])
        if self.cfg.reward_mode == "sparse":
            reward = float(terminated)
        truncated = self._steps >= self.cfg.max_steps and not terminated
        return self._obs(), float(reward), terminated, truncated, info

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

    # -- helpers --------------------------------------------------------------------------------------------
    def _obs(self) -> dict[str, np.ndarray]:
        return {"image": self._frame.rgb.copy(), "goal": self._goal_image.copy()}

    def _info(self, missed: bool) -> dict[str, Any]:
        assert self.scene is not None and self.task is not None
        q = self.scene.get_joint_states()
        k = self.task.joint
        joint = self.scene.joints[k]
        err = abs(q[k] - self.task.goal[k]) / joint.range
        # all joints as tuples: their number varies by object, and vector envs stack array-valued info keys
        return {"joint_state": tuple(map(float, q)), "goal_joint_state": tuple(map(float, self.task.goal)), "joint": k,
                "joint_value": float(q[k]), "joint_fraction": float((q[k] - joint.lower) / joint.range),
                "goal_fraction": float((self.task.goal[k] - joint.lower) / joint.range),
                "joint_error": float(err), "is_success": bool(err <= self.cfg.joint_success_tolerance),
                "image_distance": self._distance, "missed": missed, "category": self.task.category,
                "object_seed": self.task.seed}

