"""The articulated imagined state: frozen Gaussians, a part label per Gaussian, a joint per part.

Why: re-predicting every Gaussian from renders of the previous prediction drifts in colour and
sharpness over an episode (docs/experiment.md). Articulated-object reconstruction (ArtGS,
Part2GS) instead keeps each Gaussian's appearance fixed and moves parts rigidly along explicit
joints; the joint value then reads out exactly. Here the world model predicts, once per episode,
the Gaussians, which part each belongs to and each part's joint; a step only changes one part's
joint value, and :meth:`ArticulatedState.gaussians` moves that part's Gaussians rigidly.

Conventions (docs/conventions.md): the normalised world frame (metres after normalisation, z up);
a revolute joint turns by ``value`` radians about ``axis`` through ``pivot`` (right-hand rule); a
prismatic joint translates by ``value`` world units along ``axis``. Joint values are absolute
(as the simulator reports them) when the task states the start value, else relative to the start.

Everything here is pure torch/numpy: no simulator, so it runs wherever the world model runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from partrm_gym.cameras import Camera, stack_cameras
from partrm_gym.gaussians import Gaussians

if TYPE_CHECKING:
    from partrm_gym.scene import Scene

STATIC = -1  # part label of a Gaussian that belongs to the static body
JointType = Literal["revolute", "prismatic"]
SCAN_SAMPLES = 256  # joint values scanned by solve_joint_value before refinement
REFINE_SAMPLES = 64  # a second, finer scan between the best value's neighbours
# Default limits, relative to the start value, of a part whose limits the task does not state.
DEFAULT_REVOLUTE_RANGE = (-math.pi / 2, math.pi / 2)
DEFAULT_PRISMATIC_RANGE = (-0.5, 0.5)  # world units: the whole normalised object fits a 0.5 radius sphere
GRASP_RADIUS_PX = 1.5  # a drag grasps the Gaussians whose centres project this close to its start pixel
# A drag start where the reconstruction draws no surface (its silhouette is blurrier than the object's) is moved to
# the nearest pixel that shows one within this distance; 0 turns it off.
SNAP_RADIUS_PX = 1.5  # tuned with VOTE_DEPTH on training-split tasks (docs/articulation.md)
# Among the grasp candidates, those within this depth (world units) of the one nearest the drawn surface vote for
# the part (opacity-weighted); 0: that nearest candidate alone decides.
VOTE_DEPTH = 0.03
# A revolute part's grasp is lifted to the nearest of the drawn depth, the part's front-most Gaussian under the start
# pixel and the part's hinged panel (panel_depth): the alpha-blended depth of a thin open door or lid lies behind
# it, which shortens the lever arm and makes the joint solve overshoot (docs/articulation.md). False lifts every
# grasp at the drawn depth.
LIFT_REVOLUTE_GRASP = True
MIN_VISIBLE_OPACITY = 0.05  # fainter Gaussians cannot be seen, so they can neither be grasped nor be parts
FLOATER_DISTANCE = 0.05  # world units: a Gaussian farther than this from every true surface point is a floater
# The articulation head's channels per splatter pixel (activated), the contract between the network that predicts
# them (partrm_gym.model.partrm) and state_from_prediction that reads them: movable probability, revolute
# probability, axis (3, unit), pivot offset (3: from the Gaussian to the nearest point of its joint axis), centre
# offset (3: to its part's centre).
ARTICULATION_CHANNELS = 1 + 1 + 3 + 3 + 3
MOVABLE, REVOLUTE, AXIS, PIVOT, CENTRE = slice(0, 1), slice(1, 2), slice(2, 5), slice(5, 8), slice(8, 11)


@dataclass
class PartJoint:
    """One part's joint in the normalised world frame, with its limits and current value."""

    type: JointType
    axis: np.ndarray  # (3,) unit vector
    pivot: np.ndarray  # (3,) a point on the axis (revolute); unused by prismatic joints
    lower: float
    upper: float
    start: float  # the value the reset reconstruction shows
    value: float = field(default=float("nan"))

    def __post_init__(self) -> None:
        self.axis = np.asarray(self.axis, dtype=np.float64)
        self.axis = self.axis / max(np.linalg.norm(self.axis), 1e-12)
        self.pivot = np.asarray(self.pivot, dtype=np.float64)
        if not math.isfinite(self.value):
            self.value = self.start

    @property
    def range(self) -> float:
        return self.upper - self.lower

    def clamp(self, value: float) -> float:
        return float(min(max(value, self.lower), self.upper))

    def move_points(self, points: np.ndarray, delta: np.ndarray | float) -> np.ndarray:
        """Points (N, 3) moved by joint displacements ``delta`` (scalar or (K,)) -> (N, 3) or (K, N, 3)."""
        d = np.asarray(delta, dtype=np.float64)
        pts = np.asarray(points, dtype=np.float64)
        if self.type == "prismatic":
            out = pts[None] + d.reshape(-1, 1, 1) * self.axis
        else:
            R = rotation_matrices(self.axis, d.reshape(-1))  # (K, 3, 3)
            out = np.einsum("kij,nj->kni", R, pts - self.pivot) + self.pivot
        return out if d.ndim else out[0]


