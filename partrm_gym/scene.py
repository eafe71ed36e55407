"""An articulated object in its own PyBullet client: joints, normalisation and rendering.

The scene is the ground truth of the project. It owns one DIRECT-mode client, normalises
the object as docs/conventions.md fixes (the union of its bounding boxes over the joint range is
centred on the origin and fits in a sphere of radius 0.5), and renders RGB, metric depth
and per-link segmentation from any :class:`~partrm_gym.cameras.Camera` with TinyRenderer.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from partrm_gym.assets.partnet import TASK_SEMANTICS, load_partnet_folder, validate_urdf
from partrm_gym.assets.partnet_colours import write_coloured_urdf
from partrm_gym.assets.procedural import Part, ProceduralObject, generate
from partrm_gym.cameras import Camera
from partrm_gym.errors import UserError

NEAR, FAR = 0.05, 10.0  # clip planes of the simulator camera, metres
NORMALISED_RADIUS = 0.5
LIGHT_DIRECTION = (1.0, 0.6, 2.0)  # from the front-left, above: lights the opening side
# Lambertian only (no specular): a surface has one colour from every view, as Gaussians with
# view-independent colour (degree-0 SH) can represent.
LIGHT_AMBIENT, LIGHT_DIFFUSE = 0.6, 0.4
NORMALISE_SAMPLES = 5  # joint fractions sampled when bounding the object over its range
NORMALISE_PASSES = 4
NORMALISE_TOLERANCE = 1e-3  # relative slack on the radius, metres on the centre
SEG_BACKGROUND = -1  # segmentation value of a pixel off the object
PHYSICS_STEPS = 240  # 1 s at PyBullet's default 240 Hz
MOTOR_FORCE = 200.0  # N or N·m: ample for the light procedural parts
MOTOR_MAX_VELOCITY = 2.0  # m/s or rad/s
# PartNet-Mobility objects face -x as distributed (their doors and drawers open towards -x: measured on 43 of
# 46 real objects, the other 3 have only lids or drawers on two sides); this yaw turns them to face +x.
PARTNET_FRONT_YAW_DEG = 180.0
MIN_FRONT_EVIDENCE = 0.5  # mean horizontal opening direction shorter than this: no front is detected
# RGB is the mean of SUPERSAMPLE² samples per pixel, as a camera integrates over its pixel area
# (and as antialiased Gaussian rendering does). Depth and segmentation stay point samples at the
# pixel centre: with an odd factor the middle sample lies exactly there. Measured on all 8
# categories (half-open, 64² views): the GT splatter's evaluation-view PSNR rises from 24.9 to 27.1 dB.
SUPERSAMPLE = 3


_log = logging.getLogger(__name__)
# PyBullet prefixes each message with a "b3Warning[file,line]:" (or b3Error, b3Printf) header line.
_B3_HEADER = re.compile(r"b3(Warning|Error|Printf)\[[^\]]*\]:[ \t]*\r?\n")
_MAX_REPORTED_CHARS = 600


@dataclass
class NativeOutput:
    """What C code printed on file descriptors 1 and 2 during :func:`captured_native_output`."""

    text: str = ""

    def messages(self) -> list[tuple[str, str]]:
        """(kind, message) pairs: kind "Warning", "Error" or "Printf" for PyBullet's messages, "" for other lines."""
        out: list[tuple[str, str]] = []
        pos, kind = 0, ""
        for m in _B3_HEADER.finditer(self.text):
            out.extend((kind, line.strip()) for line in self.text[pos:m.start()].splitlines() if line.strip())
            kind, pos = m.group(1), m.end()
        out.extend((kind, line.strip()) for line in self.text[pos:].splitlines() if line.strip())
        return out

    def errors(self) -> list[str]:
        """The messages that matter to a user: PyBullet's b3Error ones and any line mentioning an error."""
        return [msg for kind, msg in self.messages() if kind == "Error" or "error" in msg.lower()]

    def error_summary(self) -> str:
        text = " ".join(self.errors())
        return text if len(text) <= _MAX_REPORTED_CHARS else text[:_MAX_REPORTED_CHARS] + " ..."


