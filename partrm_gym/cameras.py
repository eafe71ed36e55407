"""Pinhole cameras in the OpenCV convention, orbit rigs and Plücker ray maps.

Conventions (docs/conventions.md): world in metres with z up; camera x right, y down,
z forward; ``K`` in pixels; ``world_to_cam`` is what gsplat calls a *viewmat*; pixel
(i, j) has its centre at (i + 0.5, j + 0.5). Everything here is NumPy (float64) so the
simulator, the dataset and the tests share one exact definition; :func:`plucker_rays`
and :func:`stack_cameras` hand torch tensors to the model and the rasterizers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where tensors are made: a simulator-only user never loads it
    import torch


def pixel_index(uv: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) int arrays of the pixels containing points ``uv`` (..., 2) in pixel coordinates, clamped to
    the ``width`` × ``height`` image. Pixel (r, c) covers [c, c + 1) × [r, r + 1), so its centre is (c + ½, r + ½);
    points outside the image take the nearest border pixel. The one uv → pixel rule of the project."""
    uv = np.asarray(uv, dtype=np.float64)
    cols = np.clip(np.floor(uv[..., 0]), 0, width - 1).astype(np.int64)
    rows = np.clip(np.floor(uv[..., 1]), 0, height - 1).astype(np.int64)
    return rows, cols


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: intrinsics ``K`` (3×3), extrinsics ``world_to_cam`` (4×4), image size."""

    K: np.ndarray
    world_to_cam: np.ndarray
    width: int
    height: int
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64)
        w2c = np.asarray(self.world_to_cam, dtype=np.float64)
        if K.shape != (3, 3) or w2c.shape != (4, 4):
            raise ValueError(f"Camera needs K 3x3 and world_to_cam 4x4, got {K.shape} and {w2c.shape}")
        if not (np.isfinite(K).all() and np.isfinite(w2c).all()):
            raise ValueError("Camera matrices contain NaN or inf")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"Camera resolution must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "world_to_cam", w2c)

    @property
    def cam_to_world(self) -> np.ndarray:
        return np.linalg.inv(self.world_to_cam)

    @property
    def center(self) -> np.ndarray:
        """Camera position in world coordinates."""
        R, t = self.world_to_cam[:3, :3], self.world_to_cam[:3, 3]
        return -R.T @ t

    @property
    def fov_y_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.height / (2.0 * self.K[1, 1])))

    def resized(self, width: int, height: int) -> Camera:
        """The same view at another resolution (intrinsics scaled with the image)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0] *= sx
        K[1] *= sy
        return Camera(K, self.world_to_cam, width, height, self.name)

    def pixel_index(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the pixels of this camera's image containing ``uv`` (:func:`pixel_index`)."""
        return pixel_index(uv, self.width, self.height)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (..., 3) -> pixel coordinates (..., 2) and camera-space depth z (...)."""
        p = np.asarray(points, dtype=np.float64)
        pc = p @ self.world_to_cam[:3, :3].T + self.world_to_cam[:3, 3]
        z = pc[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = (pc @ self.K.T)[..., :2] / z[..., None]
        return uv, z

    def backproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Pixel coordinates (..., 2) and depth z along the optical axis (...) -> world points (..., 3)."""
        uv = np.asarray(uv, dtype=np.float64)
        depth = np.asarray(depth, dtype=np.float64)
        ones = np.ones(uv.shape[:-1] + (1,))
        rays_cam = np.concatenate([uv, ones], axis=-1) @ np.linalg.inv(self.K).T
        pc = rays_cam * depth[..., None]
        c2w = self.cam_to_world
        return pc @ c2w[:3, :3].T + c2w[:3, 3]

    def pixel_grid(self) -> np.ndarray:
        """Pixel-centre coordinates (H, W, 2) as (u, v)."""
        u = np.arange(self.width) + 0.5
        v = np.arange(self.height) + 0.5
        uu, vv = np.meshgrid(u, v, indexing="xy")
        return np.stack([uu, vv], axis=-1)

    def rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel ray origins and unit directions in world coordinates, each (H, W, 3)."""
        far = self.backproject(self.pixel_grid(), np.ones((self.height, self.width)))
        origin = self.center
        d = far - origin
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        return np.broadcast_to(origin, d.shape).copy(), d


def intrinsics_from_fov(fov_y_deg: float, width: int, height: int) -> np.ndarray:
    """K for a vertical field of view, square pixels, principal point at the image centre."""
    if not 0.0 < fov_y_deg < 180.0:
        raise ValueError(f"vertical field of view must be in (0, 180) degrees, got {fov_y_deg}")
    f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def look_at(eye: Sequence[float], target: Sequence[float] = (0.0, 0.0, 0.0),
            up: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """world_to_cam (OpenCV axes) for a camera at ``eye`` looking at ``target``."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("look_at: viewing direction is parallel to the up vector")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])  # rows: camera axes in world coordinates
    w2c = np.eye(4)
    w2c[:3, :3] = R
    w2c[:3, 3] = -R @ eye
    return w2c


def orbit_camera(azimuth_deg: float, elevation_deg: float, radius: float, fov_deg: float,
                 resolution: int | tuple[int, int], name: str = "") -> Camera:
    """A camera on a sphere around the origin, looking at it.

    Azimuth 0 lies on +x and grows counter-clockwise seen from +z; elevation is above the
    xy-plane. ``resolution`` is a side length or (width, height); ``fov_deg`` is vertical.
    """
    if radius <= 0:
        raise ValueError(f"orbit radius must be positive, got {radius}")
    if abs(elevation_deg) >= 90.0:
        raise ValueError(f"orbit elevation must be in (-90, 90) degrees, got {elevation_deg}")
    width, height = (resolution, resolution) if isinstance(resolution, int) else resolution
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    eye = radius * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    return Camera(intrinsics_from_fov(fov_deg, width, height), look_at(eye), width, height,
                  name or f"az{azimuth_deg:g}_el{elevation_deg:g}")


@dataclass(frozen=True)
class RigConfig:
    """The camera rigs of docs/conventions.md; defaults are LGM's input rig and our dataset rig."""

    radius: float = 1.5
    fov_deg: float = 49.1
    canonical_elevation_deg: float = 20.0
    canonical_azimuth_offset_deg: float = 0.0
    dataset_elevations_deg: tuple[float, float] = (10.0, 30.0)
    dataset_azimuth_step_deg: float = 30.0

    @property
    def num_dataset_views(self) -> int:
        """Views per state of :func:`dataset_rig`: one every ``dataset_azimuth_step_deg`` around (12 by default)."""
        return round(360.0 / self.dataset_azimuth_step_deg)


DEFAULT_RIG = RigConfig()


def canonical_rig(resolution: int, rig: RigConfig = DEFAULT_RIG) -> list[Camera]:
    """The model's 4 input views: azimuths 0/90/180/270 (+ offset) at one elevation."""
    return [orbit_camera(a + rig.canonical_azimuth_offset_deg, rig.canonical_elevation_deg, rig.radius,
                         rig.fov_deg, resolution, name=f"canonical{i}")
            for i, a in enumerate((0.0, 90.0, 180.0, 270.0))]


def dataset_rig(resolution: int, rig: RigConfig = DEFAULT_RIG) -> list[Camera]:
    """``rig.num_dataset_views`` views per state (12 by default): an azimuth every step, elevations alternating."""
    return [orbit_camera(i * rig.dataset_azimuth_step_deg, rig.dataset_elevations_deg[i % 2], rig.radius,
                         rig.fov_deg, resolution, name=f"dataset{i}") for i in range(rig.num_dataset_views)]


def evaluation_view_indices(rig: RigConfig = DEFAULT_RIG, count: int = 8) -> list[int]:
    """Indices into :func:`dataset_rig` of the ``count`` views farthest in azimuth from any input view.

    With the default rig these are the 8 views whose azimuth is not a multiple of 90 degrees.
    """
    n = rig.num_dataset_views
    inputs = [(a + rig.canonical_azimuth_offset_deg) % 360.0 for a in (0.0, 90.0, 180.0, 270.0)]

    def gap(i: int) -> float:
        a = i * rig.dataset_azimuth_step_deg
        return min(min(abs(a - b) % 360.0, 360.0 - abs(a - b) % 360.0) for b in inputs)

    farthest = sorted(range(n), key=lambda i: (-round(gap(i), 6), i))[:count]
    return sorted(farthest)


def evaluation_rig(resolution: int, rig: RigConfig = DEFAULT_RIG) -> list[Camera]:
    """The 8 held-out views used for scoring: dataset views not at an input azimuth."""
    views = dataset_rig(resolution, rig)
    return [views[i] for i in evaluation_view_indices(rig)]


def plucker_rays(camera: Camera) -> torch.Tensor:
    """Plücker embedding (6, H, W) = (o × d, d) per pixel, as in LGM."""
    import torch

    o, d = camera.rays()
    m = np.cross(o, d)
    return torch.from_numpy(np.concatenate([m, d], axis=-1).transpose(2, 0, 1).astype(np.float32))


def stack_cameras(cameras: Sequence[Camera], device: torch.device | str = "cpu",
                  dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(viewmats (C, 4, 4), Ks (C, 3, 3)) tensors for the rasterizers (``dtype`` default float32)."""
    import torch

    dtype = torch.float32 if dtype is None else dtype
    if len(cameras) == 0:
        raise ValueError("stack_cameras needs at least one camera")
    viewmats = torch.tensor(np.stack([c.world_to_cam for c in cameras]), dtype=dtype, device=device)
    Ks = torch.tensor(np.stack([c.K for c in cameras]), dtype=dtype, device=device)
    return viewmats, Ks
