"""What the twin states and images do not: an image-defined task's part, goal and success, inferred.

An environment made from images alone (:class:`~partrm_gym.envs.image_env.PartRMImagesEnv`) knows the camera's view
of the initial and of the goal state, nothing else: not which part the task moves, not its joint values, not its
limits. :class:`TaskInference` infers them at reset from the imagined articulated state and the two views.

**The task part and its goal value, searched together.** Each predicted part is moved by each candidate joint
displacement δ (both ways along the axis the head predicted: the axis keeps its sign, the way the joint opens, and a
prismatic part closes at most as far as it sticks out of the body), and each (part, δ) is scored by how well it
explains what changes between the two views; the best wins and δ is refined on a finer grid. Changes are compared,
not a render with the photo: a render of the moved state lacks every surface the reset views did not see (a drawer's
sides) and has the reconstruction's colours and blur, which bias a photometric match. Values are relative to the
start (0): the absolute start is unknowable from images.

* **RGB**: the sum of two shares in [0, 1]. (a) The IoU of the pixels the move changes in the imagined state (drawn
  as point splats: each visible Gaussian centre paints its colour on 3 × 3 pixels, nearest first, so the whole search
  costs about as much as one render) with the pixels that change between the two views. (b) The share of the changed
  pixels of the first view that the move carries, lifted by the imagined depth, onto a changed pixel of the goal view
  of their own colour (photo to photo, so colours need not agree with the reconstruction's).
* **RGB-D** (the camera's depth of both views): the share of the changed pixels of the first view, lifted by the
  camera's own depth and moved, that land within a pixel's footprint of the goal view's changed pixels lifted by its
  depth: a 1-D registration of the two views' moving surfaces in metric 3D, which the reconstruction's blur cannot
  bias. Because a wrong motion cannot register the surfaces, RGB-D also tries each part the head calls hinged as a
  drawer sliding along the object frame's front (+x, where parts open: docs/conventions.md) and keeps whichever
  joint explains more; with RGB alone the change masks are too loose to choose between motions (measured: real doors
  taken for drawers), so the head's joint type stands.

**Success without known limits.** The twin counts a task solved when the joint is within ``joint_success_tolerance``
(0.1) of its range from the goal, and its goals lie at least ``min_goal_change`` (0.4) of the range from the start;
at that smallest goal change the rule reads |q - q_goal| <= τ |q_goal - q_start| with τ = 0.1 / 0.4 = 0.25. Without
limits that is the rule: its range is the implied range R = |Δ| / ``min_goal_change`` (Δ = goal - start), on which
``joint_fraction`` and ``goal_fraction`` are defined, so success is the twin's test
|fraction - goal fraction| <= ``joint_success_tolerance`` on it. The range starts at the more closed of start and goal
(the smaller value along the predicted axis): a **one-sided clamp** there, so a drawer cannot be pushed into the body
(nor a door through its frame); on the far side the joint may move past the range (to the head's default range if
that is larger), where the fraction exceeds 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from partrm_gym.articulation import (
    DEFAULT_PRISMATIC_RANGE,
    DEFAULT_REVOLUTE_RANGE,
    MIN_VISIBLE_OPACITY,
    ArticulatedState,
    PartJoint,
    nearest_surface_labels,
)
from partrm_gym.cameras import Camera
from partrm_gym.envs.task import TaskConfig, TaskTerms
from partrm_gym.envs.task_part import CHANGE_THRESHOLD, changed_pixels
from partrm_gym.rendering import CameraImages, render_images

PART_REACH_PX = 3  # a camera point belongs to the part of the nearest imagined Gaussian within this many pixels' width
SPLAT_GROW_PX = 1  # a Gaussian centre paints the pixels this far around its own (point splats leave gaps otherwise)
DEPTH_MARGIN = 0.01  # world units: the scale of depth ties between point splats


@dataclass(frozen=True)
class InferenceConfig:
    """The search grids of :class:`TaskInference` (world units for prismatic joints, radians for revolute ones)."""

    prismatic_steps: tuple[float, float, int] = (0.01, 0.45, 45)  # |δ| from, to, samples (each sign)
    revolute_steps: tuple[float, float, int] = (np.radians(3.0), np.radians(150.0), 50)
    refine_samples: int = 11  # a finer grid between the best coarse value's neighbours
    min_change_pixels: int = 4  # fewer changed pixels between the two views: no task can be inferred
    drawer_hypothesis: bool = True  # RGB-D: also try each hinged part as a drawer along the front (+x)


FRONT = np.array([1.0, 0.0, 0.0])  # the object frame's front, where parts open (docs/conventions.md)


@dataclass
class Inferred:
    """What :meth:`TaskInference.infer` concluded, reported in ``info`` at reset (keys of :meth:`info`)."""

    part: int | None
    joint_type: str | None
    goal: float  # relative to the start
    score: float  # the best (part, δ)'s score (RGB: in [0, 2]; RGB-D: in [0, 1]; higher explains more of the change)
    changed_pixels: int  # pixels that change between the two views
    scores: list[tuple[int, str, float, float]] = field(default_factory=list)  # (part, joint type, δ, score): the
    # best of each part's joint hypotheses
    joint: PartJoint | None = None  # the winning joint (the head's, or the drawer hypothesis), before its terms

    def info(self) -> dict[str, Any]:
        return {"inferred_task_part": self.part, "inferred_joint_type": self.joint_type,
                "inferred_goal_value": self.goal, "inference_score": self.score,
                "inference_changed_pixels": self.changed_pixels}


class TaskInference:
    """Infers an image-defined task's part, goal and limits at reset (see the module docstring)."""

    def __init__(self, task_cfg: TaskConfig, cfg: InferenceConfig | None = None) -> None:
        self.task_cfg = task_cfg
        self.cfg = cfg or InferenceConfig()

    def infer(self, state: ArticulatedState, camera: Camera, image: np.ndarray, goal_image: np.ndarray,
              current_view: CameraImages | None = None, depths: tuple[np.ndarray, np.ndarray] | None = None
              ) -> tuple[int | None, TaskTerms, dict[str, Any]]:
        """(task part, its terms, ``info`` entries) for ``state`` seen by ``camera``, whose views of the initial and
        goal states are ``image`` and ``goal_image`` (H, W, 3) uint8 (``depths``: the camera's depth of both, for the
        RGB-D score). The part's joint takes the terms (limits and start) in place, as
        :func:`~partrm_gym.envs.task_part.find_task_part` does for stated terms."""
        inferred = self.search(state, camera, image, goal_image, current_view, depths)
        terms = self.implied_terms(inferred.goal)
        if inferred.part is not None:
            state.joints[inferred.part] = joint = inferred.joint  # the head's own, or the drawer hypothesis
            far = max(terms.limits[1] - terms.limits[0],
                      (DEFAULT_REVOLUTE_RANGE if joint.type == "revolute" else DEFAULT_PRISMATIC_RANGE)[1])
            joint.lower, joint.upper = terms.limits[0], terms.limits[0] + far  # one-sided: the far side stays open
            joint.start = joint.value = terms.start
        return inferred.part, terms, inferred.info()

    def implied_terms(self, goal: float) -> TaskTerms:
        """Start 0, the inferred ``goal`` and the range the success rule implies (module docstring)."""
        change = abs(goal)
        if change < 1e-9:  # nothing was found to move: a range no motion can solve (the joint stays at the start)
            return TaskTerms(0.0, 1.0, (0.0, 1.0 / self.task_cfg.min_goal_change), inferred=True)
        closed = min(0.0, goal)
        return TaskTerms(0.0, float(goal), (closed, closed + change / self.task_cfg.min_goal_change), inferred=True)

    def search(self, state: ArticulatedState, camera: Camera, image: np.ndarray, goal_image: np.ndarray,
               current_view: CameraImages | None = None, depths: tuple[np.ndarray, np.ndarray] | None = None
               ) -> Inferred:
        """The (part, joint, δ) that best explains the change from ``image`` to ``goal_image`` (H, W, 3) uint8 in
        ``camera`` (module docstring); ``depths``: the camera's depth of both views (H, W), inf where none (RGB-D)."""
        wanted = changed_pixels(image, goal_image)
        if depths is not None:
            wanted |= depth_changed(*depths, pixel_footprint(camera))
        count = int(wanted.sum())
        if not state.joints or count < self.cfg.min_change_pixels:
            return Inferred(None, None, 0.0, 0.0, count)
        if depths is not None:
            score = RegistrationScore(state, camera, depths, wanted)
        else:
            view = current_view if current_view is not None else render_images(state.gaussians(), [camera])
            score = ChangeScore(state, camera, image, goal_image, wanted, view.depth[0])
        best: tuple[tuple[float, float, int, float], PartJoint] | None = None  # ((-score, |δ|, part, δ), joint)
        scores = []
        for part, head in enumerate(state.joints):
            for joint in self.hypotheses(head, metric=depths is not None):
                delta, value = self._best_move(state, camera, score, part, joint)
                scores.append((part, joint.type, delta, value))
                key = (-value, abs(delta), part, delta)
                if best is None or key < best[0]:  # a tie keeps the earlier: the head's joint before a hypothesis
                    best = (key, joint)
        (negative_score, _, part, delta), joint = best
        if -negative_score <= 0.0:  # no move of any part explains a single changed pixel: no task, rather than a guess
            return Inferred(None, None, 0.0, 0.0, count, scores)
        return Inferred(part, joint.type, delta, -negative_score, count, scores, joint)

    def hypotheses(self, head: PartJoint, metric: bool) -> list[PartJoint]:
        """The joints a part is tried with: the head's, and with a metric score (RGB-D) a hinged part also as a
        drawer along the front (module docstring)."""
        if not (metric and self.cfg.drawer_hypothesis and head.type == "revolute"):
            return [head]
        return [head, PartJoint("prismatic", FRONT, head.pivot, head.lower, head.upper, head.start, head.value)]

    def _best_move(self, state: ArticulatedState, camera: Camera, score: ChangeScore | RegistrationScore, part: int,
                   joint: PartJoint) -> tuple[float, float]:
        """(δ, score) of the best displacement of ``part`` along ``joint``: a coarse grid both ways, then a finer one
        around its best."""
        low, high, n = self.cfg.revolute_steps if joint.type == "revolute" else self.cfg.prismatic_steps
        magnitudes = np.linspace(low, high, n)
        deltas = np.concatenate([-magnitudes[::-1], magnitudes])
        if joint.type == "prismatic":  # a drawer closes at most as far as it sticks out
            deltas = deltas[deltas >= -(protrusion(state, part, joint.axis) + pixel_footprint(camera))]
        values = score(joint, part, deltas)
        k = int(np.argmax(values))
        step = magnitudes[1] - magnitudes[0] if n > 1 else low
        fine = np.linspace(deltas[k] - step, deltas[k] + step, self.cfg.refine_samples)
        fine = fine[np.abs(fine) >= low / 2]  # never zero: a task moves its part
        fine_values = score(joint, part, fine)
        j = int(np.argmax(fine_values))
        if fine_values[j] > values[k]:
            return float(fine[j]), float(fine_values[j])
        return float(deltas[k]), float(values[k])