_CAPTURE_LOCK = threading.RLock()  # re-entrant: a capture inside a capture (same thread) is fine
_libc: ctypes.CDLL | None | bool = None  # None: not looked up yet; False: unavailable


def _flush_c_stdio() -> None:
    """fflush(NULL): push out what C code left in its stdio buffers, so it lands in the capture file."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None)
        except (OSError, TypeError):  # no C library to load (not POSIX)
            _libc = False
    if _libc:
        with contextlib.suppress(Exception):
            _libc.fflush(None)


@contextlib.contextmanager
def captured_native_output() -> Iterator[NativeOutput]:
    """Capture what C code (PyBullet) prints on file descriptors 1 and 2, which bypasses ``sys.stdout``.

    A library must not write to the user's stdout (it may be a pipe of JSON or CSV), and PyBullet
    prints dozens of "No inertial data" warnings per PartNet-Mobility object. Both descriptors are
    pointed at a temp file for the duration of the block and restored in ``finally``, whatever the
    block raises; the text is in the yielded object's ``text`` once the block has exited.
    Python's own streams are flushed first so nothing already written is swallowed. Output of
    other threads during the block is captured too, so keep the block to the native call; captures
    in several threads take turns (a lock), as interleaved dup2 calls could leave fd 1 on a temp file.
    """
    with _CAPTURE_LOCK:
        yield from _capture_native_output()


def _capture_native_output() -> Iterator[NativeOutput]:
    out = NativeOutput()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()  # type: ignore[union-attr]
    saved: dict[int, int] = {}
    for fd in (1, 2):
        with contextlib.suppress(OSError):  # a descriptor that is closed (a daemon) is left alone
            saved[fd] = os.dup(fd)
    try:
        with tempfile.TemporaryFile() as tmp:
            try:
                _flush_c_stdio()
                for fd in saved:
                    os.dup2(tmp.fileno(), fd)
                yield out
            finally:
                _flush_c_stdio()
                for fd, copy in saved.items():
                    os.dup2(copy, fd)
                tmp.seek(0)
                out.text = tmp.read().decode("utf-8", errors="replace")
    finally:
        for copy in saved.values():
            os.close(copy)


def _report_native_output(out: NativeOutput, what: Path | str, action: str) -> None:
    """PyBullet's errors become one warning naming the file; its other chatter goes to the debug log."""
    if out.errors():
        warnings.warn(f"{what}: PyBullet reported errors while {action}: {out.error_summary()}", stacklevel=3)
    if out.text.strip() and _log.isEnabledFor(logging.DEBUG):
        _log.debug("PyBullet output while %s %s:\n%s", action, what, out.text.rstrip())


# PyBullet's C code prints its build date when the module is first imported; a library must not print.
with captured_native_output():
    import pybullet as p
    from pybullet_utils.bullet_client import BulletClient


class SceneError(UserError, RuntimeError):
    """The scene cannot do what was asked (closed, unknown joint, bad values)."""


@dataclass(frozen=True)
class JointInfo:
    """A movable joint and the links it moves (segmentation values, see :meth:`Scene.render`)."""

    index: int  # PyBullet joint index == index of its child link
    name: str
    type: Literal["revolute", "prismatic"]
    axis: tuple[float, float, float]  # in the child link frame
    lower: float
    upper: float
    child_link: int
    child_link_name: str
    moved_links: tuple[int, ...]  # the child link and its descendants
    semantic: str = ""

    @property
    def range(self) -> float:
        return self.upper - self.lower


