"""Which part of an imagined articulated state is the task's, and what of it the camera sees move.

The articulation head finds movable surfaces but often merges neighbouring parts of one kind (stacked drawers) into
one part. The camera's views of the initial and the goal state show, sharply, which pixels the task part changes:
:func:`find_task_part` picks the predicted part whose motion makes that change; :func:`shape_task_part` then keeps in
it only the Gaussians that project into those pixels (:func:`carve_task_part`) and gives it the body Gaussians drawn
on its border in the pixels it leaves (:func:`claim_task_border`). The world-model env calls both once per episode
at reset, the CEM planner at every step (against its observation and goal image).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from partrm_gym.articulation import MIN_VISIBLE_OPACITY, STATIC, ArticulatedState
from partrm_gym.cameras import Camera
from partrm_gym.rendering import CameraImages, render_images, render_part_labels

CHANGE_THRESHOLD = 20  # uint8 levels (max over RGB) from which a pixel counts as changed between two views


def changed_pixels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) bool: where two (H, W, 3) uint8 views of one camera differ by more than ``CHANGE_THRESHOLD``."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(-1) > CHANGE_THRESHOLD


def grow_mask(mask: np.ndarray, px_at_64: int, width: int) -> np.ndarray:
    """(H, W) bool ``mask`` grown by ``px_at_64`` pixels at a width of 64, scaled to ``width`` (at least 1 px)."""
    radius = max(1, round(px_at_64 * width / 64))
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def find_task_part(state: ArticulatedState, camera: Camera, image: np.ndarray, goal_image: np.ndarray,
                   start_value: float, goal_value: float, limits: tuple[float, float],
                   rule: str = "change", current_view: CameraImages | None = None) -> int | None:
    """The part of ``state`` that is the task joint: the part whose motion from ``start_value`` to ``goal_value``
    changes, in ``camera``, the pixels that change from ``image`` to ``goal_image`` (both (H, W, 3) uint8 views of
    the current and the goal state): the best intersection-over-union of the two change masks, ties broken by the
    moved render's distance to ``goal_image`` (``rule="change"``); or, with ``rule="goal_image"``, the part whose
    moved render is nearest ``goal_image`` (mean absolute difference). That part's joint takes the task's
    ``limits`` and ``start_value`` as its start and current value (``state`` is changed in place). None when the
    state has no part. ``current_view``: ``render_images(state.gaussians(), [camera])`` if the caller has it
    already (it is rendered here otherwise).

    The world-model env calls it at reset with ``"change"`` (the camera's views of the initial and goal states):
    comparing *changes* makes the rule indifferent to how the reconstruction's colours and blur differ from the
    camera's, so the goal needs no reconstruction of its own (half the model time of a reset), and on multi-part
    states of the train split it picked a part overlapping the twin's task part more often than matching a goal
    reconstruction did. The planner calls it at every step with ``"goal_image"`` (its observation and the goal
    image): near the goal the change between them is a few noisy pixels, and its twin success on the train
    split was as high or higher with ``"goal_image"`` (docs/articulation.md).

    The axis keeps the sign the head predicted (the way the joint value grows). Fitting the sign to the goal image
    as well was measured worse: a drawer pushed in looks much like a closed one, while one pulled out shows the
    sides the reset views never saw (empty), so the image preferred the wrong sign for 9 of 20 held-out drawers,
    the head for 1 of 20 (docs/articulation.md).
    """
    if rule not in ("change", "goal_image"):
        raise ValueError(f"find_task_part: rule must be 'change' or 'goal_image', not {rule!r}")
    if not state.joints:
        return None
    best = 0  # a single part needs no scoring (the common case: two renders saved per reset)
    if len(state.joints) > 1:
        scores = _part_scores(state, camera, image, goal_image, goal_value - start_value, rule, current_view)
        best = min(range(len(scores)), key=scores.__getitem__)
    joint = state.joints[best]
    joint.lower, joint.upper = limits
    joint.start = joint.value = start_value
    return best


def _part_scores(state: ArticulatedState, camera: Camera, image: np.ndarray, goal_image: np.ndarray, delta: float,
                 rule: str, current_view: CameraImages | None) -> list[tuple[float, float]]:
    """:func:`find_task_part`'s score per part of ``state``, smaller is better: (−IoU of the change its motion by
    ``delta`` makes with the change from ``image`` to ``goal_image`` (0 unless ``rule="change"``), mean absolute
    difference of the moved render to ``goal_image``)."""
    if rule == "change":
        wanted = changed_pixels(image, goal_image)
        view = current_view if current_view is not None else render_images(state.gaussians(), [camera])
        unmoved = view.rgb[0]
    scores = []
    for k in range(len(state.joints)):
        trial = state.copy()
        trial.joints[k].lower, trial.joints[k].upper = -np.inf, np.inf
        trial.joints[k].value = trial.joints[k].start + delta
        moved = render_images(trial.gaussians(), [camera]).rgb[0]
        iou = 0.0
        if rule == "change":
            change = changed_pixels(moved, unmoved)
            union = np.logical_or(change, wanted).sum()
            iou = np.logical_and(change, wanted).sum() / union if union else 0.0
        scores.append((-iou, float(np.abs(moved.astype(np.float32) - goal_image).mean())))
    return scores


TASK_CHANGE_DILATION_PX = 2  # at 64² (scales with the width): the change mask grows by this before carving
TASK_CARVE_KEPT = (0.1, 0.98)  # carve only when this share (min, max) of the task part's Gaussians lies in the mask


def carve_task_part(state: ArticulatedState, part: int | None, camera: Camera, image: np.ndarray,
                    goal_image: np.ndarray, goal_value: float) -> int | None:
    """Keep in the task ``part`` only the Gaussians whose centre projects, at the part's start or at
    ``goal_value``, into the pixels that change from ``image`` to ``goal_image`` (the camera's (H, W, 3) uint8 views
    of the initial and goal states, the mask grown by ``TASK_CHANGE_DILATION_PX``); the others become a part of
    their own with the same joint (:meth:`~partrm_gym.articulation.ArticulatedState.split_part`). Returns that new
    part, or None when nothing was carved (no part, fewer than 2 Gaussians, or a kept share outside
    ``TASK_CARVE_KEPT``). Call it after :func:`find_task_part` and before rendering the goal.

    Why: the head often labels neighbouring parts of one kind as one part (stacked drawers), so in imagination a
    drag on any of them moved the task joint and imagination was kinder than the twin. The camera's two views show
    which pixels the task part changes, more sharply than the reconstruction can (docs/articulation.md).
    """
    if part is None:
        return None
    members = state.part_mask(part)
    if int(members.sum()) < 2:
        return None
    changed = grow_mask(changed_pixels(image, goal_image), TASK_CHANGE_DILATION_PX, camera.width)
    joint = state.joints[part]
    start = state.base.means[0][members].detach().cpu().numpy().astype(np.float64)  # once per episode
    kept = np.zeros(len(start), bool)
    for points in (start, joint.move_points(start, goal_value - joint.start)):
        kept |= changed[camera.pixel_index(np.nan_to_num(camera.project(points)[0]))]
    if not TASK_CARVE_KEPT[0] <= kept.mean() <= TASK_CARVE_KEPT[1]:
        return None
    keep = torch.ones_like(members)
    keep[members] = torch.as_tensor(kept, device=members.device)
    return state.split_part(part, keep)


TASK_BORDER_PX = 2  # at 64² (scales with the width): how far outside the imagined task part a claimed pixel may lie
TASK_BORDER_DEPTH = 0.05  # world units: a Gaussian is on the surface drawn at its pixel within this of that depth


def claim_task_border(state: ArticulatedState, part: int | None, camera: Camera, image: np.ndarray,
                      goal_image: np.ndarray, goal_value: float, current_view: CameraImages | None = None) -> int:
    """Give the task ``part`` the static-body Gaussians drawn, in ``camera``, on its border in the pixels it leaves;
    returns how many changed label. A pixel counts as left by the part when it changes from ``image`` to
    ``goal_image`` (the camera's (H, W, 3) uint8 views of the initial and goal states), lies within
    ``TASK_BORDER_PX`` of the imagined part's pixels, and neither the imagined part at its start nor at
    ``goal_value`` draws it; a body Gaussian is claimed when its centre projects into such a pixel within
    ``TASK_BORDER_DEPTH`` of the depth drawn there. ``current_view`` as in :func:`find_task_part`.

    Why: the reconstruction blurs a part's border into the body, so the surface drawn there is often body
    Gaussians (at reset only 64% of the pixels showing the true task part showed the imagined one; labelling the
    same Gaussians by the true geometry did no better, docs/articulation.md), and a drag starting there missed in
    imagination where the twin grasped. Where the camera sees the change but the imagined part at its goal does
    not cover the pixel, the change can only be the part leaving it, so the part was drawn there at the start."""
    if part is None:
        return 0
    current = state.gaussians()
    at_start = render_part_labels(current, state.labels, [camera])[0] == part
    goal_state = state.copy()
    goal_state.set_value(part, goal_value)
    at_goal = render_part_labels(goal_state.gaussians(), goal_state.labels, [camera])[0] == part
    near = grow_mask(at_start, TASK_BORDER_PX, camera.width)
    left = changed_pixels(image, goal_image) & near & ~at_start & ~at_goal
    body = torch.nonzero((state.labels == STATIC) & (current.opacities[0] > MIN_VISIBLE_OPACITY)).flatten()
    if not left.any() or len(body) == 0:
        return 0
    depth = (current_view if current_view is not None else render_images(current, [camera])).depth[0]
    uv, z = camera.project(current.means[0][body].detach().cpu().numpy().astype(np.float64))
    rows, cols = camera.pixel_index(np.nan_to_num(uv))
    claimed = left[rows, cols] & (np.abs(z - depth[rows, cols]) <= TASK_BORDER_DEPTH)
    if claimed.any():
        labels = state.labels.clone()
        labels[body[torch.as_tensor(claimed, device=body.device)]] = part
        state.labels = labels
    return int(claimed.sum())


def shape_task_part(state: ArticulatedState, part: int | None, camera: Camera, image: np.ndarray,
                    goal_image: np.ndarray, goal_value: float, current_view: CameraImages | None = None) -> None:
    """Fit the task ``part`` to what the camera sees it change: :func:`carve_task_part`, then
    :func:`claim_task_border` (the same arguments). Call it after :func:`find_task_part` and before rendering the
    goal; the world-model env and the planner both do, so the planner imagines the env's task part. Neither step
    moves a Gaussian, so ``current_view`` (as in :func:`find_task_part`) stays the render of ``state``."""
    carve_task_part(state, part, camera, image, goal_image, goal_value)
    claim_task_border(state, part, camera, image, goal_image, goal_value, current_view)
