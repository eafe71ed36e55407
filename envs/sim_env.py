"""``PartRMSim-*-v0``: the PyBullet twin of the world-model environments (ground truth).

Same spaces, task sampling, control modes, success and reward as ``PartRM-*-v0``; the drag is
applied through the drag -> joint solver (:func:`partrm_gym.drags.solve_drag`) and physics
(motors off, a position-controlled motor drives the grasped joint to the solved value).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from partrm_gym.drags import solve_drag
from partrm_gym.envs.base import ArticulatedTaskEnv, Episode
from partrm_gym.envs.task import (
    JointReadout,
    Task,
    drag_from_action,
    evaluate_joint,
    image_distance,
    reset_joint,
    sample_task,
)
from partrm_gym.scene import Scene


class PartRMSimEnv(ArticulatedTaskEnv):
    """The PyBullet twin (``PartRMSim-{Drawer,Door,Microwave,Laptop,Articulated}-v0``): the same task,
    spaces, control modes, success and reward as :class:`PartRMEnv`, with the true physics and joints.
    See docs/envs.md for the page both env families share.

    ## Action Space
    ``Box(-1, 1, (4,), float32)`` under ``control_mode`` ``object_drag`` (default: (u, v) on the object's
    2D box, snapped onto it, and a pull (dx, dy) × ``drag_scale``) or ``pixel_drag`` ((x0, y0, x1, y1)
    over the image), read from the current simulated observation
    (:func:`~partrm_gym.envs.task.drag_from_action`). The drag's start is lifted from the simulator's
    depth; the joint under it is driven to the value whose motion carries that point closest to the
    drag's end (:func:`partrm_gym.drags.solve_drag`), by a position motor and physics.

    ## Observation Space
    ``Dict(image, goal)``: uint8 (resolution, resolution, 3) renders of the current and the goal state
    in the observation camera (PyBullet TinyRenderer, white background).

    ## Rewards
    From :meth:`evaluate` on the true task joint, e = |q - q_goal| / range: ``dense``: ``dense_scale`` ×
    (e_previous - e) / e_initial + ``success_bonus`` × success; ``sparse``: 1 on success.

    ## Starting State
    The task :class:`PartRMEnv` draws from the same seed (:func:`~partrm_gym.envs.task.sample_task`).

    ## Episode End
    Terminated on success (e ≤ ``joint_success_tolerance``); truncated after ``max_steps`` steps.

    ## Arguments
    ``render_mode`` and the :class:`~partrm_gym.envs.task.TaskConfig` keywords.

    ## Info
    ``is_success``, ``joint_value``, ``joint_fraction``, ``goal_fraction``, ``joint_limits``, ``joint_error``
    (the true task joint), ``joint_state`` / ``goal_joint_state`` (every joint, tuples), ``joint``, ``image_distance``,
    ``missed`` (the drag grasped no movable part), ``category``, ``object_seed``.

    ## What it reads from the simulator, and when
    Everything, at every step: it is the simulator.
    """

    def __init__(self, render_mode: str | None = "rgb_array", **task_kwargs: Any) -> None:
        super().__init__(render_mode, task_kwargs)
        self.scene: Scene | None = None
        self.task: Task | None = None

    # -- gymnasium API ------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self._start_reset(seed)
        if self.scene is not None:
            self.scene.close()
        self.task, self.scene = sample_task(self.cfg, self.np_random, reset_joint(options))
        self.scene.set_joint_states(self.task.goal)
        goal_image = self.scene.render(self.camera).rgb
        self.scene.set_joint_states(self.task.initial)
        self._frame = self.scene.render(self.camera)
        evaluation = self.evaluate()
        self.episode = Episode(self.task, goal_image, image_distance(self._frame.rgb, goal_image),
                               evaluation["joint_error"])
        return self._obs(), self._info(evaluation, missed=False)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        if self.scene is None or self.episode is None:
            raise self._lifecycle_error()
        drag = drag_from_action(self.cfg, action, self._frame.rgb)
        solution = solve_drag(self.scene, self.camera, drag, frame=self._frame)
        if solution is not None:
            self.scene.drive_joint(solution.joint_position, solution.value)
        self._frame = self.scene.render(self.camera)
        evaluation = self.evaluate()
        reward, terminated, truncated = self.episode.advance(
            self.cfg, image_distance(self._frame.rgb, self.episode.goal_image), evaluation["joint_error"],
            evaluation["is_success"])
        return self._obs(), reward, terminated, truncated, self._info(evaluation, missed=solution is None)

    def evaluate(self) -> dict[str, Any]:
        """Success and what the reward reads, from the true task joint (:func:`evaluate_joint`)."""
        return evaluate_joint(self.cfg, self.joint_readout())

    def joint_readout(self) -> JointReadout:
        """The true task joint: its value, goal value and limits (what :meth:`evaluate` scores)."""
        if self.scene is None or self.task is None:
            raise RuntimeError("no simulated state: call reset() first")
        k = self.task.joint
        joint = self.scene.joints[k]
        return JointReadout(float(self.scene.get_joint_states()[k]), float(self.task.goal[k]), float(joint.lower),
                            float(joint.upper))

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
        return {"image": self._frame.rgb.copy(), "goal": self.episode.goal_image.copy()}

    def _info(self, evaluation: dict[str, Any], missed: bool) -> dict[str, Any]:
        assert self.scene is not None and self.task is not None
        # all joints as tuples: their number varies by object, and vector envs stack array-valued info keys
        return {"joint_state": tuple(map(float, self.scene.get_joint_states())),
                "goal_joint_state": tuple(map(float, self.task.goal)), "joint": self.task.joint, **evaluation,
                "image_distance": self.episode.distance, "missed": missed, "category": self.task.category,
                "object_seed": self.task.seed}