@dataclass
class SimFrame:
    """One simulator render: RGB uint8 (H, W, 3); depth float32 (H, W), z along the optical axis in
    metres, ``inf`` off the object; seg int32 (H, W): -1 off the object, 0 the base, k + 1 link k."""

    rgb: np.ndarray
    depth: np.ndarray
    seg: np.ndarray

    @property
    def object_mask(self) -> np.ndarray:
        return self.seg != SEG_BACKGROUND

    def part_mask(self, joint: JointInfo) -> np.ndarray:
        return np.isin(self.seg, [link + 1 for link in joint.moved_links])


# TinyRenderer samples pixel (i, j) of the returned (top-down) image at (i, j + 1) in OpenCV pixel
# coordinates, not at the centre (i + 0.5, j + 0.5): measured as a (+0.44, -0.44) px shift of a 64²
# silhouette's centroid against a 512² render box-filtered to 64² (tests/test_scene.py). Moving the
# principal point by this offset puts its samples on the pixel centres the rest of the package uses.
TINY_RENDERER_SAMPLE_OFFSET = (-0.5, 0.5)


def opengl_matrices(camera: Camera, near: float = NEAR, far: float = FAR) -> tuple[list[float], list[float]]:
    """PyBullet's column-major view and projection matrices for an OpenCV camera (TinyRenderer sampling)."""
    view = np.diag([1.0, -1.0, -1.0, 1.0]) @ camera.world_to_cam
    W, H = camera.width, camera.height
    fx, fy = camera.K[0, 0], camera.K[1, 1]
    cx, cy = camera.K[0, 2] + TINY_RENDERER_SAMPLE_OFFSET[0], camera.K[1, 2] + TINY_RENDERER_SAMPLE_OFFSET[1]
    proj = np.array([
        [2 * fx / W, 0.0, 1.0 - 2 * cx / W, 0.0],
        [0.0, 2 * fy / H, 2 * cy / H - 1.0, 0.0],
        [0.0, 0.0, -(far + near) / (far - near), -2 * far * near / (far - near)],
        [0.0, 0.0, -1.0, 0.0],
    ])
    return view.T.flatten().tolist(), proj.T.flatten().tolist()


