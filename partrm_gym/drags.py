"""Drags: 2D motions of points on a part, and their link to joint motion in the simulator.

A drag is (x0, y0, x1, y1) in pixel coordinates normalised to [0, 1] of its own view
(docs/conventions.md). Two directions are provided:

* :func:`drags_between_states` — sample visible points of the moving part in state A,
  carry them rigidly to state B, project both into a view: training data.
* :func:`solve_drag` — the inverse used by the simulator twin: the joint value that best
  moves the grasped surface point to the drag end, a 1-D least squares over the joint's
  range (dense scan, then golden-section refinement), clamped to the limits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from partrm_gym.cameras import Camera
from partrm_gym.scene import SEG_BACKGROUND, JointInfo, Scene, SimFrame

DEFAULT_MAX_DRAGS = 10
SCAN_SAMPLES = 96  # joint values scanned before refinement
REFINE_ITERATIONS = 40  # golden-section steps; shrinks the bracket by 0.618**40
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


class DragError(ValueError):
    """A drag is malformed or cannot be applied (e.g. it starts off the object)."""


def validate_drags(drags: np.ndarray) -> np.ndarray:
    """(N, 4) float array of finite drags in [0, 1]; raises :class:`DragError` otherwise."""
    d = np.asarray(drags, dtype=np.float64)
    if d.ndim == 1:
        d = d[None]
    if d.ndim != 2 or d.shape[1] != 4:
        raise DragError(f"drags must have shape (N, 4) as (x0, y0, x1, y1), got {d.shape}")
    if not np.isfinite(d).all():
        raise DragError("drags contain NaN or inf")
    if (d < 0).any() or (d > 1).any():
        raise DragError("drag coordinates must be normalised to [0, 1] of the view")
    return d


def pad_drags(drags: np.ndarray, max_drags: int = DEFAULT_MAX_DRAGS) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad (or truncate) to ``max_drags`` rows; returns (drags (max_drags, 4) float32, mask bool)."""
    d = np.asarray(drags, dtype=np.float32).reshape(-1, 4)[:max_drags]
    out = np.zeros((max_drags, 4), dtype=np.float32)
    mask = np.zeros(max_drags, dtype=bool)
    out[: len(d)] = d
    mask[: len(d)] = True
    return out, mask


def to_pixels(xy: np.ndarray, camera: Camera) -> np.ndarray:
    return np.asarray(xy, dtype=np.float64) * np.array([camera.width, camera.height])


def to_normalised(uv: np.ndarray, camera: Camera) -> np.ndarray:
    return np.asarray(uv, dtype=np.float64) / np.array([camera.width, camera.height])


