"""What every PartRM environment shares: the task, the spaces, the control modes, success and reward.

A task is one object (procedural, from a category and a split), one of its parts, and an
initial and a goal joint state of that part, all drawn from the simulator at ``reset``.

Both env families score the same thing (:func:`evaluate_joint`, :func:`compute_reward`): the
task joint's fraction of its range, read from the simulator in the twin and from the imagined
articulated state in the world-model env. Success: ``|q - q_goal| <= joint_success_tolerance``
× range. Dense reward: the progress of the joint towards the goal in the step, normalised by
the initial distance, plus ``success_bonus`` on success. Image distance to the goal image is
kept in ``info`` as a diagnostic.

Both families read an action the same way (:func:`drag_from_action`) from their own current
observation, under one of two ``control_mode`` s: ``pixel_drag`` (a raw drag in the image) or
``object_drag`` (a point on the object's 2D box snapped onto the object, and a pull).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, NamedTuple

import gymnasium as gym
import numpy as np

from partrm_gym.assets import HELD_OUT_CATEGORY, TRAIN_CATEGORIES, canonical_category
from partrm_gym.assets.partnet_root import real_category, task_objects
from partrm_gym.cameras import Camera, orbit_camera
from partrm_gym.errors import UsageError
from partrm_gym.rendering import BACKGROUND_RGB
from partrm_gym.scene import Scene

# Seed blocks of the env's object splits (disjoint from each other; "test" of a training
# category means held-out instances, of the held-out category any instance).
TRAIN_SEEDS = (0, 100_000)
TEST_SEEDS = (1_000_000, 1_100_000)
ControlMode = Literal["object_drag", "pixel_drag"]
OBJECT_TOLERANCE = 5  # grey levels: a pixel that differs more than this from the background shows the object


@dataclass(frozen=True)
class TaskConfig:
    category: str = "any"  # a category / alias, or "any"
    split: Literal["train", "test"] = "train"
    task: Literal["open", "close", "random"] = "open"
    resolution: int = 64  # observation and goal images
    obs_azimuth_deg: float = 35.0  # the observation camera sees the front and one side
    obs_elevation_deg: float = 25.0
    obs_radius: float = 1.5
    obs_fov_deg: float = 49.1
    max_steps: int = 8
    reward_mode: Literal["dense", "sparse"] = "dense"
    control_mode: ControlMode = "object_drag"
    drag_scale: float = 0.5  # object_drag: the pull (dx, dy) = 1 moves this fraction of the image size
    joint_success_tolerance: float = 0.1  # success: |q - q_goal| within this fraction of the joint's range
    success_bonus: float = 1.0  # dense reward: added on the step that succeeds
    # success of the regenerate transition, which has no joint: image distance to the goal image below this
    # fraction of the initial one
    success_ratio: float = 0.35
    min_goal_change: float = 0.4  # fraction of the joint range between initial and goal state
    dense_scale: float = 1.0  # dense reward: the whole way from the initial state to the goal earns this
    # a PartNet-Mobility folder: tasks on its real objects of the category and split instead of procedural ones
    partnet_root: str | None = None

    def __post_init__(self) -> None:
        """Every field checked at ``gym.make``, so a typo fails there and not episodes later."""
        for name, allowed in literal_choices(TaskConfig).items():
            if getattr(self, name) not in allowed:
                raise UsageError(f"{name}={getattr(self, name)!r} is not valid; choose one of {list(allowed)}")
        if self.category != "any":
            try:
                canonical_category(self.category)
            except ValueError as e:
                raise UsageError(f"category: {e}, or 'any'") from None
        for name, low in (("resolution", 8), ("max_steps", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise UsageError(f"{name}={value!r} is not valid; it must be an integer >= {low}")
        for name, low, high in (("success_ratio", 0.0, 1.0), ("joint_success_tolerance", 0.0, 1.0),
                                ("success_bonus", 0.0, 1e6),
                                ("min_goal_change", 0.0, 1.0), ("obs_fov_deg", 1.0, 179.0),
                                ("obs_elevation_deg", -89.0, 89.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating)) or not low <= float(value) <= high:
                raise UsageError(f"{name}={value!r} is not valid; it must be a number in [{low}, {high}]")
        for name in ("obs_radius", "dense_scale", "drag_scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating)) or not (np.isfinite(value) and value > 0):
                raise UsageError(f"{name}={value!r} is not valid; it must be a positive number")
        if not np.isfinite(self.obs_azimuth_deg):
            raise UsageError(f"obs_azimuth_deg={self.obs_azimuth_deg!r} is not valid; it must be finite")
        if self.partnet_root is not None:
            if not isinstance(self.partnet_root, (str, Path)):
                raise UsageError(f"partnet_root={self.partnet_root!r} is not valid; give a folder path")
            category = "any" if self.category == "any" else canonical_category(self.category)
            task_objects(self.partnet_root, category, self.split)  # a one-line UsageError if none fits

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> TaskConfig:
        """``TaskConfig(**kwargs)`` with an error listing the valid names for an unknown keyword."""
        unknown = sorted(set(kwargs) - {f.name for f in fields(cls)})
        if unknown:
            raise UsageError(f"unknown environment argument(s) {unknown}; the task accepts "
                             f"{sorted(f.name for f in fields(cls))}")
        return cls(**kwargs)

    def categories(self) -> tuple[str, ...]:
        if self.category == "any":
            return (HELD_OUT_CATEGORY,) if self.split == "test" else TRAIN_CATEGORIES
        return (canonical_category(self.category),)


@dataclass
class Task:
    category: str
    seed: int
    joint: int  # position in Scene.joints
    initial: np.ndarray  # all joint values
    goal: np.ndarray
    extras: dict = field(default_factory=dict)


class TaskTerms(NamedTuple):
    """The task joint in the twin's terms: its start and goal values and its limits. The twin states them; an
    image-defined task infers them (``inferred``), with values relative to the start (the absolute start cannot be
    seen) and the limits its success rule implies (:mod:`partrm_gym.envs.task_inference`)."""

    start: float
    goal: float
    limits: tuple[float, float]
    inferred: bool = False


class JointReadout(NamedTuple):
    """The task joint as an env reads it out (the twin: the simulator's; imagination: the imagined state's):
    what success, the reward and the planner's scoring are computed from."""

    value: float
    goal_value: float
    lower: float
    upper: float

    @property
    def fraction(self) -> float:
        return (self.value - self.lower) / (self.upper - self.lower)

    @property
    def goal_fraction(self) -> float:
        return (self.goal_value - self.lower) / (self.upper - self.lower)


