"""An image-defined task: a folder of camera images that defines a world-model episode without any simulator.

Format ``partrm-gym-task`` version 1 (docs/envs.md, "Tasks from images"). A task folder holds:

| file | what |
|---|---|
| ``cameras.json`` | required: format and version, input rig, observation camera, metric scale |
| ``input_0.png`` … ``input_3.png`` | the initial state's 4 input views (azimuths 0/90/180/270 + the rig's offset) |
| ``photo.png`` | instead of the input views, with ``"views_from": "zero123pp"``: one photo from input view 0 |
| ``initial.png``, ``goal.png`` | the observation camera's images of the initial and the goal state |
| ``goal_input_0.png`` … | optional: the goal state's 4 input views (the regenerate transition) |
| ``<image>.depth.png`` | optional, beside any image: its depth, 16-bit PNG, mm along the optical axis, 0 = none |
| ``task.json`` | optional: ``{"category": …, "name": …}`` |
| ``oracle.json`` | optional: the true task (``partrm-gym export-task``), read only with ``goal_from="side_file"`` |

``cameras.json``::

    {"format": "partrm-gym-task", "version": 1,
     "input_rig": {"elevation_deg": 20, "radius": 1.5, "fov_deg": 49.1, "azimuth_offset_deg": 0},
     "views_from": "files",                      # or "zero123pp" (photo.png)
     "observation": {"width": 64, "height": 64, "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],
                     "world_to_cam": [[...4 rows of 4...]]},   # OpenCV: x right, y down, z forward
     "metric_scale": 1.0}                        # metres per world unit of the object frame

The object frame is the project's world frame (docs/conventions.md): z up, the centre of the box that holds every
state of the object at the origin, its front (where parts open) facing +x, all its states inside a sphere of radius
0.5; ``metric_scale`` says how many metres one unit of that frame is, so depth images in millimetres become world
units. Every loading error is one line naming the file and the fix (:class:`TaskFolderError`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from partrm_gym.cameras import Camera, RigConfig, canonical_rig
from partrm_gym.errors import UserError
from partrm_gym.io import atomic_write_bytes, atomic_write_json, path_kind
from partrm_gym.rendering import BACKGROUND_RGB

FORMAT, VERSION = "partrm-gym-task", 1
CAMERAS, TASK, ORACLE = "cameras.json", "task.json", "oracle.json"
INITIAL, GOAL, PHOTO = "initial.png", "goal.png", "photo.png"
VIEWS = 4
DEPTH_SUFFIX = ".depth.png"
VIEWS_FROM = ("files", "zero123pp")
RIG_TOLERANCE = {"elevation_deg": 0.5, "radius": 0.01, "fov_deg": 0.5, "azimuth_offset_deg": 0.5}
OBJECT_RADIUS = 0.5  # world units: every state of the object fits this sphere around the origin
BACKGROUND_TOLERANCE = 5  # grey levels: a pixel this close to the background shows no object
# share of an image's object pixels that must have depth, and of its depth points inside the object's sphere
DEPTH_AGREEMENT = 0.9
SPHERE_MARGIN = 1.1  # depth points may lie this factor beyond OBJECT_RADIUS (a user's frame is not exact)


class TaskFolderError(UserError, ValueError):
    """A task folder is missing a file, or a file is malformed or inconsistent; the message names it."""


def input_name(k: int, goal: bool = False) -> str:
    return f"{'goal_' if goal else ''}input_{k}.png"


def depth_name(image_name: str) -> str:
    return image_name.removesuffix(".png") + DEPTH_SUFFIX


@dataclass(frozen=True)
class Oracle:
    """The true task behind an exported folder (``oracle.json``): what the image env infers, for scoring it."""

    joint: int  # position in the object's movable joints
    joint_type: str
    start: float
    goal: float
    limits: tuple[float, float]
    source: dict[str, Any]  # how the twin made it: env id, seed, category, object seed, PartNet folder
    axis: tuple[float, float, float] | None = None  # the joint's true axis (the way its value grows), world frame

    @property
    def range(self) -> float:
        return self.limits[1] - self.limits[0]


@dataclass(frozen=True)
class ImageTask:
    """A loaded, validated task folder (:func:`load_task`)."""

    folder: Path
    name: str
    category: str
    rig: RigConfig  # the input views' rig
    views_from: str
    views: np.ndarray | None  # (4, S, S, 3) uint8: the initial input views (None: from photo.png)
    photo: np.ndarray | None  # (S, S, 3) uint8 when views_from is "zero123pp"
    goal_views: np.ndarray | None  # (4, S, S, 3) uint8 or None
    image: np.ndarray  # (H, W, 3) uint8: the observation camera's view of the initial state
    goal_image: np.ndarray  # (H, W, 3) uint8: ... of the goal state
    camera: Camera  # the observation camera
    metric_scale: float  # metres per world unit
    view_depths: np.ndarray | None  # (4, S, S) float32 camera-z depth in world units (inf: none), or None
    image_depth: np.ndarray | None  # (H, W) float32: the observation camera's depth of the initial state, or None
    goal_depth: np.ndarray | None  # (H, W) float32: ... of the goal state, or None
    # Read and checked like the rest, though no transition uses them yet (the regenerate transition and Zero123++
    # take RGB only): a folder is validated whole, whatever it holds.
    goal_view_depths: np.ndarray | None = None  # (4, S, S) float32: the goal's input views' depth, or None
    photo_depth: np.ndarray | None = None  # (S, S) float32: photo.png's depth, or None

    def oracle(self) -> Oracle:
        """The side file's true task (``goal_from="side_file"``): an error naming the file where there is none."""
        return load_oracle(self.folder)

    def input_cameras(self, size: int | None = None) -> list[Camera]:
        """The 4 input views' cameras, at their own size or ``size``."""
        side = size or (self.views.shape[1] if self.views is not None else self.photo.shape[0])
        return canonical_rig(side, self.rig)