def pixel_footprint(camera: Camera) -> float:
    """World units one pixel spans at the object's centre (the origin): the scale of a registration's tolerance."""
    distance = float(np.linalg.norm(camera.center))
    return distance / float(camera.K[0, 0])


def depth_changed(before: np.ndarray, after: np.ndarray, tolerance: float) -> np.ndarray:
    """(H, W) bool: where two depth images of one camera differ by more than ``tolerance`` (or only one has depth)."""
    a, b = np.isfinite(before), np.isfinite(after)
    return (a != b) | (a & b & (np.abs(np.where(a, before, 0.0) - np.where(b, after, 0.0)) > tolerance))


def protrusion(state: ArticulatedState, part: int, axis: np.ndarray) -> float:
    """How far ``part`` sticks out of the rest of the state along ``axis`` (>= 0, their 98th percentiles compared):
    how far a prismatic part can close along it."""
    g = state.gaussians()
    visible = (g.opacities[0] > MIN_VISIBLE_OPACITY).cpu().numpy()
    along = g.means[0].detach().cpu().numpy().astype(np.float64) @ axis
    labels = state.labels.cpu().numpy()
    on, rest = along[visible & (labels == part)], along[visible & (labels != part)]
    if len(on) == 0 or len(rest) == 0:
        return 0.0
    return max(0.0, float(np.quantile(on, 0.98) - np.quantile(rest, 0.98)))