def observation_camera(cfg: TaskConfig) -> Camera:
    return orbit_camera(cfg.obs_azimuth_deg, cfg.obs_elevation_deg, cfg.obs_radius, cfg.obs_fov_deg, cfg.resolution,
                        name="observation")


def make_spaces(cfg: TaskConfig) -> tuple[gym.spaces.Box, gym.spaces.Dict]:
    """Action: 4 numbers in [-1, 1] (read by :func:`drag_from_action` under ``cfg.control_mode``).
    Observation: current and goal RGB images."""
    image = gym.spaces.Box(0, 255, (cfg.resolution, cfg.resolution, 3), np.uint8)
    return (gym.spaces.Box(-1.0, 1.0, (4,), np.float32),
            gym.spaces.Dict({"image": image, "goal": image}))


def literal_choices(cls: type) -> dict[str, tuple[Any, ...]]:
    """Field name -> allowed values, for every ``Literal[...]`` field of a dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: typing.get_args(hints[f.name]) for f in fields(cls)
            if typing.get_origin(hints[f.name]) is Literal}


def checked_action(action: np.ndarray) -> np.ndarray:
    """The action as 4 float64 numbers clipped to [-1, 1]. Only shape (4,) is an action (a (2, 2) array or
    nested lists are not reshaped: they are a caller's bug); non-finite actions are an error."""
    try:
        a = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"action must be 4 numbers, got {action!r}") from None
    if a.shape != (4,):
        raise ValueError(f"action must have shape (4,), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"action contains NaN or inf: {a}")
    return np.clip(a, -1.0, 1.0)


def decode_action(action: np.ndarray) -> np.ndarray:
    """A ``pixel_drag`` action (x0, y0, x1, y1) in [-1, 1]^4 -> a drag in [0, 1]^4 of the image."""
    return (checked_action(action) + 1.0) / 2.0


def object_mask(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of an observation (H, W, 3) uint8 that show the object (not the background).
    The same rule on simulator renders and on imagined renders, so both worlds anchor actions alike."""
    background = np.round(np.asarray(BACKGROUND_RGB) * 255.0)
    return (np.abs(image.astype(np.int16) - background).max(axis=-1) > OBJECT_TOLERANCE)


def drag_from_action(cfg: TaskConfig, action: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The drag in [0, 1]^4 (x0, y0, x1, y1) of the observation image that ``action`` means under
    ``cfg.control_mode``, given the current observation ``image`` (H, W, 3) uint8.

    * ``pixel_drag``: (x0, y0, x1, y1) in [-1, 1]^4 over the image (:func:`decode_action`).
    * ``object_drag``: (u, v, dx, dy). (u, v) in [-1, 1]^2 spans the 2D bounding box of the object's
      pixels (:func:`object_mask`), and the point is snapped to the nearest object pixel's centre;
      the drag ends (dx, dy) × ``drag_scale`` of the image size away (clipped to the image). With no
      object pixel in view it starts at the image centre.
    """
    if cfg.control_mode == "pixel_drag":
        return decode_action(action)
    a = checked_action(action)
    H, W = image.shape[:2]
    ys, xs = np.nonzero(object_mask(image))
    if len(xs) == 0:
        start = np.array([0.5, 0.5])
    else:
        box_x = xs.min() + (a[0] + 1.0) / 2.0 * (xs.max() - xs.min())
        box_y = ys.min() + (a[1] + 1.0) / 2.0 * (ys.max() - ys.min())
        k = int(np.argmin((xs - box_x) ** 2 + (ys - box_y) ** 2))
        start = np.array([(xs[k] + 0.5) / W, (ys[k] + 0.5) / H])
    end = np.clip(start + a[2:] * cfg.drag_scale, 0.0, 1.0)
    return np.concatenate([start, end])


def action_for_drag(cfg: TaskConfig, drag: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The action in [-1, 1]^4 that means ``drag`` (x0, y0, x1, y1) in [0, 1]^4 under ``cfg.control_mode``, given
    the current observation ``image``: the inverse of :func:`drag_from_action` for a drag that starts on an object
    pixel's centre and whose pull fits in ``drag_scale`` (otherwise the nearest action: the start snaps onto the
    object, the pull is clipped). It turns a policy that thinks in pixels (the scripted one) into actions of any
    control mode, e.g. for demonstrations."""
    drag = np.clip(np.asarray(drag, dtype=np.float64), 0.0, 1.0)
    if cfg.control_mode == "pixel_drag":
        return (drag * 2.0 - 1.0).astype(np.float32)
    H, W = image.shape[:2]
    ys, xs = np.nonzero(object_mask(image))
    if len(xs) == 0:
        return np.concatenate([[0.0, 0.0], np.clip((drag[2:] - 0.5) / cfg.drag_scale, -1, 1)]).astype(np.float32)
    col, row = drag[0] * W - 0.5, drag[1] * H - 0.5

    def box_coordinate(p: float, lo: int, hi: int) -> float:
        return float(np.clip(2.0 * (p - lo) / (hi - lo) - 1.0, -1.0, 1.0)) if hi > lo else 0.0

    uv = np.array([box_coordinate(col, xs.min(), xs.max()), box_coordinate(row, ys.min(), ys.max())])
    start = drag_from_action(cfg, np.concatenate([uv, [0.0, 0.0]]), image)[:2]  # where that point snaps to
    pull = np.clip((drag[2:] - start) / cfg.drag_scale, -1.0, 1.0)
    return np.concatenate([uv, pull]).astype(np.float32)


def evaluate_joint(cfg: TaskConfig, readout: JointReadout) -> dict[str, Any]:
    """Success and the quantities the reward reads, from the task joint's read-out (true in the twin, imagined in
    the world-model env): ``joint_value``, ``joint_fraction`` and ``goal_fraction`` (of the range), ``joint_limits``
    (lower, upper), ``joint_error`` = |fraction - goal fraction|, ``is_success`` = error <=
    ``joint_success_tolerance``."""
    error = abs(readout.fraction - readout.goal_fraction)
    return {"joint_value": float(readout.value), "joint_fraction": readout.fraction,
            "goal_fraction": readout.goal_fraction, "joint_limits": (float(readout.lower), float(readout.upper)),
            "joint_error": error, "is_success": bool(error <= cfg.joint_success_tolerance)}


def compute_reward(cfg: TaskConfig, error: float, previous_error: float, initial_error: float, success: bool
                   ) -> float:
    """``sparse``: 1 on success, else 0. ``dense``: ``dense_scale`` × (previous_error - error) / initial_error
    + ``success_bonus`` × success, so an episode that goes straight to the goal earns ``dense_scale`` +
    ``success_bonus`` and a step away from it is penalised. ``error`` is :func:`evaluate_joint`'s (or, in the
    regenerate transition, the image distance)."""
    if cfg.reward_mode == "sparse":
        return float(success)
    return cfg.dense_scale * (previous_error - error) / max(initial_error, 1e-6) + cfg.success_bonus * float(success)


def _sample_object(cfg: TaskConfig, rng: np.random.Generator) -> tuple[str, int, Scene, list[int], dict]:
    """(category, object seed, open scene, positions of the joints a task may move, extras) of a random object:
    procedural (category and seed block of the split), or real under ``cfg.partnet_root`` (its id as seed)."""
    if cfg.partnet_root is None:
        cats = cfg.categories()
        category = cats[int(rng.integers(len(cats)))]
        held_out_cat = category == HELD_OUT_CATEGORY and category not in TRAIN_CATEGORIES
        lo, hi = TEST_SEEDS if (cfg.split == "test" and not held_out_cat) else TRAIN_SEEDS
        seed = int(rng.integers(lo, hi))
        scene = Scene.procedural(category, seed)
        return category, seed, scene, scene.task_joints(), {}
    category = "any" if cfg.category == "any" else canonical_category(cfg.category)
    objects = task_objects(cfg.partnet_root, category, cfg.split)
    entry = objects[int(rng.integers(len(objects)))]
    scene = Scene.from_partnet(entry.folder)
    names = entry.parts_for(category)
    joints = [k for k, j in enumerate(scene.joints) if j.semantic in names] or scene.task_joints()
    if category == "any":
        category = real_category(entry, scene.joints[joints[0]].semantic)
    return category, entry.seed, scene, joints, {"partnet_folder": str(entry.folder), "partnet_id": entry.object_id}


def reset_joint(options: dict | None) -> int | None:
    """The task joint a reset's ``options={"joint": k}`` asks for (None: drawn)."""
    joint = (options or {}).get("joint")
    if joint is not None and (isinstance(joint, bool) or not isinstance(joint, (int, np.integer))):
        raise UsageError(f"options['joint'] must be a joint index (int), got {joint!r}")
    return None if joint is None else int(joint)


