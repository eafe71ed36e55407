"""How an imagined state moves: the two transitions of the world-model env, each one object.

A transition owns the imagined state of one episode, from the reset reconstruction to the last drag: it
predicts the reset state (one batched model call for any number of envs), starts the episode from it, applies a
drag, renders the observation and reads out the task joint. :class:`~partrm_gym.envs.world_model_env.PartRMEnv`
keeps the Gymnasium side (task sampling, spaces, reward, episode bookkeeping) and asks its transition for the rest.

* :class:`ArticulatedTransition` (default): at reset the model reconstructs the Gaussians once, labels each with its
  part and predicts each part's joint (:mod:`partrm_gym.articulation`); a drag moves the grasped part's Gaussians
  rigidly along its joint. No network call per step, and appearance cannot drift.
* :class:`RegenerateTransition` (PartRM as published): every drag is segmented, propagated into the 4 canonical
  views and all Gaussians are predicted anew from renders of the previous prediction. It has no joint to read out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from partrm_gym.articulation import ArticulatedState, GroupingConfig
from partrm_gym.articulation import solve_joint_value as solve_imagined_joint
from partrm_gym.cameras import Camera, canonical_rig
from partrm_gym.drags import to_pixels
from partrm_gym.envs.task import (
    JointReadout,
    Task,
    TaskConfig,
    TaskTerms,
    evaluate_joint,
    image_success,
)
from partrm_gym.envs.task_part import find_task_part, shape_task_part
from partrm_gym.gaussians import Gaussians
from partrm_gym.gt_splatter import splatter_from_rgbd
from partrm_gym.model.drag_propagation import drags_for_model, starts_on_surface
from partrm_gym.model.segmenters import Segmenter
from partrm_gym.model.world_model import WorldModel
from partrm_gym.photometric_fit import ViewFit, fit_to_view
from partrm_gym.rendering import CameraImages, render_images

if TYPE_CHECKING:
    from partrm_gym.envs.task_inference import TaskInference


@dataclass(frozen=True)
class ResetRequest:
    """What a reset gives the transition before the model reconstructs the scene: from the twin (the simulator's
    renders and the task joint's terms) or from an image-defined task folder (files, terms inferred)."""

    task: Task
    views: np.ndarray  # (S, 4, H, W, 3) uint8: the input views of the states to reconstruct (initial[, goal])
    image: np.ndarray  # (H, W, 3) uint8: the camera's view of the initial state (the first observation's truth)
    goal_image: np.ndarray  # (H, W, 3) uint8: the camera's view of the goal state (picks the task part)
    terms: TaskTerms | None  # the task joint's start, goal and limits; None: infer them from the images
    camera: Camera  # the observation camera of this episode
    view_depths: np.ndarray | None = None  # (4, H, W) float camera-z depth of the initial input views (inf: none)
    depths: tuple[np.ndarray, np.ndarray] | None = None  # the camera's depth of ``image`` and ``goal_image`` (H, W)


ModelStep = tuple[np.ndarray, np.ndarray, np.ndarray]  # views (1, 4, H, W, 3), drags (1, 4, D, 4), mask (1, 4, D)


class Transition(ABC):
    """The imagined state of one episode and how a drag changes it (see the module docstring)."""

    name: ClassVar[str]
    needs_goal_views: ClassVar[bool] = False  # the reset also reconstructs the goal state from its 4 input views

    def __init__(self, model: WorldModel) -> None:
        self.model = model
        self.camera: Camera | None = None
        self.gaussians: Gaussians | None = None  # the current imagined state, (1, N)
        self.image: np.ndarray | None = None  # its render in the camera: the observation, (H, W, 3) uint8
        self.depth: np.ndarray | None = None  # and its depth, (H, W) (inf where no surface is drawn)
        self.goal_image: np.ndarray | None = None

    @abstractmethod
    def predict(self, requests: list[ResetRequest]) -> list[Any]:
        """One batched model call for the reset requests of envs sharing this model: one prediction per request."""

    @abstractmethod
    def reset(self, request: ResetRequest, prediction: Any) -> dict[str, Any]:
        """Start the episode from ``request`` and its :meth:`predict`; returns what it inferred (for ``info``)."""

    @abstractmethod
    def prepare_step(self, drag: np.ndarray, rng: np.random.Generator) -> ModelStep | None:
        """Apply the drag (x0, y0, x1, y1) in [0, 1] of the observation, or return the model call it needs
        (:meth:`finish_step` takes its result). Sets :attr:`missed`."""

    def finish_step(self, prediction: Gaussians | None = None) -> None:
        """Take the model's prediction (if :meth:`prepare_step` asked for one) and render the new state."""
        if prediction is not None:
            self.gaussians = prediction
        if not self.missed:
            self.render_current()

    @abstractmethod
    def readout(self) -> JointReadout | None:
        """The imagined task joint (value, goal value, limits), or None when the state has no joints."""

    @abstractmethod
    def evaluate(self, cfg: TaskConfig, distance: float, initial_distance: float) -> dict[str, Any]:
        """Success and the quantities the reward reads (``distance``: the observation's to the goal image)."""

    @abstractmethod
    def progress_error(self, evaluation: dict[str, Any], distance: float) -> float:
        """What the dense reward's progress is measured on, from :meth:`evaluate`'s result and the observation's
        image distance to the goal image."""

    missed: bool = False
    state: ArticulatedState | None = None  # the parts and joints of the imagined state (None: the transition has none)
    task_part: int | None = None  # the index in ``state``'s joints of the task's part (None: none, or no parts)

    def render_current(self) -> CameraImages:
        """Render the current state in the camera as the observation (image and depth); returns the render."""
        view = render_images(self.gaussians, [self.camera])
        self.image, self.depth = view.rgb[0], view.depth[0]
        return view

    def close(self) -> None:
        self.gaussians = None


class ArticulatedTransition(Transition):
    """Rigid parts along predicted joints (see the module docstring and docs/articulation.md).

    At reset, with ``view_fit`` steps > 0, gradient steps fit the reconstruction's positions, colours, opacities and
    sizes to the camera's view of the initial state (:func:`~partrm_gym.photometric_fit.fit_to_view`). The task part
    is the predicted part whose motion from the initial to the goal joint value changes the pixels that change
    between the camera's views of the initial and the goal state (:func:`~partrm_gym.envs.task_part.find_task_part`),
    carved to what the camera sees change (:func:`~partrm_gym.envs.task_part.shape_task_part`). Where the task's
    terms are not given (an image-defined task), the part and its goal value are searched together
    (:mod:`partrm_gym.envs.task_inference`). A step lifts the drag start from the imagined depth, finds the part
    under it and solves the joint value whose motion carries that point closest to the drag end (the twin's rule
    on the true geometry), clamped to the limits; that part's Gaussians move rigidly, nothing else changes.
    """

    name = "articulated"

    def __init__(self, model: WorldModel, grouping: GroupingConfig | None = None, view_fit: ViewFit | None = None,
                 inference: TaskInference | None = None) -> None:
        super().__init__(model)
        self.grouping = grouping or GroupingConfig()
        self.view_fit = view_fit or ViewFit(steps=0)
        self.inference = inference  # how an image-defined task's part, goal and success are inferred
        self.state: ArticulatedState | None = None
        self.task_part: int | None = None  # the state's part that is the task joint (None: none was found)
        self.terms: TaskTerms | None = None  # the task joint's terms (stated, or inferred at reset)

    def predict(self, requests: list[ResetRequest]) -> list[ArticulatedState]:
        """The articulated reconstruction of each request's initial views, at most two batched model calls: where a
        request has its input views' depth, the geometry comes from the cameras (:func:`depth_geometry`) and the
        model gives the part labels and joints."""
        out: list[ArticulatedState | None] = [None] * len(requests)
        for with_depth in (False, True):
            idx = [i for i, r in enumerate(requests) if (r.view_depths is not None) == with_depth]
            if not idx:
                continue
            views = np.concatenate([requests[i].views for i in idx])
            geometry = np.stack([depth_geometry(requests[i], self.model) for i in idx]) if with_depth else None
            for i, state in zip(idx, self.model.predict_articulated(views, self.grouping, geometry=geometry)):
                out[i] = state
        return out

    def reset(self, request: ResetRequest, prediction: ArticulatedState) -> dict[str, Any]:
        self.camera = request.camera
        self.state = prediction  # this env's own: the fit replaces its reconstruction in place
        self.state.base = fit_to_view(self.state.base, [self.camera], request.image[None], self.view_fit)
        # the first observation's render also serves finding and shaping the task part: they change part labels,
        # never a Gaussian, so it stays the render of the state
        view = self.render_current()
        inferred: dict[str, Any] = {}
        if request.terms is not None:
            self.terms = request.terms
            self.task_part = find_task_part(self.state, self.camera, request.image, request.goal_image,
                                            self.terms.start, self.terms.goal, self.terms.limits, current_view=view)
        else:
            if self.inference is None:
                raise ValueError("this reset states no task terms and the transition has no TaskInference")
            self.task_part, self.terms, inferred = self.inference.infer(self.state, self.camera, request.image,
                                                                        request.goal_image, view, request.depths)
        shape_task_part(self.state, self.task_part, self.camera, request.image, request.goal_image, self.terms.goal,
                        current_view=view)
        self.goal_image = self._goal_of_state(request.goal_image)
        return inferred

    def render_current(self) -> CameraImages:
        self.gaussians = self.state.gaussians()
        return super().render_current()

    def prepare_step(self, drag: np.ndarray, rng: np.random.Generator) -> None:
        """Articulated step: the part under the drag start follows the drag end. A miss (as in the twin) when the
        drag starts off the object or on its static body."""
        grasped = self.state.grasp(self.gaussians, self.depth, self.camera, to_pixels(drag[:2], self.camera))
        self.missed = grasped is None
        if grasped is not None:
            part, point = grasped
            target = to_pixels(drag[2:], self.camera)
            self.state.set_value(part, solve_imagined_joint(self.state.joints[part], point, target, self.camera))
        return None

    def readout(self) -> JointReadout | None:
        value = self.state.joints[self.task_part].value if self.task_part is not None else self.terms.start
        return JointReadout(value, self.terms.goal, *self.terms.limits)

    def evaluate(self, cfg: TaskConfig, distance: float, initial_distance: float) -> dict[str, Any]:
        """From the imagined task joint (:func:`~partrm_gym.envs.task.evaluate_joint`, the twin's rule)."""
        return evaluate_joint(cfg, self.readout())

    def progress_error(self, evaluation: dict[str, Any], distance: float) -> float:
        """The joint error |fraction - goal fraction|, as in the twin."""
        return float(evaluation["joint_error"])

    def close(self) -> None:
        super().close()
        self.state = None

    def _goal_of_state(self, camera_goal: np.ndarray) -> np.ndarray:
        """The goal observation: the imagined state with the task part at its goal value. Like the twin's goal image,
        it is what the observation shows exactly when the task is solved, so image, reward and success agree (the
        goal's own reconstruction differs from the moved reset reconstruction everywhere by reconstruction noise,
        which a policy reading pixels took for a difference to fix). Without a task part, the camera's view of the
        goal (``camera_goal``)."""
        if self.task_part is None:
            return camera_goal
        goal_state = self.state.copy()
        goal_state.set_value(self.task_part, self.terms.goal)
        return render_images(goal_state.gaussians(), [self.camera]).rgb[0]


class RegenerateTransition(Transition):
    """PartRM as published: every step segments the grasped part in the imagined observation, propagates the drag
    into the 4 canonical views and predicts all Gaussians anew from renders of the previous prediction (the first
    step from the reset's input views). It drifts over several steps (docs/experiment.md). Its goal image is the
    goal state's reconstruction, and success is the image distance to it (it has no joint)."""

    name = "regenerate"
    needs_goal_views = True

    def __init__(self, model: WorldModel, segmenter: Segmenter) -> None:
        super().__init__(model)
        self.segmenter = segmenter
        self._views: np.ndarray | None = None  # the model's next input views, when they are not renders

    def predict(self, requests: list[ResetRequest]) -> list[tuple[Gaussians, Gaussians]]:
        views = np.concatenate([r.views for r in requests])  # (2 R, 4, H, W, 3): initial, goal per request
        recon = self.model.predict(views)
        return [(recon[2 * i:2 * i + 1], recon[2 * i + 1:2 * i + 2]) for i in range(len(requests))]

    def reset(self, request: ResetRequest, prediction: tuple[Gaussians, Gaussians]) -> dict[str, Any]:
        self.camera = request.camera
        self.gaussians, goal = prediction
        self.goal_image = render_images(goal, [self.camera]).rgb[0]
        self._views = request.views[:1]  # the first step uses the reset's input views
        self.render_current()
        return {}

    def prepare_step(self, drag: np.ndarray, rng: np.random.Generator) -> ModelStep | None:
        """Segment in the imagined observation, propagate, transfer to the 4 views; the model call it needs, or None
        after a miss (the drag starts off the imagined surface, or its mask is empty)."""
        D = self.model.max_drags
        if not starts_on_surface(drag, self.camera, self.depth):  # a miss costs no rendering: nothing changes
            self.missed = True
            return None
        view_rgb, view_depth = render_images(self.gaussians, self.model.input_cameras)
        if self._views is None:
            self._views = view_rgb[None]
        drags, mask = drags_for_model(drag, self.image, self.camera, self.depth, self.segmenter,
                                      self.model.input_cameras, list(view_depth), D, rng)
        self.missed = not mask.any()
        if self.missed:
            return None
        views, self._views = self._views, None
        return views, drags[None], mask[None]

    def readout(self) -> None:
        return None

    def evaluate(self, cfg: TaskConfig, distance: float, initial_distance: float) -> dict[str, Any]:
        """``is_success`` from the image distance to the goal image (:func:`~partrm_gym.envs.task.image_success`)."""
        return {"is_success": image_success(cfg, distance, initial_distance)}

    def progress_error(self, evaluation: dict[str, Any], distance: float) -> float:
        """The image distance to the goal image: there is no joint to measure."""
        return float(distance)


TRANSITIONS: dict[str, type[Transition]] = {t.name: t for t in (ArticulatedTransition, RegenerateTransition)}


def depth_geometry(request: ResetRequest, model: WorldModel) -> np.ndarray:
    """The initial state's geometry from its input views and their depth (the GT-splatter routine,
    :func:`~partrm_gym.gt_splatter.splatter_from_rgbd`), at the model's output size: (4, 14, h, w)."""
    views = request.views[0]
    cameras = canonical_rig(views.shape[1], model.rig)
    return splatter_from_rgbd(views, request.view_depths, cameras, model.output_size)