def lift_pixels(frame: SimFrame, camera: Camera, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points under pixels ``uv`` (N, 2) and their segmentation values (-1 where nothing is hit)."""
    rows, cols = camera.pixel_index(uv)
    seg = frame.seg[rows, cols]
    depth = frame.depth[rows, cols].astype(np.float64)
    points = camera.backproject(uv, np.where(np.isfinite(depth), depth, 0.0))
    return points, seg


def drags_between_states(scene: Scene, joint: int | str, state_a: np.ndarray, state_b: np.ndarray,
                         camera: Camera, max_drags: int = DEFAULT_MAX_DRAGS,
                         rng: np.random.Generator | None = None, frame_a: SimFrame | None = None) -> np.ndarray:
    """Drags (N <= max_drags, 4) that move points of ``joint``'s part from state A to state B in ``camera``.

    Starts are pixel centres of the part visible in A; ends are where the same material
    points land in B (kept only if inside the image). Empty (0, 4) if the part is not visible.
    The scene is left in state A.
    """
    rng = rng or np.random.default_rng(0)
    info = scene.joint(joint)
    scene.set_joint_states(state_a)
    frame = frame_a if frame_a is not None else scene.render(camera)
    rows, cols = np.nonzero(frame.part_mask(info))
    if len(rows) == 0:
        return np.zeros((0, 4))
    uv0 = np.stack([cols + 0.5, rows + 0.5], axis=1)
    world_a = camera.backproject(uv0, frame.depth[rows, cols].astype(np.float64))
    seg = frame.seg[rows, cols]
    local = {link: scene.to_link_frame(link, world_a[seg == link + 1]) for link in info.moved_links}
    scene.set_joint_states(state_b)
    world_b = np.empty_like(world_a)
    for link, pts in local.items():
        world_b[seg == link + 1] = scene.to_world(link, pts)
    scene.set_joint_states(state_a)
    uv1, z1 = camera.project(world_b)
    inside = (z1 > 0) & (uv1[:, 0] >= 0) & (uv1[:, 0] <= camera.width) & (uv1[:, 1] >= 0) & (uv1[:, 1] <= camera.height)
    idx = np.nonzero(inside)[0]
    if len(idx) == 0:
        return np.zeros((0, 4))
    pick = rng.choice(idx, size=min(max_drags, len(idx)), replace=False)
    return np.concatenate([to_normalised(uv0[pick], camera), to_normalised(uv1[pick], camera)], axis=1)


@dataclass(frozen=True)
class DragSolution:
    joint: JointInfo
    joint_position: int  # position in Scene.joints
    value: float  # the solved joint value, within limits
    start_value: float
    residual_px: float  # RMS distance between the moved points' projections and the drag ends


def grasped_joint(joints: Sequence[JointInfo], link_seg_value: int) -> int | None:
    """Position in ``joints`` (a scene's :attr:`~partrm_gym.scene.Scene.joints`) of the movable joint that moves
    the link under a pixel (its segmentation value), or None: the grasp rule of the twin, the datasets' part
    labels and the simulator segmenter."""
    if link_seg_value == SEG_BACKGROUND or link_seg_value == 0:
        return None
    link = link_seg_value - 1
    owners = [k for k, j in enumerate(joints) if link in j.moved_links]
    if not owners:
        return None
    # The deepest joint moving the link (smallest subtree) is the one a hand pulling on it moves.
    return min(owners, key=lambda k: len(joints[k].moved_links))


def solve_drag(scene: Scene, camera: Camera, drags: np.ndarray, frame: SimFrame | None = None) -> DragSolution | None:
    """The joint value that best carries the grasped point(s) to the drag end(s) in ``camera``.

    All drags must grab the same part (the part under the first drag's start decides;
    drags on other parts are ignored). Returns None if the first drag starts off any
    movable part. The scene's joint states are left unchanged.
    """
    d = validate_drags(drags)
    frame = frame if frame is not None else scene.render(camera)
    points, seg = lift_pixels(frame, camera, to_pixels(d[:, :2], camera))
    k = grasped_joint(scene.joints, int(seg[0]))
    if k is None:
        return None
    info = scene.joints[k]
    on_part = np.isin(seg, [link + 1 for link in info.moved_links])
    targets = to_pixels(d[on_part, 2:], camera)
    local = [(int(link), scene.to_link_frame(int(link), pt))
             for link, pt in zip(seg[on_part] - 1, points[on_part])]
    states = scene.get_joint_states()

    def cost(q: float) -> float:
        trial = states.copy()
        trial[k] = q
        scene.set_joint_states(trial)
        world = np.array([scene.to_world(link, pt) for link, pt in local])
        uv, z = camera.project(world)
        err = np.where(z[:, None] > 0, uv - targets, 1e6)
        return float((err ** 2).sum())

    try:
        grid = np.linspace(info.lower, info.upper, SCAN_SAMPLES)
        costs = np.array([cost(q) for q in grid])
        best = int(costs.argmin())
        a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
        x1, x2 = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
        f1, f2 = cost(x1), cost(x2)
        for _ in range(REFINE_ITERATIONS):
            if f1 < f2:
                b, x2, f2 = x2, x1, f1
                x1 = b - GOLDEN * (b - a)
                f1 = cost(x1)
            else:
                a, x1, f1 = x1, x2, f2
                x2 = a + GOLDEN * (b - a)
                f2 = cost(x2)
        q, fq = (x1, f1) if f1 < f2 else (x2, f2)
        if costs[best] < fq:
            q, fq = float(grid[best]), float(costs[best])
    finally:
        scene.set_joint_states(states)
    q = float(min(max(q, info.lower), info.upper))
    return DragSolution(info, k, q, float(states[k]), math.sqrt(fq / len(local)))