def sample_task(cfg: TaskConfig, rng: np.random.Generator, joint: int | None = None) -> tuple[Task, Scene]:
    """Draw an object, a part and initial/goal states; returns the task and its open scene. ``joint`` (a position
    in the object's movable joints) fixes the part instead of drawing it (the draws stay the same otherwise)."""
    category, seed, scene, task_joints, extras = _sample_object(cfg, rng)
    drawn = task_joints[int(rng.integers(len(task_joints)))]
    if joint is not None and not 0 <= joint < len(scene.joints):
        scene.close()
        raise UsageError(f"options['joint']={joint}: the object ({category} #{seed}) has {len(scene.joints)} movable "
                         f"joint(s), 0..{len(scene.joints) - 1}")
    joint = drawn if joint is None else joint
    fractions = rng.uniform(0.0, 1.0, len(scene.joints))
    mode = cfg.task if cfg.task != "random" else ("open" if rng.random() < 0.5 else "close")
    gap = cfg.min_goal_change
    start = rng.uniform(0.0, 1.0 - gap)
    end = rng.uniform(start + gap, 1.0)
    if mode == "close":
        start, end = end, start
    init_f, goal_f = fractions.copy(), fractions.copy()
    init_f[joint], goal_f[joint] = start, end
    span = np.array([j.range for j in scene.joints])
    low = np.array([j.lower for j in scene.joints])
    return Task(category, seed, joint, low + init_f * span, low + goal_f * span, extras), scene


def image_distance(image: np.ndarray, goal: np.ndarray) -> float:
    """Mean absolute difference in [0, 1] between two uint8 images."""
    return float(np.abs(image.astype(np.float32) - goal.astype(np.float32)).mean() / 255.0)


def image_success(cfg: TaskConfig, distance: float, initial: float) -> bool:
    """The regenerate transition's success (it has no joint): image distance to the goal within
    ``success_ratio`` of the initial one."""
    return bool(distance <= cfg.success_ratio * max(initial, 1e-6))
