"""``PartRM-*-v0``: an articulated-object environment whose transition function is PartRM.

``reset`` is the only simulator access of an episode. It draws the object and the initial and
goal states and takes from the simulator what cameras give — the 4 canonical input views of the
initial state (and of the goal state in the regenerate transition), and the observation camera's
view of both states — and, to state the task in the twin's terms, the task joint's limits and its
initial and goal values. Everything else is predicted.

Two transitions (``transition=``):

* ``"articulated"`` (default): at reset the model reconstructs the Gaussians once, labels each with
  its part and predicts each part's joint (:mod:`partrm_gym.articulation`); with ``view_fit_steps`` > 0 (off
  by default) gradient steps then fit the reconstruction's positions, colours, opacities and sizes to the
  camera's view of the initial state (:func:`~partrm_gym.photometric_fit.fit_to_view`), so that part borders
  sit where the camera shows them. The task part is the
  predicted part whose motion from the initial to the goal joint value changes the pixels that
  change between the camera's views of the initial and the goal state, keeping only its Gaussians that
  project into those changed pixels (the rest, often a neighbouring drawer the head merged with it,
  becomes a part of its own), and giving it the body Gaussians drawn on its border in the pixels it leaves
  (:func:`~partrm_gym.envs.task_part.shape_task_part`). A step lifts the drag start
  from the imagined depth (on a door or lid: the nearest of that, the part's front-most Gaussian under the start and
  its hinged panel),
  finds the part under it and solves the joint value whose motion carries
  that point closest to the drag end (the twin's rule on the true geometry), clamped to the limits;
  that part's Gaussians move rigidly, nothing else changes. No network call per step, and appearance
  cannot drift. Surfaces hidden at reset (the inside of a closed drawer) are not in the state: they
  stay empty when they come into view.
* ``"regenerate"`` (PartRM as published): every step segments the grasped part in the imagined
  observation, propagates the drag into the 4 canonical views and predicts all Gaussians anew
  from renders of the previous prediction. It drifts over several steps (docs/experiment.md).

Observations (``image``, ``goal``) are renders of the imagined current and goal states in the
observation camera. In the articulated transition the goal image is the imagined state with the task
part at its goal value, so, as in the twin, the observation equals the goal image exactly when the
task is solved. A drag that
grasps no movable part moves nothing (``info["missed"]``, as in the twin).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from partrm_gym.articulation import ArticulatedState, GroupingConfig
from partrm_gym.articulation import solve_joint_value as solve_imagined_joint
from partrm_gym.drags import to_pixels
from partrm_gym.envs.base import ArticulatedTaskEnv
from partrm_gym.envs.task import (
    Task,
    compute_reward,
    drag_from_action,
    evaluate_joint,
    image_distance,
    image_success,
    sample_task,
)
from partrm_gym.envs.task_part import find_task_part, shape_task_part
from partrm_gym.errors import UsageError
from partrm_gym.gaussians import Gaussians, save_ply
from partrm_gym.model.drag_propagation import drags_for_model, starts_on_surface
from partrm_gym.model.segmenters import ClassicalSegmenter, SamSegmenter, Segmenter
from partrm_gym.model.world_model import WorldModel
from partrm_gym.photometric_fit import ViewFit, fit_to_view
from partrm_gym.rendering import CameraImages, render_images, render_part_labels

TRANSITIONS = ("articulated", "regenerate")


class ResetRequest(NamedTuple):
    """What a reset takes from the simulator before the model reconstructs the scene."""

    task: Task
    views: np.ndarray  # (S, 4, H, W, 3) uint8: the input views of the states to reconstruct (initial[, goal])
    sim_image: np.ndarray  # (H, W, 3) uint8: the twin's observation of the initial state
    sim_goal_image: np.ndarray  # (H, W, 3) uint8: the camera's view of the goal state (picks the task part)
    limits: tuple[float, float]  # the task joint's (lower, upper)


class PartRMEnv(ArticulatedTaskEnv):
    """Open or close one part of an articulated object, in imagination (``PartRM-{Drawer,Door,Microwave,
    Laptop,Articulated}-v0``). The task and its scoring are the twin's (:class:`PartRMSimEnv`); only the
    transition is learned. See docs/envs.md for the page both env families share.

    ## Action Space
    ``Box(-1, 1, (4,), float32)``, read by :func:`~partrm_gym.envs.task.drag_from_action` from the current
    imagined observation:

    * ``object_drag`` (default), (u, v, dx, dy): the drag starts at (u, v) of the object pixels' 2D box,
      snapped to the nearest object pixel, and ends (dx, dy) × ``drag_scale`` of the image away.
    * ``pixel_drag``, (x0, y0, x1, y1): from (x0, y0) to (x1, y1), each in [-1, 1] over the image.

    ## Observation Space
    ``Dict(image=Box(0, 255, (resolution, resolution, 3), uint8), goal=<same>)``: the imagined current
    state and the imagined goal state rendered in the observation camera (white background). The articulated
    transition's goal is its reset state with the task part at the goal value (the camera's view of the goal
    only picks the task part); the regenerate transition's is the goal's reconstruction.

    ## Rewards
    From :meth:`evaluate`: with e = |q - q_goal| / range of the imagined task joint (articulated
    transition), ``dense``: ``dense_scale`` × (e_previous - e) / e_initial + ``success_bonus`` × success;
    ``sparse``: 1 on success. The regenerate transition has no joint: e is the image distance to the
    goal image and success is that distance ≤ ``success_ratio`` × the initial one.

    ## Starting State
    A task drawn with ``np_random`` (:func:`~partrm_gym.envs.task.sample_task`): a procedural object of
    ``category`` and ``split``, one of its joints, initial and goal joint fractions at least
    ``min_goal_change`` apart (``task`` = open, close or random). The articulated transition reconstructs the
    initial state from the simulator's 4 input views and labels its parts and joints once (and fits the
    reconstruction to the camera's view of the initial state if ``view_fit_steps`` > 0); the regenerate
    transition reconstructs the initial and the goal state.

    ## Episode End
    Terminated on success; truncated after ``max_steps`` steps otherwise.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``model_path`` / ``world_model`` | bundled model | the world model (a checkpoint folder or an instance) |
    | ``transition`` | ``"articulated"`` | ``"articulated"`` (rigid parts, no network per step), ``"regenerate"`` |
    | ``grouping`` | ``GroupingConfig()`` | how articulation votes become parts |
    | ``view_fit_steps`` | ``0`` | articulated: Adam steps fitting the reset reconstruction to the camera's |
    | | | view of the initial state (0: the model's reconstruction as is; 10 measured in docs/articulation.md) |
    | ``segmenter`` / ``sam_checkpoint`` | ``"classical"`` | regenerate transition: the drag's part mask |
    | ``device`` | ``"cpu"`` | the model's device (gsplat renders on CUDA) |
    | task keywords | see :class:`~partrm_gym.envs.task.TaskConfig` | category, split, task, resolution, max_steps, |
    | | | reward_mode, control_mode, drag_scale, joint_success_tolerance, success_bonus, dense_scale, ... |

    ## Info
    ``is_success``, ``joint_value``, ``joint_fraction``, ``goal_fraction``, ``joint_limits``, ``joint_error``
    (the imagined task joint; absent in the regenerate transition), ``image_distance`` (diagnostic), ``missed``
    (the drag grasped no movable part), ``joint`` (the task joint's index); at reset also ``category``,
    ``object_seed`` and ``sim_image`` (the twin's first observation, for comparisons).

    ## What it reads from the simulator, and when
    Only in ``reset``: the input views of the initial state (and of the goal state, regenerate transition), the
    observation camera's view of the initial state (``info["sim_image"]``; with ``view_fit_steps`` the
    reconstruction is fitted to it) and of the goal state (which picks and carves the task part), and the task joint's
    limits and initial and goal values (the task's terms). Nothing during steps.
    """

    def __init__(self, model_path: str | Path | None = None, device: str = "cpu", segmenter: str = "classical",
                 sam_checkpoint: str | None = None, render_mode: str | None = "rgb_array",
                 world_model: WorldModel | None = None, transition: str = "articulated",
                 grouping: GroupingConfig | None = None, view_fit_steps: int = 0,
                 **task_kwargs: Any) -> None:
        super().__init__(render_mode, task_kwargs)
        if isinstance(view_fit_steps, bool) or not isinstance(view_fit_steps, int) or view_fit_steps < 0:
            raise UsageError(f"view_fit_steps must be an int >= 0 (0: no fit), got {view_fit_steps!r}")
        self.view_fit = ViewFit(steps=view_fit_steps)  # articulated transition: the reset reconstruction's fit
        if segmenter not in ("classical", "sam"):
            raise UsageError(f"segmenter must be 'classical' or 'sam' (no simulator after reset), got {segmenter!r}")
        if transition not in TRANSITIONS:
            raise UsageError(f"transition={transition!r} is not valid; choose one of {list(TRANSITIONS)}")
        self.transition = transition
        self.grouping = grouping or GroupingConfig()  # how articulation votes become parts
        self.model = world_model or WorldModel.from_pretrained(model_path, device=device)
        if transition == "articulated" and not self.model.has_articulation:
            raise UsageError("transition='articulated' needs a world model with an articulation head (its "
                             "config.yaml has articulation_head: true); give one with model_path= or use "
                             "transition='regenerate'")
        self.segmenter: Segmenter = (SamSegmenter(sam_checkpoint, device=device) if segmenter == "sam"
                                     else ClassicalSegmenter())
        self.gaussians: Gaussians | None = None
        self.state: ArticulatedState | None = None  # the articulated transition's imagined state
        self.task_part: int | None = None  # the state's part that is the task joint (None: none was found)
        self._missed = False

    # -- gymnasium API ------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        request = self.prepare_reset(seed=seed, options=options)
        return self.finish_reset(request, self.predict_resets([request])[0])

    # The three parts of a reset, so a vector env can batch the model call of all the envs it resets.
    def prepare_reset(self, *, seed: int | None = None, options: dict | None = None) -> ResetRequest:
        """Sample the task and take what the episode needs from the simulator (the only simulator access
        of the episode): the initial input views (and the goal's, for the regenerate transition, whose goal
        image is the goal's reconstruction), the camera's view of the initial and the goal state, and the task
        joint's terms."""
        self._start_reset(seed)
        task, scene = sample_task(self.cfg, self.np_random)
        with scene:
            scene.set_joint_states(task.goal)
            sim_goal_image = scene.render(self.camera).rgb
            views = []
            if self.transition == "regenerate":
                views.append(np.stack([f.rgb for f in scene.render_views(self.model.input_cameras)]))
            scene.set_joint_states(task.initial)
            views.insert(0, np.stack([f.rgb for f in scene.render_views(self.model.input_cameras)]))
            sim_image = scene.render(self.camera).rgb
            joint = scene.joints[task.joint]
            limits = (float(joint.lower), float(joint.upper))
        return ResetRequest(task, np.stack(views), sim_image, sim_goal_image, limits)

    def predict_resets(self, requests: list[ResetRequest]) -> list[tuple]:
        """One batched model call for the reset requests of envs that share this env's model and transition:
        per request the reconstruction of each of its states — (initial articulated state,) or (initial, goal)
        Gaussians (regenerate)."""
        views = np.concatenate([r.views for r in requests])  # (S R, 4, H, W, 3), request by request
        per_request = len(requests[0].views)
        if self.transition == "articulated":
            out = self.model.predict_articulated(views, self.grouping)
        else:
            recon = self.model.predict(views)
            out = [recon[i:i + 1] for i in range(len(views))]
        return [tuple(out[i * per_request:(i + 1) * per_request]) for i in range(len(requests))]

    def finish_reset(self, request: ResetRequest, prediction: tuple) -> tuple[dict, dict]:
        """Start the episode from the reset request and its reconstruction (:meth:`predict_resets`)."""
        task = request.task
        self._limits = request.limits
        self._start_value, self._goal_value = float(task.initial[task.joint]), float(task.goal[task.joint])
        if self.transition == "articulated":
            self.state = prediction[0]  # this env's own: the fit replaces its reconstruction in place
            self.state.base = fit_to_view(self.state.base, [self.camera], request.sim_image[None], self.view_fit)
            # the first observation's render also serves finding and shaping the task part: they change part
            # labels, never a Gaussian, so it stays the render of the state
            view = self._render_current()
            self.task_part = find_task_part(self.state, self.camera, request.sim_image, request.sim_goal_image,
                                            self._start_value, self._goal_value, self._limits, current_view=view)
            shape_task_part(self.state, self.task_part, self.camera, request.sim_image, request.sim_goal_image,
                            self._goal_value, current_view=view)
            self._goal_image = self._goal_of_state(request.sim_goal_image)
        else:
            initial, goal = prediction
            self.gaussians = initial
            self._goal_image = render_images(goal, [self.camera]).rgb[0]
            self._views = request.views[:1]  # the first step uses the simulator's input views
            self._render_current()
        self.task = task
        self._initial_distance = self._distance = image_distance(self._image, self._goal_image)
        self._steps = 0
        evaluation = self.evaluate()
        self._initial_error = self._error = self._reward_error(evaluation)
        return self._obs(), {"category": task.category, "object_seed": task.seed, "joint": task.joint,
                             "sim_image": request.sim_image, "image_distance": self._distance, "missed": False,
                             **evaluation}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        request = self.prepare_step(action)
        if request is not None:
            self.gaussians = self.model.predict(*request)
        return self.finish_step()

    # The two halves of a step, so a vector env can batch the model call between them.
    def prepare_step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The regenerate transition's model inputs (views (1, 4, H, W, 3), drags (1, 4, D, 4), mask (1, 4, D)),
        or None when no network call is needed (a miss, or the articulated transition, which moves its part here)."""
        if self.gaussians is None:
            raise self._lifecycle_error()
        drag = drag_from_action(self.cfg, action, self._image)
        if self.transition == "articulated":
            self._missed = not self._move_grasped_part(drag)
            return None
        drags, mask = self._model_drags(drag)
        self._missed = not mask.any()
        if self._missed:
            return None
        views, self._views = self._views, None
        return views, drags[None], mask[None]

    def finish_step(self) -> tuple[dict, float, bool, bool, dict]:
        """Render the new imagined state (unchanged after a miss) and score it."""
        if not self._missed:
            self._render_current()
        self._distance = image_distance(self._image, self._goal_image)
        evaluation = self.evaluate()
        error = self._reward_error(evaluation)
        reward = compute_reward(self.cfg, error, self._error, self._initial_error, evaluation["is_success"])
        self._error = error
        self._steps += 1
        success = evaluation["is_success"]
        truncated = self._steps >= self.cfg.max_steps and not success
        info = {"image_distance": self._distance, "missed": self._missed, "joint": self.task.joint, **evaluation}
        return self._obs(), float(reward), success, truncated, info

    def evaluate(self) -> dict[str, Any]:
        """Success and what the reward reads. Articulated transition: from the imagined task joint
        (:func:`~partrm_gym.envs.task.evaluate_joint`, the twin's rule), with its ``joint_value``. Regenerate
        transition (no joint in its state): ``is_success`` from the image distance to the goal image."""
        if self.transition != "articulated":
            return {"is_success": image_success(self.cfg, self._distance, self._initial_distance)}
        value = self.state.joints[self.task_part].value if self.task_part is not None else self._start_value
        return evaluate_joint(self.cfg, value, self._goal_value, *self._limits)

    def _reward_error(self, evaluation: dict[str, Any]) -> float:
        """What the dense reward's progress is measured on: the joint error, or the image distance (regenerate)."""
        return evaluation["joint_error"] if "joint_error" in evaluation else self._distance

    def render(self) -> np.ndarray | None:
        return self._image.copy() if self.render_mode == "rgb_array" and self.gaussians is not None else None

    def close(self) -> None:
        self.gaussians, self.state, self._closed = None, None, True

    # -- imagined state -------------------------------------------------------------------------------------
    def render_camera(self, cameras: list) -> tuple[np.ndarray, np.ndarray]:
        """The current imagined state from any cameras: uint8 RGB (C, H, W, 3) and depth (C, H, W)."""
        if self.gaussians is None:
            raise RuntimeError("no imagined state: call reset() first")
        return render_images(self.gaussians, cameras)

    def part_labels(self, cameras: list | None = None) -> np.ndarray:
        """The imagined part segmentation (C, H, W) int: -2 no surface, -1 static body, k part k of
        ``self.state.joints`` (the task part is ``self.task_part``), rendered from ``cameras``
        (default: the observation camera). Articulated transition only."""
        if self.state is None or self.gaussians is None:
            raise RuntimeError("part labels exist in the articulated transition after reset()")
        return render_part_labels(self.gaussians, self.state.labels, cameras or [self.camera])

    def task_part_mask(self) -> np.ndarray:
        """(H, W) bool: the observation's pixels that show the imagined task part (all False when no predicted part
        matched the task, and in the regenerate transition, which has no parts)."""
        if self.gaussians is None:
            raise RuntimeError("no imagined state: call reset() first")
        if self.state is None or self.task_part is None:
            return np.zeros(self._image.shape[:2], bool)
        return self.part_labels()[0] == self.task_part

    def export_ply(self, path: str | Path) -> Path:
        if self.gaussians is None:
            raise RuntimeError("no imagined state: call reset() first")
        save_ply(path, self.gaussians[0:1])
        return Path(path)

    def _render_current(self) -> CameraImages:
        """Render the current state in the camera as the observation (image and depth); returns the render."""
        if self.state is not None:
            self.gaussians = self.state.gaussians()
        view = render_images(self.gaussians, [self.camera])
        self._image, self._depth = view.rgb[0], view.depth[0]
        return view

    def _goal_of_state(self, camera_goal: np.ndarray) -> np.ndarray:
        """The goal observation of the articulated transition: the imagined state with the task part at its goal
        value. Like the twin's goal image, it is what the observation shows exactly when the task is solved, so
        image, reward and success agree (the goal's own reconstruction differs from the moved reset reconstruction
        everywhere by reconstruction noise, which a policy reading pixels took for a difference to fix). Without a
        task part, the camera's view of the goal (``camera_goal``)."""
        if self.task_part is None:
            return camera_goal
        goal_state = self.state.copy()
        goal_state.set_value(self.task_part, self._goal_value)
        return render_images(goal_state.gaussians(), [self.camera]).rgb[0]

    def _move_grasped_part(self, drag: np.ndarray) -> bool:
        """Articulated step: the part under the drag start follows the drag end. False (a miss, as in the twin)
        when the drag starts off the object or on its static body."""
        grasped = self.state.grasp(self.gaussians, self._depth, self.camera, to_pixels(drag[:2], self.camera))
        if grasped is None:
            return False
        part, point = grasped
        target = to_pixels(drag[2:], self.camera)
        self.state.set_value(part, solve_imagined_joint(self.state.joints[part], point, target, self.camera))
        return True

    def _model_drags(self, drag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segment in the imagined observation, propagate, transfer to the 4 views; re-render those views."""
        if not starts_on_surface(drag, self.camera, self._depth):  # a miss costs no rendering: nothing changes
            return np.zeros((4, self.model.max_drags, 4), np.float32), np.zeros((4, self.model.max_drags), bool)
        view_rgb, view_depth = render_images(self.gaussians, self.model.input_cameras)
        if self._views is None:
            self._views = view_rgb[None]
        return drags_for_model(drag, self._image, self.camera, self._depth, self.segmenter, self.model.input_cameras,
                               list(view_depth), self.model.max_drags, self.np_random)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"image": self._image.copy(), "goal": self._goal_image.copy()}