def rotation_matrices(axis: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rodrigues: (K, 3, 3) rotations by ``angles`` (K,) about the unit ``axis``."""
    a = np.asarray(axis, dtype=np.float64)
    kx = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    s, c = np.sin(angles)[:, None, None], np.cos(angles)[:, None, None]
    return np.eye(3) + s * kx + (1 - c) * (kx @ kx)


def _quat_multiply(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Hamilton product of wxyz quaternions, broadcasting."""
    w1, x1, y1, z1 = q.unbind(-1)
    w2, x2, y2, z2 = r.unbind(-1)
    return torch.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], dim=-1)


def move_gaussians(gaussians: Gaussians, selected: torch.Tensor, joint: PartJoint, delta: float) -> Gaussians:
    """A copy of ``gaussians`` (B, N) whose ``selected`` (N,) bool Gaussians moved rigidly by ``delta``.

    Means move; orientations of a revolute part turn with it; opacity, scale and colour never change.
    """
    if delta == 0.0 or not bool(selected.any()):
        return gaussians
    dev, dt = gaussians.means.device, gaussians.means.dtype
    means, quats = gaussians.means.clone(), gaussians.quats
    axis = torch.as_tensor(joint.axis, dtype=dt, device=dev)
    if joint.type == "prismatic":
        means[:, selected] = means[:, selected] + delta * axis
    else:
        R = torch.as_tensor(rotation_matrices(joint.axis, np.array([delta]))[0], dtype=dt, device=dev)
        pivot = torch.as_tensor(joint.pivot, dtype=dt, device=dev)
        means[:, selected] = (means[:, selected] - pivot) @ R.T + pivot
        half = delta / 2.0
        q = torch.cat([torch.tensor([math.cos(half)], dtype=dt, device=dev), math.sin(half) * axis])
        quats = quats.clone()
        quats[:, selected] = _quat_multiply(q, quats[:, selected])
    return Gaussians(means, gaussians.opacities, gaussians.scales, quats, gaussians.colors)


