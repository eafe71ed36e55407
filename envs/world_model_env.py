"""``PartRM-*-v0``: an articulated-object environment whose transition function is PartRM.

``reset`` is the only simulator access of an episode. It draws the object and the initial and
goal states and takes from the simulator what cameras give — the 4 canonical input views of the
initial state (and of the goal state in the regenerate transition), and the observation camera's
view of both states — and, to state the task in the twin's terms, the task joint's limits and its
initial and goal values. Everything else is predicted, by the env's transition
(:mod:`partrm_gym.envs.transitions`: ``"articulated"``, rigid parts along predicted joints, the default;
``"regenerate"``, PartRM as published).

Observations (``image``, ``goal``) are renders of the imagined current and goal states in the
observation camera. A drag that grasps no movable part moves nothing (``info["missed"]``, as in the twin).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from partrm_gym.articulation import ArticulatedState, GroupingConfig
from partrm_gym.envs.base import ArticulatedTaskEnv, Episode
from partrm_gym.envs.task import (
    JointReadout,
    Task,
    TaskTerms,
    drag_from_action,
    image_distance,
    reset_joint,
    sample_task,
)
from partrm_gym.envs.transitions import (
    TRANSITIONS,
    ArticulatedTransition,
    ModelStep,
    RegenerateTransition,
    ResetRequest,
    Transition,
)
from partrm_gym.errors import UsageError
from partrm_gym.gaussians import Gaussians, save_ply
from partrm_gym.model.segmenters import ClassicalSegmenter, SamSegmenter
from partrm_gym.model.world_model import WorldModel
from partrm_gym.photometric_fit import ViewFit
from partrm_gym.rendering import render_images, render_part_labels


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
        if segmenter not in ("classical", "sam"):
            raise UsageError(f"segmenter must be 'classical' or 'sam' (no simulator after reset), got {segmenter!r}")
        if transition not in TRANSITIONS:
            raise UsageError(f"transition={transition!r} is not valid; choose one of {list(TRANSITIONS)}")
        self.model = world_model or WorldModel.from_pretrained(model_path, device=device)
        if transition == ArticulatedTransition.name and not self.model.has_articulation:
            raise UsageError("transition='articulated' needs a world model with an articulation head (its "
                             "config.yaml has articulation_head: true); give one with model_path= or use "
                             "transition='regenerate'")
        self.transition: Transition = (
            ArticulatedTransition(self.model, grouping, ViewFit(steps=view_fit_steps), **self._inference_kwargs())
            if transition == ArticulatedTransition.name else
            RegenerateTransition(self.model, SamSegmenter(sam_checkpoint, device=device) if segmenter == "sam"
                                 else ClassicalSegmenter()))

    def _inference_kwargs(self) -> dict[str, Any]:
        """Extra arguments of the articulated transition (an env whose tasks state no terms infers them)."""
        return {}

    @property
    def task(self) -> Task | None:
        """The current episode's task (None before reset)."""
        return self.episode.task if self.episode is not None else None

    # -- the imagined state, as the transition holds it -----------------------------------------------------
    @property
    def gaussians(self) -> Gaussians | None:
        """The current imagined state, (1, N) Gaussians (None before reset)."""
        return self.transition.gaussians

    @property
    def state(self) -> ArticulatedState | None:
        """The articulated transition's imagined state: parts and joints (None in the regenerate transition)."""
        return self.transition.state

    @property
    def task_part(self) -> int | None:
        """The index in :attr:`state`'s joints of the task's part (None: none was found, or no parts)."""
        return self.transition.task_part

    # -- gymnasium API ------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        request = self.prepare_reset(seed=seed, options=options)
        return self.finish_reset(request, self.predict_resets([request])[0])

    # The three parts of a reset, so a vector env can batch the model call of all the envs it resets.
    def prepare_reset(self, *, seed: int | None = None, options: dict | None = None) -> ResetRequest:
        """Sample the task and take what the episode needs from the simulator (the only simulator access of the
        episode): the initial input views (and the goal's, when the transition reconstructs the goal), the camera's
        view of the initial and the goal state, and the task joint's terms."""
        self._start_reset(seed)
        task, scene = sample_task(self.cfg, self.np_random, reset_joint(options))
        with scene:
            scene.set_joint_states(task.goal)
            goal_image = scene.render(self.camera).rgb
            views = []
            if self.transition.needs_goal_views:
                views.append(np.stack([f.rgb for f in scene.render_views(self.model.input_cameras)]))
            scene.set_joint_states(task.initial)
            views.insert(0, np.stack([f.rgb for f in scene.render_views(self.model.input_cameras)]))
            image = scene.render(self.camera).rgb
            joint = scene.joints[task.joint]
            terms = TaskTerms(float(task.initial[task.joint]), float(task.goal[task.joint]),
                              (float(joint.lower), float(joint.upper)))
        return ResetRequest(task, np.stack(views), image, goal_image, terms, self.camera)

    def predict_resets(self, requests: list[ResetRequest]) -> list[Any]:
        """One batched model call for the reset requests of envs that share this env's model and transition."""
        return self.transition.predict(requests)

    def finish_reset(self, request: ResetRequest, prediction: Any) -> tuple[dict, dict]:
        """Start the episode from the reset request and its reconstruction (:meth:`predict_resets`)."""
        self.camera = request.camera
        inferred = self.transition.reset(request, prediction)
        distance = image_distance(self.transition.image, self.transition.goal_image)
        evaluation = self.transition.evaluate(self.cfg, distance, distance)
        self.episode = Episode(request.task, self.transition.goal_image, distance,
                               self.transition.progress_error(evaluation, distance))
        task = request.task
        return self._obs(), {"category": task.category, "object_seed": task.seed, "joint": task.joint,
                             "sim_image": request.image, "image_distance": distance, "missed": False,
                             **inferred, **evaluation}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        request = self.prepare_step(action)
        return self.finish_step(self.model.predict(*request) if request is not None else None)

    # The two halves of a step, so a vector env can batch the model call between them.
    def prepare_step(self, action: np.ndarray) -> ModelStep | None:
        """Apply the action's drag, or return the model call it needs (the regenerate transition: views
        (1, 4, H, W, 3), drags (1, 4, D, 4), mask (1, 4, D)); None when no network call is needed (a miss, or the
        articulated transition, which moves its part here)."""
        if self.episode is None or self.transition.gaussians is None:
            raise self._lifecycle_error()
        return self.transition.prepare_step(drag_from_action(self.cfg, action, self.transition.image), self.np_random)

    def finish_step(self, prediction: Gaussians | None = None) -> tuple[dict, float, bool, bool, dict]:
        """Take the model's prediction (if :meth:`prepare_step` asked for one), render the new imagined state
        (unchanged after a miss) and score it."""
        self.transition.finish_step(prediction)
        distance = image_distance(self.transition.image, self.episode.goal_image)
        evaluation = self.transition.evaluate(self.cfg, distance, self.episode.initial_distance)
        reward, terminated, truncated = self.episode.advance(
            self.cfg, distance, self.transition.progress_error(evaluation, distance), evaluation["is_success"])
        info = {"image_distance": distance, "missed": self.transition.missed, "joint": self.episode.task.joint,
                **evaluation}
        return self._obs(), reward, terminated, truncated, info

    def evaluate(self) -> dict[str, Any]:
        """Success and what the reward reads, from the transition (:meth:`Transition.evaluate`): the imagined task
        joint (the twin's rule) in the articulated transition; the image distance to the goal image in the
        regenerate transition, which has no joint."""
        if self.episode is None:
            raise RuntimeError("no imagined state: call reset() first")
        return self.transition.evaluate(self.cfg, self.episode.distance, self.episode.initial_distance)

    def joint_readout(self) -> JointReadout | None:
        """The imagined task joint (value, goal value, limits), or None where the transition has no joint
        (regenerate). The twin answers the same call with the true joint, so planners read either alike."""
        if self.episode is None:
            raise RuntimeError("no imagined state: call reset() first")
        return self.transition.readout()

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self.transition.gaussians is None:
            return None
        return self.transition.image.copy()

    def close(self) -> None:
        self.transition.close()
        self._closed = True

    # -- the imagined state from any camera -----------------------------------------------------------------
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
            return np.zeros(self.transition.image.shape[:2], bool)
        return self.part_labels()[0] == self.task_part

    def export_ply(self, path: str | Path) -> Path:
        if self.gaussians is None:
            raise RuntimeError("no imagined state: call reset() first")
        save_ply(path, self.gaussians[0:1])
        return Path(path)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"image": self.transition.image.copy(), "goal": self.episode.goal_image.copy()}