# -- reading ------------------------------------------------------------------------------------------------
def load_task(folder: str | Path) -> ImageTask:
    """Read and validate a task folder (see the module docstring); one-line :class:`TaskFolderError` otherwise."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise TaskFolderError(f"task folder {folder} is {path_kind(folder)}, not a folder; give a folder written by "
                              "`partrm-gym export-task` or made as docs/envs.md describes")
    meta = _read_json(folder / CAMERAS, required=True)
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise TaskFolderError(f"{folder / CAMERAS}: format {meta.get('format')!r} version {meta.get('version')!r}; "
                              f"this reader needs format {FORMAT!r} version {VERSION}")
    rig = _rig(meta, folder / CAMERAS)
    camera = _camera(meta, folder / CAMERAS)
    scale = meta.get("metric_scale", 1.0)
    if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise TaskFolderError(f"{folder / CAMERAS}: metric_scale must be a positive number (metres per world unit), "
                              f"got {scale!r}")
    views_from = meta.get("views_from", "files")
    if views_from not in VIEWS_FROM:
        raise TaskFolderError(f"{folder / CAMERAS}: views_from must be one of {list(VIEWS_FROM)}, got {views_from!r}")
    image = _read_rgb(folder / INITIAL, (camera.height, camera.width))
    goal_image = _read_rgb(folder / GOAL, (camera.height, camera.width))
    _check_sees_object(camera, image, folder)
    views = photo = None
    if views_from == "files":
        views = _read_views(folder, goal=False)
    else:
        photo = _read_rgb(folder / PHOTO, None, square=True)
    has_goal_views = any((folder / input_name(k, goal=True)).exists() for k in range(VIEWS))
    goal_views = _read_views(folder, goal=True) if has_goal_views else None
    size = views.shape[1] if views is not None else photo.shape[0]
    if goal_views is not None and goal_views.shape[1] != size:
        raise TaskFolderError(f"{folder / input_name(0, goal=True)}: {goal_views.shape[1]} px, but the input views are "
                              f"{size} px; give the goal's views at the input views' size")
    cams = canonical_rig(size, rig)
    view_depths = _read_view_depths(folder, views, cams, scale, goal=False) if views is not None else None
    goal_view_depths = _read_view_depths(folder, goal_views, cams, scale, goal=True) if goal_views is not None else None
    image_depth, goal_depth, photo_depth = (
        (_read_depth(folder, name, rgb, cam, scale) if rgb is not None and (folder / depth_name(name)).exists()
         else None) for name, rgb, cam in ((INITIAL, image, camera), (GOAL, goal_image, camera),
                                           (PHOTO, photo, cams[0])))
    _refuse_stray_depth(folder, views_from, goal_views is not None)
    extra = _read_json(folder / TASK, required=False)
    return ImageTask(folder, str(extra.get("name", folder.name)), str(extra.get("category", "unknown")), rig,
                     views_from, views, photo, goal_views, image, goal_image, camera, float(scale), view_depths,
                     image_depth, goal_depth, goal_view_depths, photo_depth)


def load_oracle(folder: str | Path) -> Oracle:
    path = Path(folder) / ORACLE
    data = _read_json(path, required=True, why="goal_from='side_file' reads the true task from it (written by "
                                               "`partrm-gym export-task`); use goal_from='images' to infer it")
    try:
        axis = data.get("axis")
        return Oracle(int(data["joint"]), str(data["joint_type"]), float(data["start"]), float(data["goal"]),
                      (float(data["limits"][0]), float(data["limits"][1])), dict(data.get("source", {})),
                      None if axis is None else tuple(float(a) for a in axis))
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise TaskFolderError(f"{path}: malformed ({type(e).__name__}: {e}); it needs joint, joint_type, start, goal "
                              "and limits [lower, upper]") from None


def check_rig(task: ImageTask, rig: RigConfig) -> None:
    """Refuse a task whose input views were taken with another rig than the model's (``rig``)."""
    for name, tolerance in RIG_TOLERANCE.items():
        ours = getattr(rig, "canonical_" + name if name in ("elevation_deg", "azimuth_offset_deg") else name)
        theirs = getattr(task.rig, "canonical_" + name if name in ("elevation_deg", "azimuth_offset_deg") else name)
        if abs(ours - theirs) > tolerance:
            raise TaskFolderError(f"{task.folder / CAMERAS}: input_rig {name} = {theirs:g}, but the model's input rig "
                                  f"has {ours:g}; take the input views with the model's rig (docs/envs.md) or use a "
                                  "model trained for that rig")