def _lift(camera: Camera, depth: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixels of ``mask`` with finite ``depth``: their world points (n, 3), rows and columns."""
    rows, cols = np.nonzero(mask & np.isfinite(depth))
    uv = np.stack([cols + 0.5, rows + 0.5], axis=1)
    return camera.backproject(uv, depth[rows, cols].astype(np.float64)), rows, cols


def part_of_points(state: ArticulatedState, points: np.ndarray, reach: float) -> np.ndarray:
    """(n,) the part label (or STATIC) of each world point: the label of the nearest visible Gaussian within ``reach``
    (the rule the oracle labels a reconstruction by, here turned round: the imagined labels carried to the camera's
    points). A part can only explain the change of the points on it."""
    g = state.gaussians()
    visible = g.opacities[0] > MIN_VISIBLE_OPACITY
    means = g.means[0][visible].detach().cpu().float()
    return nearest_surface_labels(torch.as_tensor(points, dtype=torch.float32), means,
                                  state.labels[visible].cpu(), max_distance=reach).numpy()


class ChangeScore:
    """The RGB score of a (part, δ): change IoU of the imagined move plus the share of the first view's changed pixels
    the move carries onto changed pixels of their own colour in the goal view (module docstring)."""

    def __init__(self, state: ArticulatedState, camera: Camera, image: np.ndarray, goal_image: np.ndarray,
                 wanted: np.ndarray, depth: np.ndarray) -> None:
        self.camera, self.wanted, self.goal = camera, wanted, goal_image.astype(np.int16)
        self.splats = PointSplats(state, camera)
        self.points, rows, cols = _lift(camera, depth, wanted)
        self.labels = part_of_points(state, self.points, PART_REACH_PX * pixel_footprint(camera))
        self.colors = image[rows, cols].astype(np.int16)

    def __call__(self, joint: PartJoint, part: int, deltas: np.ndarray) -> np.ndarray:
        """(K,) scores of moving ``part`` by each of ``deltas`` along ``joint``."""
        iou = self.splats.change_iou(joint, part, deltas, self.wanted)
        if len(self.points) == 0:
            return iou
        cam = self.camera
        uv, z = cam.project(joint.move_points(self.points, np.asarray(deltas, dtype=np.float64)))
        inside = (z > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < cam.width) & (uv[..., 1] >= 0) & (uv[..., 1] < cam.height)
        rows, cols = cam.pixel_index(np.nan_to_num(uv))
        same = np.abs(self.goal[rows, cols] - self.colors[None]).max(-1) <= CHANGE_THRESHOLD
        return iou + (inside & same & self.wanted[rows, cols] & (self.labels == part)[None]).mean(1)


class RegistrationScore:
    """The RGB-D score of a (part, δ): the share of the first view's changed surface points that the move brings within
    a pixel's footprint of the goal view's changed surface points (module docstring)."""

    def __init__(self, state: ArticulatedState, camera: Camera, depths: tuple[np.ndarray, np.ndarray],
                 wanted: np.ndarray) -> None:
        self.before = _lift(camera, depths[0], wanted)[0]
        self.after = torch.as_tensor(_lift(camera, depths[1], wanted)[0])
        self.tolerance = pixel_footprint(camera)
        self.labels = part_of_points(state, self.before, PART_REACH_PX * self.tolerance)

    def __call__(self, joint: PartJoint, part: int, deltas: np.ndarray) -> np.ndarray:
        """(K,) scores of moving ``part`` by each of ``deltas`` along ``joint``."""
        on = self.labels == part
        if not on.any() or len(self.after) == 0:
            return np.zeros(len(deltas))
        moved = torch.as_tensor(joint.move_points(self.before[on], np.asarray(deltas, dtype=np.float64)))
        nearest = torch.cdist(moved, self.after[None].expand(len(deltas), -1, -1)).min(-1).values
        return (nearest <= self.tolerance).double().sum(1).numpy() / len(self.before)


class PointSplats:
    """The imagined state drawn as point splats in one camera: each visible Gaussian centre paints its colour on the
    3 × 3 pixels around it, the nearest one winning (a z-buffer). A few thousand points per image, any number of
    part displacements in one batch: the change masks of the search at a fraction of a render's cost."""

    def __init__(self, state: ArticulatedState, camera: Camera) -> None:
        g = state.gaussians()
        visible = (g.opacities[0] > MIN_VISIBLE_OPACITY).cpu().numpy()
        self.camera = camera
        self.means = g.means[0].detach().cpu().numpy().astype(np.float64)
        self.colors = g.colors[0].detach().cpu().numpy().astype(np.float64)
        self.labels = state.labels.cpu().numpy()
        self.visible = visible

    def _splat(self, points: np.ndarray, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Point sets (K, n, 3) with colours (n, 3) -> per image (K, H·W) the nearest depth (inf: none) and its
        colour (K, H·W, 3)."""
        cam = self.camera
        H, W = cam.height, cam.width
        K, n = points.shape[:2]
        uv, z = cam.project(points)
        offsets = np.array([(dx, dy) for dy in range(-SPLAT_GROW_PX, SPLAT_GROW_PX + 1)
                            for dx in range(-SPLAT_GROW_PX, SPLAT_GROW_PX + 1)], dtype=np.float64)
        uv = np.nan_to_num(uv, nan=-1e6, posinf=-1e6, neginf=-1e6)[:, :, None, :] + offsets  # (K, n, O, 2)
        # a point's own pixel beats its neighbours' at equal depth: the neighbours' copies sit a hair behind
        zz = z[:, :, None] + DEPTH_MARGIN * 0.1 * (np.abs(offsets).sum(-1) > 0)
        ok = (zz > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H)
        rows, cols = np.floor(uv[..., 1]).astype(np.int64), np.floor(uv[..., 0]).astype(np.int64)
        flat = (rows * W + cols + np.arange(K)[:, None, None] * H * W)[ok]
        depth = torch.full((K * H * W,), np.inf, dtype=torch.float64)
        zt = torch.as_tensor(zz[ok])
        depth.scatter_reduce_(0, torch.as_tensor(flat), zt, reduce="amin")
        winner = zt == depth[torch.as_tensor(flat)]  # the points drawn at their pixel
        color = torch.zeros((K * H * W, 3), dtype=torch.float64)
        point = np.broadcast_to(np.arange(n)[None, :, None], ok.shape)[ok]
        color[torch.as_tensor(flat)[winner]] = torch.as_tensor(colors[point[winner.numpy()]])
        return depth.view(K, H * W).numpy(), color.view(K, H * W, 3).numpy()

    def images(self, joint: PartJoint, part: int, deltas: np.ndarray) -> np.ndarray:
        """(K, H·W, 3) colours in [0, 1] of the state with ``part`` moved along ``joint`` by each of ``deltas`` (K,)
        (white where nothing is drawn)."""
        on_part = self.visible & (self.labels == part)
        rest = self.visible & (self.labels != part)
        rest_depth, rest_color = self._splat(self.means[rest][None], self.colors[rest])
        moved = joint.move_points(self.means[on_part], np.asarray(deltas, dtype=np.float64))
        part_depth, part_color = self._splat(moved.reshape(len(deltas), -1, 3), self.colors[on_part])
        front = part_depth < rest_depth
        out = np.where(front[..., None], part_color, rest_color)
        return np.where(np.isfinite(np.minimum(part_depth, rest_depth))[..., None], out, 1.0)

    def change_iou(self, joint: PartJoint, part: int, deltas: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """(K,) IoU of the pixels each displacement of ``part`` changes (colour, as
        :func:`~partrm_gym.envs.task_part.changed_pixels` decides between two camera images) with ``wanted``
        (H, W) bool."""
        images = self.images(joint, part, np.concatenate([[0.0], np.asarray(deltas, dtype=np.float64)]))
        change = np.abs(images[1:] - images[:1]).max(-1) * 255.0 > CHANGE_THRESHOLD
        target = wanted.reshape(-1)[None]
        union = (change | target).sum(1)
        return np.where(union > 0, (change & target).sum(1) / np.maximum(union, 1), 0.0)
