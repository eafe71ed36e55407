"""``PartRM-*-v0``: an articulated-object environment whose transition function is PartRM.

``reset`` uses the simulator once: it draws the object and the initial and goal states,
renders the canonical input views of both, and reconstructs each as Gaussians with the
model (no drags). From then on nothing reads the simulator: a step renders the imagined
Gaussians into the observation camera, segments the grasped part there, propagates and
transfers the drag into the 4 canonical views (using rendered depth), re-renders those
views from the Gaussians, and lets the model predict the next Gaussians.

Observations (``image``, ``goal``) are renders of the imagined current and goal states in
the observation camera, so the reward (shared with the twin) compares like with like.
A drag that starts off the imagined object moves nothing (``info["missed"]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from partrm_gym.cameras import stack_cameras
from partrm_gym.envs.base import ArticulatedTaskEnv
from partrm_gym.envs.task import decode_action, image_distance, reward_and_success, sample_task
from partrm_gym.errors import UsageError
from partrm_gym.gaussians import Gaussians, save_ply
from partrm_gym.model.drag_propagation import drags_for_model, starts_on_surface
from partrm_gym.model.segmenters import ClassicalSegmenter, SamSegmenter, Segmenter
from partrm_gym.model.world_model import WorldModel
from partrm_gym.rendering import rasterize
from partrm_gym.scene import SIM_BACKGROUND

EMPTY_ALPHA = 0.5  # a pixel whose rendered alpha is below this shows no surface


def render_gaussians(gaussians: Gaussians, cameras: list, background: tuple[float, float, float] = SIM_BACKGROUND
                     ) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB (C, H, W, 3) and depth (C, H, W), ``inf`` where nothing is drawn, for one scene (B = 1)."""
    device = gaussians.means.device
    viewmats, Ks = stack_cameras(cameras, device=device)
    out = rasterize(gaussians, viewmats, Ks, cameras[0].width, cameras[0].height,
                    background=torch.tensor(background, device=device))
    rgb = (out.rgb[0].clamp(0, 1) * 255).round().byte().cpu().numpy()
    alpha = out.alpha[0, ..., 0].cpu().numpy()
    depth = out.depth[0, ..., 0].cpu().numpy()
    depth = np.where(alpha > EMPTY_ALPHA, depth, np.inf)  # the rasterizer's depth is already alpha-normalised
    return rgb, depth


class PartRMEnv(ArticulatedTaskEnv):
    def __init__(self, model_path: str | Path | None = None, device: str = "cpu", segmenter: str = "classical",
                 sam_checkpoint: str | None = None, render_mode: str | None = "rgb_array",
                 world_model: WorldModel | None = None, **task_kwargs: Any) -> None:
        super().__init__(render_mode, task_kwargs)
        if segmenter not in ("classical", "sam"):
            raise UsageError(f"segmenter must be 'classical' or 'sam' (no simulator after reset), got {segmenter!r}")
        self.model = world_model or WorldModel.from_pretrained(model_path, device=device)
        self.segmenter: Segmenter = (SamSegmenter(sam_checkpoint, device=device) if segmenter == "sam"
                                     else ClassicalSegmenter())
        self.gaussians: Gaussians | None = None

    # -- gymnasium API ------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self._start_reset(seed)
        task, scene = sample_task(self.cfg, self.np_random)
        with scene:  # the only simulator access of the episode
            scene.set_joint_states(task.goal)
            goal_views = np.stack([f.rgb for f in scene.render_views(self.model.input_cameras)])
            scene.set_joint_states(task.initial)
            init_views = np.stack([f.rgb for f in scene.render_views(self.model.input_cameras)])
            sim_image = scene.render(self.camera).rgb
        recon = self.model.predict(np.stack([init_views, goal_views]))
        self.gaussians, goal = recon[0:1], recon[1:2]
        self._goal_image = render_gaussians(goal, [self.camera])[0][0]
        self._views = init_views[None]  # the first step uses the simulator's input views
        self._render_current()
        self.task = task
        self._initial_distance = self._distance = image_distance(self._image, self._goal_image)
        self._steps = 0
        return self._obs(), {"category": task.category, "object_seed": task.seed, "joint": task.joint,
                             "sim_image": sim_image, "image_distance": self._distance, "missed": False}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        request = self.prepare_step(action)
        if request is not None:
            self.gaussians = self.model.predict(*request)
        return self.finish_step(missed=request is None)

    # The two halves of a step, so a vector env can batch the model call between them.
    def prepare_step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(views (1, 4, H, W, 3), drags (1, 4, D, 4), mask (1, 4, D)) for the model, or None if the drag misses."""
        if self.gaussians is None:
            raise self._lifecycle_error()
        drags, mask = self._model_drags(decode_action(action))
        if not mask.any():
            return None
        views, self._views = self._views, None
        return views, drags[None], mask[None]

    def finish_step(self, missed: bool) -> tuple[dict, float, bool, bool, dict]:
        """Render the new imagined state (unchanged after a miss) and score it."""
        if not missed:
            self._render_current()
        previous, self._distance = self._distance, image_distance(self._image, self._goal_image)
        reward, success = reward_and_success(self.cfg, self._distance, previous, self._initial_distance)
        self._steps += 1
        truncated = self._steps >= self.cfg.max_steps and not success
        info = {"image_distance": self._distance, "missed": missed, "is_success": success}
        return self._obs(), float(reward), bool(success), truncated, info

    def render(self) -> np.ndarray | None:
        return self._image.copy() if self.render_mode == "rgb_array" and self.gaussians is not None else None

    def close(self) -> None:
        self.gaussians, self._closed = None, True

    # -- imagined state -------------------------------------------------------------------------------------
    def render_camera(self, cameras: list) -> tuple[np.ndarray, np.ndarray]:
        """The current imagined state from any cameras: uint8 RGB (C, H, W, 3) and depth (C, H, W)."""
        if self.gaussians is None:
            raise RuntimeError("no imagined state: call reset() first")
        return render_gaussians(self.gaussians, cameras)

    def export_ply(self, path: str | Path) -> Path:
        if self.gaussians is None:
            raise RuntimeError("no imagined state: call reset() first")
        save_ply(path, self.gaussians[0:1])
        return Path(path)

    def _render_current(self) -> None:
        rgb, depth = render_gaussians(self.gaussians, [self.camera])
        self._image, self._depth = rgb[0], depth[0]

    def _model_drags(self, drag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segment in the imagined observation, propagate, transfer to the 4 views; re-render those views."""
        if not starts_on_surface(drag, self.camera, self._depth):  # a miss costs no rendering: nothing changes
            return np.zeros((4, self.model.max_drags, 4), np.float32), np.zeros((4, self.model.max_drags), bool)
        view_rgb, view_depth = render_gaussians(self.gaussians, self.model.input_cameras)
        if self._views is None:
            self._views = view_rgb[None]
        return drags_for_model(drag, self._image, self.camera, self._depth, self.segmenter, self.model.input_cameras,
                               list(view_depth), self.model.max_drags, self.np_random)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"image": self._image.copy(), "goal": self._goal_image.copy()}