@dataclass
class ArticulatedState:
    """Gaussians frozen at reset (B = 1), a part label per Gaussian and a joint per part."""

    base: Gaussians  # (1, N) as reconstructed at reset: every part at its joint's ``start`` value
    labels: torch.Tensor  # (N,) long: STATIC or the index of the Gaussian's part in ``joints``
    joints: list[PartJoint]

    def __post_init__(self) -> None:
        if self.base.batch_size != 1:
            raise ValueError(f"an articulated state holds one scene (B = 1), got B = {self.base.batch_size}")
        if tuple(self.labels.shape) != (self.base.num_gaussians,):
            raise ValueError(f"labels must have shape ({self.base.num_gaussians},), got {tuple(self.labels.shape)}")
        if len(self.joints) and int(self.labels.max()) >= len(self.joints):
            raise ValueError("a part label refers to a joint that does not exist")

    def copy(self) -> ArticulatedState:
        return ArticulatedState(self.base, self.labels, [replace(j) for j in self.joints])

    def part_mask(self, part: int) -> torch.Tensor:
        return self.labels == part

    def split_part(self, part: int, keep: torch.Tensor) -> int:
        """Give the Gaussians of ``part`` where ``keep`` (N,) bool is False a part of their own, with a copy of the
        joint at default limits around its start; returns the new part's index. ``part`` keeps its joint."""
        joint = self.joints[part]
        lower, upper = DEFAULT_REVOLUTE_RANGE if joint.type == "revolute" else DEFAULT_PRISMATIC_RANGE
        new = len(self.joints)
        self.labels = torch.where(self.part_mask(part) & ~keep.to(self.labels.device), new, self.labels)
        self.joints.append(replace(joint, lower=joint.start + lower, upper=joint.start + upper, value=joint.start))
        return new

    def set_value(self, part: int, value: float) -> float:
        """Set a part's joint value (clamped to its limits); returns the value set."""
        joint = self.joints[part]
        joint.value = joint.clamp(value)
        return joint.value

    def gaussians(self) -> Gaussians:
        """The current state: every part moved rigidly from its reset pose by (value - start)."""
        out = self.base
        for k, joint in enumerate(self.joints):
            out = move_gaussians(out, self.part_mask(k), joint, joint.value - joint.start)
        return out

    def part_at_pixel(self, current: Gaussians, camera: Camera, uv: np.ndarray, depth: float,
                      radius_px: float = GRASP_RADIUS_PX) -> int | None:
        """The part label (or STATIC) of the surface seen at pixel ``uv`` with rendered ``depth``: among the visible
        Gaussians whose centres project within ``radius_px`` of the pixel, the one nearest that depth.
        None when no Gaussian projects there. ``current`` is :meth:`gaussians` (the caller has it rendered)."""
        near, z = _gaussians_under_pixel(current, camera, uv, radius_px)
        return self._part_under(current, near, z, depth)

    def _part_under(self, g: Gaussians, near: torch.Tensor, z: torch.Tensor, depth: float) -> int | None:
        """:meth:`part_at_pixel`'s choice among the Gaussians ``near`` the pixel, whose camera depths are ``z``."""
        gap = torch.where(near, (z - depth).abs(), torch.full_like(z, torch.inf))
        i = int(gap.argmin())  # one number comes back to the host, no per-Gaussian copy
        if not bool(near[i]):
            return None
        if VOTE_DEPTH > 0:  # the surface layer under the pixel votes, weighted by opacity
            voters = near & (gap <= gap[i] + VOTE_DEPTH)  # the candidate nearest the surface always votes
            labels, weights = self.labels[voters], g.opacities[0][voters].double()
            parts = torch.unique(labels)
            totals = torch.stack([weights[labels == k].sum() for k in parts])
            return int(parts[int(totals.argmax())])
        return int(self.labels[i])

    def grasp(self, current: Gaussians, depth: np.ndarray, camera: Camera, uv: np.ndarray
              ) -> tuple[int, np.ndarray] | None:
        """The part a drag starting at pixel ``uv`` grasps and the grasped 3D point, or None (a miss: off the
        imagined surface, or on the static body). The point lies at the drawn depth, on a revolute part at the
        nearest of that, the part's front-most Gaussian centre under the pixel and the part's hinged panel
        (:func:`panel_depth`). ``current`` is :meth:`gaussians` and
        ``depth`` (H, W) its render in ``camera`` (inf where no surface is drawn). The world-model env's step and
        the planner's scoring both use it, so the planner imagines exactly what the env will do."""
        uv = np.asarray(uv, dtype=np.float64)
        z = float(depth[camera.pixel_index(uv)])
        if not np.isfinite(z) and SNAP_RADIUS_PX > 0:
            rows, cols = np.nonzero(np.isfinite(depth))
            if len(rows):
                centres = np.stack([cols + 0.5, rows + 0.5], axis=1)
                d = np.linalg.norm(centres - uv, axis=1)
                k = int(d.argmin())
                if d[k] <= SNAP_RADIUS_PX:
                    uv, z = centres[k], float(depth[rows[k], cols[k]])
        if not np.isfinite(z):
            return None
        near, depths = _gaussians_under_pixel(current, camera, uv, GRASP_RADIUS_PX)
        part = self._part_under(current, near, depths, z)
        if part is None or part == STATIC:
            return None
        if LIFT_REVOLUTE_GRASP and self.joints[part].type == "revolute":
            mask = self.part_mask(part) & (current.opacities[0] > MIN_VISIBLE_OPACITY)
            front = depths[near & mask]
            if len(front):
                z = min(z, float(front.min()))
            z = min(z, panel_depth(current.means[0][mask], current.opacities[0][mask], self.joints[part], camera, uv))
        return part, camera.backproject(uv, np.asarray(z))