class Scene:
    """One articulated object in one PyBullet DIRECT client. Use as a context manager or call close()."""

    def __init__(self, urdf_path: str | Path, normalize: bool = True, parts: list[Part] | None = None,
                 category: str = "", base_yaw_deg: float | None = 0.0) -> None:
        """``base_yaw_deg`` turns the object about z; None faces its front to +x (:meth:`front_yaw_deg`, else
        :data:`PARTNET_FRONT_YAW_DEG`)."""
        urdf_path = Path(urdf_path)
        if not urdf_path.is_file():
            raise FileNotFoundError(f"URDF not found: {urdf_path}")
        validate_urdf(urdf_path)  # AssetError naming the file, element and problem, before PyBullet prints its own
        self.urdf_path = urdf_path
        self.category = category
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        with captured_native_output() as out:
            self._client: BulletClient | None = BulletClient(connection_mode=p.DIRECT)
        _report_native_output(out, urdf_path, "connecting")
        self.base_yaw_deg = 0.0 if base_yaw_deg is None else float(base_yaw_deg)
        self._base_orn = p.getQuaternionFromEuler((0.0, 0.0, math.radians(self.base_yaw_deg)))
        self.scale, self.offset = 1.0, np.zeros(3)
        self.body = self._load(1.0, np.zeros(3))
        semantics = {part.joint: part.semantic for part in (parts or [])}
        self.joints = self._read_joints(semantics)
        if not self.joints:
            self.close()
            raise SceneError(f"{urdf_path}: the object has no movable (revolute/prismatic) joint")
        if base_yaw_deg is None:  # face the front to +x, then load again so every later step sees the turned object
            detected = self.front_yaw_deg()
            self.base_yaw_deg = detected if detected is not None else PARTNET_FRONT_YAW_DEG
            self._base_orn = p.getQuaternionFromEuler((0.0, 0.0, math.radians(self.base_yaw_deg)))
            self._reload(semantics)
        if normalize:
            self._normalise(semantics)

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_object(cls, obj: ProceduralObject, normalize: bool = True) -> Scene:
        """A scene for a procedural object; its URDF lives in a temp folder owned by the scene, written without
        the fsync of :meth:`ProceduralObject.write` (a private file read once: syncing and then deleting it cost
        ~20 ms per scene on an ext4 disk mounted with ``discard``, half an env reset)."""
        tmp = tempfile.TemporaryDirectory(prefix="partrm_scene_")
        try:
            urdf = Path(tmp.name) / f"{obj.name}.urdf"
            urdf.write_text(obj.urdf())
            scene = cls(urdf, normalize=normalize, parts=obj.parts, category=obj.category)
        except BaseException:
            tmp.cleanup()
            raise
        scene._tmpdir = tmp
        return scene

    @classmethod
    def procedural(cls, category: str, seed: int, normalize: bool = True) -> Scene:
        """Procedural object ``seed`` of ``category`` (a name or alias of :data:`~partrm_gym.assets.CATEGORIES`):
        the same seed always gives the same object, so tasks, datasets and tests can name objects by number."""
        return cls.from_object(generate(category, seed), normalize=normalize)

    @classmethod
    def from_partnet(cls, folder: str | Path, normalize: bool = True, base_yaw_deg: float | None = None) -> Scene:
        """A PartNet-Mobility folder, validated first so errors name the file and element, coloured by its MTL
        files (a copy of its URDF whose visuals carry their MTL diffuse colour, :mod:`partnet_colours`; textures as
        PyBullet loads them), and turned so its front faces +x (docs/conventions.md): by default the front is
        detected from the way its doors and drawers open (:meth:`front_yaw_deg`), else PartNet-Mobility's
        convention (front at -x, :data:`PARTNET_FRONT_YAW_DEG`); ``base_yaw_deg`` sets the turn instead.
        """
        obj = load_partnet_folder(folder)
        tmp = tempfile.TemporaryDirectory(prefix="partrm_scene_")
        try:
            urdf = write_coloured_urdf(obj.urdf_path, Path(tmp.name) / obj.urdf_path.name)
            scene = cls(urdf, normalize=normalize, parts=obj.parts, category=obj.category, base_yaw_deg=base_yaw_deg)
        except BaseException:
            tmp.cleanup()
            raise
        scene._tmpdir = tmp
        return scene

    def task_joints(self) -> list[int]:
        """Positions in :attr:`joints` of the parts a task may move: those whose semantic label names a door,
        drawer, lid or screen (:data:`~partrm_gym.assets.partnet.TASK_SEMANTICS`; knobs, buttons and the like are
        not task parts); every movable joint when none is so labelled (procedural objects, unlabelled URDFs)."""
        labelled = [k for k, j in enumerate(self.joints) if j.semantic in TASK_SEMANTICS]
        return labelled or list(range(len(self.joints)))

    def front_yaw_deg(self) -> float | None:
        """The base yaw (degrees about z, a multiple of 90, in [0, 360)) at which this object's front faces +x, or
        None when its task parts do not show a front (only lids, or drawers opening to opposite sides). An object
        already facing +x gets its own :attr:`base_yaw_deg` back.

        The front is where doors and drawers open to: each task part is moved a little from its lower limit
        (10% of its range, at most 0.2 rad) and the horizontal part of its link's unit displacement is averaged
        (a small turn moves a door's centre outwards, not sideways)."""
        c = self.client
        states = self.get_joint_states()
        total, n = np.zeros(3), 0
        try:
            for k in self.task_joints():
                joint = self.joints[k]
                q = states.copy()
                q[k] = joint.lower
                self.set_joint_states(q)
                before = np.array(c.getAABB(self.body, joint.child_link)).mean(0)
                q[k] = joint.lower + min(0.1 * joint.range, 0.2 if joint.type == "revolute" else np.inf)
                self.set_joint_states(q)
                shift = np.array(c.getAABB(self.body, joint.child_link)).mean(0) - before
                if np.linalg.norm(shift) > 1e-9:
                    total, n = total + shift / np.linalg.norm(shift), n + 1
        finally:
            self.set_joint_states(states)
        front = total[:2] / max(n, 1)
        if np.linalg.norm(front) < MIN_FRONT_EVIDENCE:
            return None
        return float((round(-math.degrees(math.atan2(front[1], front[0])) / 90.0) * 90 + self.base_yaw_deg) % 360)

    @property
    def client(self) -> BulletClient:
        """This scene's own PyBullet client (every scene has one, so scenes never see each other's bodies)."""
        if self._client is None:
            raise SceneError("the scene is closed")
        return self._client

    def _load(self, scale: float, offset: np.ndarray) -> int:
        client = self.client
        try:
            with captured_native_output() as out:
                body = client.loadURDF(str(self.urdf_path), basePosition=offset.tolist(),
                                       baseOrientation=self._base_orn, useFixedBase=True, globalScaling=scale)
        except p.error as e:
            detail = out.error_summary() or str(e)
            self.close()
            raise SceneError(f"{self.urdf_path}: PyBullet could not load the URDF ({detail}); "
                             "check the file with a URDF viewer or fix what PyBullet names") from e
        _report_native_output(out, self.urdf_path, "loading")
        return body

    def _read_joints(self, semantics: dict[str, str]) -> list[JointInfo]:
        c = self.client
        n = c.getNumJoints(self.body)
        infos = [c.getJointInfo(self.body, j) for j in range(n)]
        children: dict[int, list[int]] = {}
        for info in infos:
            children.setdefault(info[16], []).append(info[0])

        def subtree(link: int) -> tuple[int, ...]:
            out = [link]
            for ch in children.get(link, []):
                out.extend(subtree(ch))
            return tuple(out)

        joints = []
        for info in infos:
            jtype = {p.JOINT_REVOLUTE: "revolute", p.JOINT_PRISMATIC: "prismatic"}.get(info[2])
            if jtype is None:
                continue
            lower, upper = float(info[8]), float(info[9])
            if upper < lower:  # continuous joints come with upper < lower: give them one full turn
                lower, upper = -math.pi, math.pi
            name = info[1].decode()
            joints.append(JointInfo(
                index=info[0], name=name, type=jtype, axis=tuple(float(a) for a in info[13]),  # type: ignore[arg-type]
                lower=lower, upper=upper, child_link=info[0], child_link_name=info[12].decode(),
                moved_links=subtree(info[0]), semantic=semantics.get(name, ""),
            ))
        return joints

    def _normalise(self, semantics: dict[str, str]) -> None:
        """Rescale and shift so every state fits the unit-radius-0.5 sphere at the origin.

        PyBullet's AABBs carry a collision margin that does not scale with the object, so
        one pass can overshoot by a fraction of a millimetre; a few corrective passes fix it.
        """
        for _ in range(NORMALISE_PASSES):
            centre, radius = self._bounding_sphere()
            if radius <= NORMALISED_RADIUS and np.linalg.norm(centre) < NORMALISE_TOLERANCE:
                return
            factor = NORMALISED_RADIUS * (1.0 - NORMALISE_TOLERANCE) / radius
            self.offset = (self.offset - centre) * factor
            self.scale *= factor
            self._reload(semantics)

    def _reload(self, semantics: dict[str, str]) -> None:
        """Load the body again with the current base orientation, scale and offset (PyBullet cannot change
        them on a loaded body)."""
        self.client.removeBody(self.body)
        self.body = self._load(self.scale, self.offset)
        self.joints = self._read_joints(semantics)

    def _bounding_sphere(self) -> tuple[np.ndarray, float]:
        """Centre and radius of a sphere containing every link's AABB at sampled joint states."""
        c = self.client
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        corners = []
        for t in np.linspace(0.0, 1.0, NORMALISE_SAMPLES):
            self.set_joint_states([j.lower + t * j.range for j in self.joints])
            for link in range(-1, c.getNumJoints(self.body)):
                a, b = (np.asarray(v) for v in c.getAABB(self.body, link))
                if not (np.isfinite(a).all() and np.isfinite(b).all()) or (b - a).max() > 1e6:
                    continue
                lo, hi = np.minimum(lo, a), np.maximum(hi, b)
                corners.append(np.array([[x, y, z] for x in (a[0], b[0]) for y in (a[1], b[1]) for z in (a[2], b[2])]))
        self.set_joint_states([j.lower for j in self.joints])
        if not corners:
            raise SceneError(f"{self.urdf_path}: no link has a usable bounding box (no collision geometry?)")
        centre = (lo + hi) / 2
        radius = float(np.linalg.norm(np.concatenate(corners) - centre, axis=1).max())
        if radius <= 0:
            raise SceneError(f"{self.urdf_path}: the object has zero size")
        return centre, radius

    # -- joints -----------------------------------------------------------------------------------------
    def joint(self, key: int | str) -> JointInfo:
        """A movable joint by its position in :attr:`joints` or by name."""
        if isinstance(key, str):
            for j in self.joints:
                if j.name == key:
                    return j
            raise SceneError(f"no movable joint named {key!r}; have {[j.name for j in self.joints]}")
        if not 0 <= key < len(self.joints):
            raise SceneError(f"movable joint index {key} out of range 0..{len(self.joints) - 1}")
        return self.joints[key]

    def get_joint_states(self) -> np.ndarray:
        """The value of every movable joint (radians or metres after normalisation), in the order of
        :attr:`joints`. # [J]"""
        c = self.client
        return np.array([c.getJointState(self.body, j.index)[0] for j in self.joints])

    def set_joint_states(self, values: np.ndarray | list[float], clamp: bool = True) -> None:
        """Kinematically place every movable joint (order of :attr:`joints`)."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(self.joints),):
            raise SceneError(f"expected {len(self.joints)} joint values, got shape {values.shape}")
        if not np.isfinite(values).all():
            raise SceneError(f"joint values must be finite, got {values}")
        for j, v in zip(self.joints, values):
            if clamp:
                v = min(max(v, j.lower), j.upper)
            elif not j.lower - 1e-9 <= v <= j.upper + 1e-9:
                raise SceneError(f"joint {j.name}: value {v} outside its limits [{j.lower}, {j.upper}]")
            self.client.resetJointState(self.body, j.index, float(v), 0.0)

    def set_joint_fractions(self, fractions: np.ndarray | list[float]) -> None:
        """Joint states as fractions of each joint's range (0 = lower limit, 1 = upper)."""
        f = np.clip(np.asarray(fractions, dtype=np.float64), 0.0, 1.0)
        self.set_joint_states([j.lower + t * j.range for j, t in zip(self.joints, f)])

    def drive_joint(self, joint: int, target: float, steps: int = PHYSICS_STEPS, force: float = MOTOR_FORCE,
                    max_velocity: float = MOTOR_MAX_VELOCITY) -> float:
        """Move one joint towards ``target`` by physics: every joint motor off (free joints), a
        position-controlled motor on this one, ``steps`` simulation steps. Returns the value reached."""
        c, info = self.client, self.joint(joint)
        target = float(min(max(target, info.lower), info.upper))
        c.setGravity(0, 0, 0)  # parts hold their state between steps instead of sagging
        for j in self.joints:
            c.setJointMotorControl2(self.body, j.index, p.VELOCITY_CONTROL, targetVelocity=0.0, force=0.0)
        c.setJointMotorControl2(self.body, info.index, p.POSITION_CONTROL, targetPosition=target, force=force,
                                maxVelocity=max_velocity)
        for _ in range(steps):
            c.stepSimulation()
        c.setJointMotorControl2(self.body, info.index, p.VELOCITY_CONTROL, targetVelocity=0.0, force=0.0)
        for j in self.joints:  # stop residual motion so the next render shows a settled state
            c.resetJointState(self.body, j.index, c.getJointState(self.body, j.index)[0], 0.0)
        return float(c.getJointState(self.body, info.index)[0])

    def link_pose(self, link: int) -> tuple[np.ndarray, np.ndarray]:
        """World position and 3x3 rotation of a link frame (-1 = base)."""
        c = self.client
        if link == -1:
            pos, orn = c.getBasePositionAndOrientation(self.body)
        else:
            state = c.getLinkState(self.body, link, computeForwardKinematics=True)
            pos, orn = state[4], state[5]
        return np.asarray(pos), np.asarray(c.getMatrixFromQuaternion(orn)).reshape(3, 3)

    def to_link_frame(self, link: int, points: np.ndarray) -> np.ndarray:
        """World points # [N, 3] in the frame of ``link`` (-1 = base) at the current joint state: the inverse of
        :meth:`to_world`, so a point can follow its link as joints move."""
        pos, R = self.link_pose(link)
        return (np.asarray(points) - pos) @ R

    def to_world(self, link: int, local_points: np.ndarray) -> np.ndarray:
        """Points # [N, 3] given in the frame of ``link`` (-1 = base) -> world points at the current joint state."""
        pos, R = self.link_pose(link)
        return np.asarray(local_points) @ R.T + pos

    # -- rendering --------------------------------------------------------------------------------------
    def render(self, camera: Camera, supersample: int = SUPERSAMPLE) -> SimFrame:
        """RGB (area-averaged over ``supersample``² samples), metric depth and link segmentation (sampled
        at pixel centres) with TinyRenderer (CPU, deterministic)."""
        if supersample < 1 or supersample % 2 == 0:
            raise ValueError(f"supersample must be an odd positive integer (got {supersample}): only then does "
                             "a sample fall on each pixel centre")
        k, mid = supersample, supersample // 2
        H, W = camera.height, camera.width
        view, proj = opengl_matrices(camera.resized(W * k, H * k) if k > 1 else camera)
        _, _, rgba, zbuf, seg = self.client.getCameraImage(
            W * k, H * k, viewMatrix=view, projectionMatrix=proj,
            renderer=p.ER_TINY_RENDERER, lightDirection=LIGHT_DIRECTION, shadow=0,
            lightAmbientCoeff=LIGHT_AMBIENT, lightDiffuseCoeff=LIGHT_DIFFUSE, lightSpecularCoeff=0.0,
            flags=p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX,
        )
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(H * k, W * k, 4)[..., :3]
        if k > 1:  # the block mean (summed exactly in integers, then divided)
            sums = rgb.reshape(H, k, W, k, 3).sum(axis=(1, 3), dtype=np.uint16).astype(np.float32)
            rgb = np.round(sums / (k * k)).astype(np.uint8)
        else:
            rgb = rgb.copy()
        seg = np.asarray(seg, dtype=np.int64).reshape(H * k, W * k)[mid::k, mid::k]
        on = seg >= 0
        link_seg = np.where(on, seg >> 24, SEG_BACKGROUND).astype(np.int32)
        z = np.asarray(zbuf, dtype=np.float64).reshape(H * k, W * k)[mid::k, mid::k]
        depth = FAR * NEAR / (FAR - (FAR - NEAR) * z)
        depth = np.where(on, depth, np.inf).astype(np.float32)
        return SimFrame(rgb, depth, link_seg)

    def render_views(self, cameras: list[Camera], supersample: int = SUPERSAMPLE) -> list[SimFrame]:
        """:meth:`render` from each of ``cameras`` at the current joint state (e.g. the model's 4 input views)."""
        return [self.render(cam, supersample) for cam in cameras]

    # -- lifetime ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """Disconnect the PyBullet client and remove the temporary URDF copy; safe to call twice (``with`` and
        garbage collection call it too)."""
        if self._client is not None:
            self._client.disconnect()
            self._client = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    @property
    def closed(self) -> bool:
        """True after :meth:`close`: every call that needs the simulator then raises a SceneError."""
        return self._client is None

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