def _read_json(path: Path, required: bool, why: str = "") -> dict[str, Any]:
    if not path.exists():
        if required:
            raise TaskFolderError(f"{path} is missing" + (f"; {why}" if why else "; every task folder needs it "
                                                          "(docs/envs.md)"))
        return {}
    if not path.is_file():
        raise TaskFolderError(f"{path} is {path_kind(path)}, not a file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TaskFolderError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise TaskFolderError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _section(meta: dict[str, Any], key: str, path: Path, what: str) -> dict[str, Any]:
    """The object ``meta[key]`` of ``cameras.json``; a one-line error saying what it must hold where it is absent."""
    section = meta.get(key)
    if not isinstance(section, dict):
        raise TaskFolderError(f"{path}: {key} is missing; {what}")
    return section


def _rig(meta: dict[str, Any], path: Path) -> RigConfig:
    rig = _section(meta, "input_rig", path, "name the input views' rig (elevation_deg, radius, fov_deg, "
                   "azimuth_offset_deg)")
    try:
        values = {k: float(rig[k]) for k in RIG_TOLERANCE}
    except (KeyError, TypeError, ValueError) as e:
        raise TaskFolderError(f"{path}: input_rig needs numbers {sorted(RIG_TOLERANCE)} ({e})") from None
    return RigConfig(radius=values["radius"], fov_deg=values["fov_deg"],
                     canonical_elevation_deg=values["elevation_deg"],
                     canonical_azimuth_offset_deg=values["azimuth_offset_deg"])


def _camera(meta: dict[str, Any], path: Path) -> Camera:
    obs = _section(meta, "observation", path, "give the observation camera's width, height, K and world_to_cam")
    try:
        K = np.asarray(obs["K"], dtype=np.float64)
        pose = np.asarray(obs["world_to_cam"], dtype=np.float64)
        width, height = int(obs["width"]), int(obs["height"])
    except (KeyError, TypeError, ValueError) as e:
        raise TaskFolderError(f"{path}: observation needs width, height, K (3x3) and world_to_cam (4x4) "
                              f"({e})") from None
    if K.shape != (3, 3) or pose.shape != (4, 4) or not (np.isfinite(K).all() and np.isfinite(pose).all()):
        raise TaskFolderError(f"{path}: observation K must be 3x3 and world_to_cam 4x4, finite")
    if width < 8 or height < 8 or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise TaskFolderError(f"{path}: observation needs width, height >= 8 and positive focal lengths in K")
    R = pose[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0 or not np.allclose(pose[3], [0, 0, 0, 1]):
        raise TaskFolderError(f"{path}: observation world_to_cam is not a rigid transform (a rotation, a translation "
                              "and the row 0 0 0 1)")
    return Camera(K, pose, width, height, "observation")


def _read_image(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    if not path.exists():
        raise TaskFolderError(f"{path} is missing")
    if not path.is_file():
        raise TaskFolderError(f"{path} is {path_kind(path)}, not a file")
    try:
        return np.asarray(iio.imread(path, plugin="pillow"))
    except Exception as e:  # imageio raises many kinds for a file that is not an image
        raise TaskFolderError(f"{path} is not a readable image ({type(e).__name__})") from None


def _read_rgb(path: Path, size: tuple[int, int] | None, square: bool = False,
              size_from: str = f"{CAMERAS} says the observation camera is") -> np.ndarray:
    """An 8-bit RGB image; RGBA is composited on the white background (a photo with its object cut out)."""
    img = _read_image(path)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        kind = "grey" if img.ndim == 2 else f"{img.dtype}, {img.shape[2] if img.ndim == 3 else 1} channels"
        raise TaskFolderError(f"{path} is not RGB ({kind}); save it as an 8-bit RGB (or RGBA) PNG")
    if img.shape[2] == 4:
        alpha = img[..., 3:].astype(np.float32) / 255.0
        white = np.asarray(BACKGROUND_RGB, np.float32) * 255.0
        img = np.round(img[..., :3] * alpha + white * (1 - alpha)).astype(np.uint8)
    if size is not None and img.shape[:2] != size:
        raise TaskFolderError(f"{path} is {img.shape[1]}x{img.shape[0]} px, but {size_from} {size[1]}x{size[0]}; "
                              "give every image of a kind at one size")
    if square and img.shape[0] != img.shape[1]:
        raise TaskFolderError(f"{path} is {img.shape[1]}x{img.shape[0]} px; input views are square")
    return img


def _read_views(folder: Path, goal: bool) -> np.ndarray:
    views = []
    for k in range(VIEWS):
        path = folder / input_name(k, goal)
        if not path.exists():
            what = "the goal's 4 input views" if goal else ("4 input views input_0..3.png (or photo.png with "
                                                            "views_from: zero123pp)")
            raise TaskFolderError(f"{path} is missing; a task needs {what}")
        views.append(_read_rgb(path, views[0].shape[:2] if views else None, square=True,
                               size_from=f"{input_name(0, goal)} is"))
    return np.stack(views)


def _read_view_depths(folder: Path, views: np.ndarray, cams: list[Camera], scale: float, goal: bool
                      ) -> np.ndarray | None:
    """The 4 input views' depth (all 4 or none: geometry is built from every view) in world units, or None."""
    names = [input_name(k, goal) for k in range(VIEWS)]
    present = [(folder / depth_name(n)).exists() for n in names]
    if not any(present):
        return None
    if not all(present):
        missing = depth_name(names[present.index(False)])
        given = depth_name(names[present.index(True)])
        raise TaskFolderError(f"{folder / missing} is missing, but {given} is there; give the depth of all "
                              f"{VIEWS} {'goal ' if goal else ''}input views or of none")
    return np.stack([_read_depth(folder, n, views[k], cams[k], scale) for k, n in enumerate(names)])


def _refuse_stray_depth(folder: Path, views_from: str, has_goal_views: bool) -> None:
    """A depth image beside no image of the folder is a mistake (a misspelt name, or input views' depth in a
    ``zero123pp`` folder): say so instead of ignoring it."""
    images = {INITIAL, GOAL} | ({PHOTO} if views_from == "zero123pp" else {input_name(k) for k in range(VIEWS)})
    images |= {input_name(k, goal=True) for k in range(VIEWS)} if has_goal_views else set()
    allowed = {depth_name(n) for n in images}
    for path in sorted(folder.glob("*" + DEPTH_SUFFIX)):
        if path.name not in allowed:
            raise TaskFolderError(f"{path} is the depth of no image of this task (views_from: {views_from}); "
                                  f"name it <image>{DEPTH_SUFFIX} beside its image, or remove it")


def object_mask(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of an RGB image that differ from the white background (the object)."""
    background = np.round(np.asarray(BACKGROUND_RGB) * 255.0)
    return np.abs(image.astype(np.int16) - background).max(-1) > BACKGROUND_TOLERANCE


def _check_sees_object(camera: Camera, image: np.ndarray, folder: Path) -> None:
    """The observation camera must look at the object: its centre in front of the camera and in the image, and the
    initial image showing something on the background."""
    uv, z = camera.project(np.zeros(3))
    margin = OBJECT_RADIUS * camera.K[0, 0] / max(float(z), 1e-9)
    inside = -margin <= uv[0] <= camera.width + margin and -margin <= uv[1] <= camera.height + margin
    if not z > OBJECT_RADIUS or not inside:
        raise TaskFolderError(f"{folder / CAMERAS}: the observation camera does not see the object (its centre, the "
                              f"origin, lies {'behind the camera' if z <= 0 else 'outside the image'}); check "
                              "world_to_cam (OpenCV: x right, y down, z forward; world z up)")
    if not object_mask(image).any():
        raise TaskFolderError(f"{folder / INITIAL} shows no object (only white background); the object must be in "
                              "view on a white background")


def _read_depth(folder: Path, image_name: str, rgb: np.ndarray, camera: Camera, metric_scale: float) -> np.ndarray:
    """A depth image (16-bit PNG, millimetres, 0 = none) in world units along the optical axis (inf = none),
    checked against its RGB image and camera."""
    path = folder / depth_name(image_name)
    raw = _read_image(path)
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise TaskFolderError(f"{path}: depth must be a single-channel 16-bit PNG in millimetres, got {raw.dtype} "
                              f"with shape {raw.shape}")
    if raw.shape != rgb.shape[:2]:
        raise TaskFolderError(f"{path} is {raw.shape[1]}x{raw.shape[0]} px, but {image_name} is "
                              f"{rgb.shape[1]}x{rgb.shape[0]}; depth and image must align pixel for pixel")
    import cv2

    depth = np.where(raw > 0, raw.astype(np.float32) / 1000.0 / metric_scale, np.inf).astype(np.float32)
    has_depth, on_object = np.isfinite(depth), object_mask(rgb).astype(np.uint8)
    # edge pixels are part object, part background (an antialiased image), so only the object's inside must have depth
    inside = cv2.erode(on_object, np.ones((3, 3), np.uint8)).astype(bool)
    if (has_depth & inside).sum() < DEPTH_AGREEMENT * inside.sum():
        raise TaskFolderError(f"{path} is inconsistent with {image_name}: depth covers "
                              f"{int((has_depth & inside).sum())} of the {int(inside.sum())} pixels inside the object; "
                              "depth must be where the object is, 0 elsewhere")
    centre_depth = float(camera.project(np.zeros(3))[1])
    values = depth[has_depth]
    if len(values) and not (centre_depth - 2 * OBJECT_RADIUS <= float(np.median(values)) <= centre_depth
                            + 2 * OBJECT_RADIUS):
        raise TaskFolderError(f"{path}: median depth {np.median(values) * metric_scale:.3f} m, but the object's centre "
                              f"is {centre_depth * metric_scale:.3f} m from this camera; check the depth unit "
                              "(millimetres) and metric_scale in cameras.json")
    # every surface the camera measures is the object's, so it lies in the sphere that holds the object (the frame's
    # convention); colour cannot tell a white part of the object from the white background, its place can
    rows, cols = np.nonzero(has_depth)
    radius = np.linalg.norm(camera.backproject(np.stack([cols + 0.5, rows + 0.5], axis=1), depth[rows, cols]), axis=1)
    outside = int((radius > OBJECT_RADIUS * SPHERE_MARGIN).sum())
    if outside > (1 - DEPTH_AGREEMENT) * len(radius):
        raise TaskFolderError(f"{path} is inconsistent with {image_name}: {outside} of its {len(radius)} depth pixels "
                              f"lie outside the sphere of radius {OBJECT_RADIUS} around the origin that holds the "
                              "object; depth must be where the object is, 0 elsewhere (and registered to its image)")
    return depth


# -- writing ------------------------------------------------------------------------------------------------
def write_task(folder: str | Path, *, rig: RigConfig, camera: Camera, views: np.ndarray, image: np.ndarray,
               goal_image: np.ndarray, goal_views: np.ndarray | None = None, view_depths: np.ndarray | None = None,
               image_depth: np.ndarray | None = None, goal_depth: np.ndarray | None = None,
               goal_view_depths: np.ndarray | None = None, metric_scale: float = 1.0,
               task: dict[str, Any] | None = None, oracle: Oracle | None = None) -> Path:
    """Write a task folder (every file atomically; an existing folder of another kind is refused).

    Args:
        rig: the input views' rig.
        camera: the observation camera.
        views: the initial input views.  # [4, S, S, 3] uint8
        image, goal_image: the camera's views of the initial and goal states.  # [H, W, 3] uint8
        goal_views: the goal's input views, or None.  # [4, S, S, 3] uint8
        view_depths, image_depth, goal_depth, goal_view_depths: camera-z depth in world units (inf: none), or
            None.  # [4, S, S] / [H, W] / [H, W] / [4, S, S]
        metric_scale: metres per world unit (depth is written in millimetres).
        task: ``task.json``'s entries (category, name), or None.
        oracle: the true task (``oracle.json``), or None.
    """
    import imageio.v3 as iio

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise TaskFolderError(f"--out {folder} is {path_kind(folder)}, not a folder")
    folder.mkdir(parents=True, exist_ok=True)

    def png(name: str, array: np.ndarray) -> None:
        atomic_write_bytes(folder / name, iio.imwrite("<bytes>", array, extension=".png"))

    def depth_png(name: str, depth: np.ndarray) -> None:
        mm = np.where(np.isfinite(depth), np.round(depth * metric_scale * 1000.0), 0)
        png(depth_name(name), np.clip(mm, 0, np.iinfo(np.uint16).max).astype(np.uint16))

    for k in range(VIEWS):
        png(input_name(k), views[k])
        if goal_views is not None:
            png(input_name(k, goal=True), goal_views[k])
        if view_depths is not None:
            depth_png(input_name(k), view_depths[k])
        if goal_views is not None and goal_view_depths is not None:
            depth_png(input_name(k, goal=True), goal_view_depths[k])
    png(INITIAL, image)
    png(GOAL, goal_image)
    if image_depth is not None:
        depth_png(INITIAL, image_depth)
    if goal_depth is not None:
        depth_png(GOAL, goal_depth)
    if task:
        atomic_write_json(folder / TASK, task)
    if oracle is not None:
        atomic_write_json(folder / ORACLE, {"joint": oracle.joint, "joint_type": oracle.joint_type,
                                            "start": oracle.start, "goal": oracle.goal,
                                            "limits": list(oracle.limits), "source": oracle.source,
                                            **({"axis": list(oracle.axis)} if oracle.axis is not None else {})})
    atomic_write_json(folder / CAMERAS, {
        "format": FORMAT, "version": VERSION, "views_from": "files", "metric_scale": metric_scale,
        "input_rig": {"elevation_deg": rig.canonical_elevation_deg, "radius": rig.radius, "fov_deg": rig.fov_deg,
                      "azimuth_offset_deg": rig.canonical_azimuth_offset_deg},
        "observation": {"width": camera.width, "height": camera.height, "K": camera.K.tolist(),
                        "world_to_cam": camera.world_to_cam.tolist()}})  # last: its presence marks a whole folder
    return folder