def _gaussians_under_pixel(g: Gaussians, camera: Camera, uv: np.ndarray, radius_px: float
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Which Gaussians are visible (opacity above :data:`MIN_VISIBLE_OPACITY`, in front of the camera) with centres
    projecting within ``radius_px`` of pixel ``uv``, and every Gaussian's camera-z depth; on the Gaussians'
    device.

    Returns:
        near: the mask.  # [N] bool
        depth: camera-z of every centre.  # [N] float64
    """
    viewmat, K = stack_cameras([camera], device=g.means.device, dtype=torch.float64)
    cam = g.means[0].double() @ viewmat[0, :3, :3].T + viewmat[0, :3, 3]
    z = cam[:, 2]
    proj = (cam @ K[0].T)[:, :2] / z.clamp_min(1e-9)[:, None]
    centre = torch.as_tensor(np.asarray(uv, dtype=np.float64), device=g.means.device)
    near = (g.opacities[0] > MIN_VISIBLE_OPACITY) & (z > 0) & ((proj - centre).norm(dim=1) <= radius_px)
    return near, z


def panel_depth(means: torch.Tensor, weights: torch.Tensor, joint: PartJoint, camera: Camera, uv: np.ndarray
                ) -> float:
    """Depth along the ray through pixel ``uv`` at which it meets the part's hinged panel; inf where it does not.

    Why: doors and lids turn about an edge, so their surface lies near one plane through the hinge axis. The
    plane is the weighted least-squares fit of the part's Gaussians through the axis (the top principal
    direction of their offsets from the axis); the ray must meet it within the part's extent (radius from the
    axis and span along it), else no panel is seen there.

    Args:
        means: the part's Gaussian centres.  # [N, 3]
        weights: their opacities.  # [N]
        joint: the part's revolute joint (axis through pivot).
        camera: the camera the drag is drawn in.
        uv: the drag start in pixels.  # [2]

    Returns:
        The camera-z depth of the meeting point, or ``inf``.
    """
    if means.shape[0] < 2:
        return math.inf
    dev = means.device
    axis = torch.as_tensor(joint.axis, dtype=torch.float64, device=dev)
    pivot = torch.as_tensor(joint.pivot, dtype=torch.float64, device=dev)
    offsets = means.double() - pivot
    along = offsets @ axis
    radial = offsets - along[:, None] * axis
    w = weights.double().clamp_min(0)
    direction = torch.linalg.eigh((radial * w[:, None]).T @ radial)[1][:, -1]  # the panel's in-plane direction
    normal = torch.linalg.cross(axis, direction)
    origin = camera.center
    ray = camera.backproject(np.asarray(uv, dtype=np.float64), np.asarray(1.0)) - origin  # camera z = 1 per unit
    values = torch.stack([normal @ (pivot - torch.as_tensor(origin, device=dev)),
                          normal @ torch.as_tensor(ray, device=dev),
                          radial.norm(dim=1).max(), along.min(), along.max()]).tolist()  # one copy to the host
    to_pivot, towards, reach, low, high = values
    depth = to_pivot / towards if abs(towards) >= 1e-9 else math.inf
    if not 0 < depth < math.inf:  # the ray runs along the plane or meets it behind the camera
        return math.inf
    hit = origin + depth * ray - joint.pivot
    hit_along = float(hit @ joint.axis)
    hit_radius = float(np.linalg.norm(hit - hit_along * joint.axis))
    return depth if hit_radius <= reach and low <= hit_along <= high else math.inf


def solve_joint_value(joint: PartJoint, point: np.ndarray, target_uv: np.ndarray, camera: Camera) -> float:
    """The joint value within limits that carries ``point`` (grasped at the current value) closest to pixel
    ``target_uv`` in ``camera``: a dense scan over the range, then a finer scan around the best value.

    The same least-squares rule the twin's drag solver applies to the true geometry
    (:func:`partrm_gym.drags.solve_drag`), so the two worlds answer a drag alike.
    """
    target = np.asarray(target_uv, dtype=np.float64)

    def costs(values: np.ndarray) -> np.ndarray:
        moved = joint.move_points(np.asarray(point, dtype=np.float64)[None], values - joint.value)[:, 0]
        uv, z = camera.project(moved)
        return np.where(z > 0, ((uv - target) ** 2).sum(-1), np.inf)

    grid = np.linspace(joint.lower, joint.upper, SCAN_SAMPLES)
    c = costs(grid)
    best = int(np.argmin(c))
    fine = np.linspace(grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)], REFINE_SAMPLES)
    cf = costs(fine)
    value = float(fine[int(np.argmin(cf))]) if cf.min() <= c[best] else float(grid[best])
    return joint.clamp(value)


# -- joints from per-Gaussian predictions ------------------------------------------------------------------
def group_parts(means: np.ndarray, centres: np.ndarray, link: float, radius: float, min_size: int) -> np.ndarray:
    """Instance labels (N,) of movable Gaussians at ``means`` (N, 3) voting for part centres ``centres`` (N, 3).

    Two Gaussians are in one part when a chain of neighbours joins them, each step shorter than ``link``
    and between Gaussians whose centre votes lie within ``radius`` of each other: a part is a connected
    surface (robust to noisy votes), and two touching drawers are still two parts (their votes differ).
    Components smaller than ``min_size`` get STATIC.
    """
    n = len(means)
    labels = np.full(n, STATIC, dtype=np.int64)
    if n == 0:
        return labels
    m = torch.as_tensor(means, dtype=torch.float32)
    c = torch.as_tensor(centres, dtype=torch.float32)
    adjacent = (torch.cdist(m, m) <= link) & (torch.cdist(c, c) <= radius)
    comp = torch.arange(n)
    while True:  # label propagation: each node takes the smallest label among its neighbours
        big = torch.where(adjacent, comp[None, :], n).min(1).values
        new = torch.minimum(comp, big)
        if torch.equal(new, comp):
            break
        comp = new
    ids, inverse, counts = torch.unique(comp, return_inverse=True, return_counts=True)
    part = 0
    for k in torch.argsort(counts, descending=True).tolist():
        if int(counts[k]) < min_size:
            break
        labels[(inverse == k).numpy()] = part
        part += 1
    return labels


def _principal_direction(vectors: np.ndarray) -> np.ndarray:
    """The mean direction of unit vectors, robust to outliers: the top eigenvector, signed by the mean."""
    m = vectors.T @ vectors
    _, vecs = np.linalg.eigh(m)
    d = vecs[:, -1]
    return d if float(vectors.sum(0) @ d) >= 0 else -d


def joints_from_votes(means: np.ndarray, labels: np.ndarray, revolute_prob: np.ndarray, axes: np.ndarray,
                      pivots: np.ndarray) -> list[tuple[JointType, np.ndarray, np.ndarray]]:
    """Per part: (type by majority, axis by principal direction, pivot by median) from per-Gaussian votes.

    ``pivots`` (N, 3) are each Gaussian's vote for a point on its part's revolute axis; the pivot is
    their median, moved to the point of the axis line nearest to the part's centre.
    """
    out = []
    for k in range(int(labels.max()) + 1 if len(labels) else 0):
        sel = labels == k
        jtype: JointType = "revolute" if float(np.mean(revolute_prob[sel])) >= 0.5 else "prismatic"
        a = axes[sel] / np.maximum(np.linalg.norm(axes[sel], axis=1, keepdims=True), 1e-9)
        axis = _principal_direction(a)
        pivot = np.median(pivots[sel], axis=0)
        centre = means[sel].mean(0)
        pivot = pivot + axis * float((centre - pivot) @ axis)
        out.append((jtype, axis, pivot))
    return out


# -- ground truth from the simulator (labels for training, the oracle of bench rollout) -------------------
def nearest_surface_labels(means: torch.Tensor, points: torch.Tensor, point_labels: torch.Tensor,
                           max_distance: float = FLOATER_DISTANCE, chunk: int = 1024) -> torch.Tensor:
    """The true part of each reconstructed Gaussian: the label of the nearest true surface point.

    Args:
        means: Gaussian centres of a reconstruction.  # [N, 3]
        points: points on the true surfaces (e.g. back-projected depth pixels).  # [M, 3]
        point_labels: each point's part (STATIC or a joint index).  # [M] long
        max_distance: Gaussians farther than this from every point (floaters) get STATIC.

    Returns:
        labels  # [N] long, on ``means``' device

    Why: a reconstruction's Gaussians do not sit on the true surface pixel for pixel, so labels of the
    true geometry are carried over by proximity. Training labels (stage 3) and the oracle of
    ``partrm-gym bench rollout`` both use this one rule.
    """
    labels = torch.full((len(means),), STATIC, dtype=torch.long, device=means.device)
    if len(points) == 0:
        return labels
    pts = points.to(means.device, torch.float32)
    lab = point_labels.to(means.device, torch.long)
    for start in range(0, len(means), chunk):  # chunks keep the distance matrix small
        dist, nearest = torch.cdist(means[start:start + chunk].float(), pts).min(1)
        labels[start:start + chunk] = torch.where(dist <= max_distance, lab[nearest], STATIC)
    return labels


def true_joint_geometry(scene: Scene, joint: int, step: float = 1e-3) -> tuple[JointType, np.ndarray, np.ndarray]:
    """(type, axis, pivot) of a joint in the normalised world frame at the scene's current state.

    Measured from the child link's motion for a small joint change rather than read from
    URDF frames, so it holds whatever convention the asset's link and joint frames follow.
    The axis points the way the joint value grows; the pivot is the axis point nearest the link origin.
    """
    info = scene.joints[joint]
    states = scene.get_joint_states()
    q0 = float(states[joint])
    delta = step if q0 + step <= info.upper else -step
    local = np.eye(3) * 0.1
    before = scene.to_world(info.child_link, local)
    trial = states.copy()
    trial[joint] = q0 + delta
    try:
        scene.set_joint_states(trial)
        after = scene.to_world(info.child_link, local)
    finally:
        scene.set_joint_states(states)
    origin_before = scene.to_world(info.child_link, np.zeros((1, 3)))[0]
    if info.type == "prismatic":
        shift = (after - before).mean(0) / delta
        return "prismatic", shift / np.linalg.norm(shift), origin_before
    # Kabsch: rotation taking before -> after about their centroids
    b0, a0 = before - before.mean(0), after - after.mean(0)
    u, _, vt = np.linalg.svd(b0.T @ a0)
    sign = np.sign(np.linalg.det(vt.T @ u.T))
    R = vt.T @ np.diag([1.0, 1.0, sign]) @ u.T
    rotvec = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / 2.0
    axis = rotvec / np.linalg.norm(rotvec) * np.sign(delta)
    t = after.mean(0) - R @ before.mean(0)
    # the pivot p satisfies (I - R) p = t on the plane normal to the axis; least squares, nearest the link origin
    p, *_ = np.linalg.lstsq(np.eye(3) - R, t, rcond=None)
    pivot = p + axis * float((origin_before - p) @ axis)
    return "revolute", axis, pivot


# -- the imagined state from the network's prediction ------------------------------------------------------
@dataclass(frozen=True)
class GroupingConfig:
    """How per-Gaussian articulation votes become parts (see :func:`state_from_prediction`)."""

    # Defaults tuned on training-split tasks of the 4 training env categories (never the test split) for the task
    # part's mask IoU, the share of the twin's grasping drags that grasp a part in imagination and the joint
    # read-out, with the bundled model (grids and figures: docs/history.md, "Grouping thresholds"). A low threshold
    # trades a few more grasps where the twin misses for more grasps where it hits: a part Gaussian called static
    # makes drags on the part miss, the commoner failure.
    movable_threshold: float = 0.25  # a Gaussian is on a movable part above this probability
    min_opacity: float = MIN_VISIBLE_OPACITY  # fainter Gaussians stay with the static body
    link: float = 0.12  # world units: neighbouring Gaussians of one part are closer than this
    radius: float = 0.10  # world units: neighbours join one part only if their centre votes are this close
    min_part_fraction: float = 0.01  # of the visible Gaussians; smaller groups are not parts


def state_from_prediction(splatter: torch.Tensor, articulation: torch.Tensor,
                          grouping: GroupingConfig | None = None) -> ArticulatedState:
    """An :class:`ArticulatedState` from one scene's splatter images (1, V, 14, h, w) and articulation maps
    (1, V, 11, h, w) (``PartRM.forward_articulated``): Gaussians on movable parts are grouped into connected
    surfaces whose part-centre votes agree (:func:`group_parts`), and each part's joint comes from its members'
    votes. Limits are the defaults
    relative to the start (0), until the task states them (:meth:`PartJoint` fields can be set)."""
    grouping = grouping or GroupingConfig()
    if splatter.shape[0] != 1 or articulation.shape[0] != 1:
        raise ValueError("state_from_prediction takes one scene (B = 1)")
    base = Gaussians.from_splatter(splatter)
    art = articulation[0].permute(0, 2, 3, 1).reshape(-1, articulation.shape[2]).double().cpu().numpy()  # (N, 11)
    means = base.means[0].double().cpu().numpy()
    visible = base.opacities[0].cpu().numpy() > grouping.min_opacity
    movable = visible & (art[:, MOVABLE][:, 0] > grouping.movable_threshold)
    labels = np.full(len(means), STATIC, dtype=np.int64)
    idx = np.nonzero(movable)[0]
    min_size = max(1, int(grouping.min_part_fraction * visible.sum()))
    groups = group_parts(means[idx], means[idx] + art[idx, CENTRE], grouping.link, grouping.radius, min_size)
    labels[idx] = groups
    joints = []
    for jtype, axis, pivot in joints_from_votes(means[idx], groups, art[idx, REVOLUTE][:, 0], art[idx, AXIS],
                                                means[idx] + art[idx, PIVOT]):
        lower, upper = DEFAULT_REVOLUTE_RANGE if jtype == "revolute" else DEFAULT_PRISMATIC_RANGE
        joints.append(PartJoint(jtype, axis, pivot, lower, upper, start=0.0))
    return ArticulatedState(base, torch.as_tensor(labels, device=base.means.device), joints)
