"""Ground-truth splatter images: the simulator's canonical views lifted to Gaussians.

Each foreground pixel of each canonical view becomes one Gaussian at its back-projected
depth, with the pixel's colour and opacity 1; background pixels get opacity 0. Each
Gaussian is a flat disc lying in the surface (normal from the depth map): as wide as the
pixel's footprint on the surface, thin along the normal, so a view from another angle sees
a surface rather than a cloud of blobs. This is what a perfect reconstruction from those 4
views could produce, hence the upper bound of the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from partrm_gym.cameras import Camera
from partrm_gym.gaussians import OPACITY, RGB, ROTATION, SCALE, SPLATTER_CHANNELS, XYZ
from partrm_gym.scene import Scene, SimFrame

FOOTPRINT_SIGMA = 0.25  # disc std as a fraction of the pixel footprint (smallest tried that keeps surfaces closed)
THICKNESS = 0.1  # disc std along the normal, as a fraction of its in-plane std
MIN_COS = 0.25  # grazing surfaces: footprint stretch capped at 1 / MIN_COS
EDGE_DEPTH_JUMP = 0.02  # metres: neighbours farther apart than this are on another surface


def surface_normals(points: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Unit normals (H, W, 3) from back-projected points by central differences within one surface;
    NaN where no neighbour pair is usable."""
    H, W, _ = points.shape
    pad = np.pad(points, ((1, 1), (1, 1), (0, 0)), mode="edge")
    vpad = np.pad(valid, 1, mode="constant")

    def diff(a: tuple[slice, slice], b: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        d = pad[a] - pad[b]
        ok = vpad[a] & vpad[b] & (np.linalg.norm(d, axis=-1) < EDGE_DEPTH_JUMP)
        return d, ok

    c = (slice(1, H + 1), slice(1, W + 1))
    right, ok_r = diff((slice(1, H + 1), slice(2, W + 2)), c)
    left, ok_l = diff(c, (slice(1, H + 1), slice(0, W)))
    down, ok_d = diff((slice(2, H + 2), slice(1, W + 1)), c)
    up, ok_u = diff(c, (slice(0, H), slice(1, W + 1)))
    dx = np.where(ok_r[..., None], right, left)
    dy = np.where(ok_d[..., None], down, up)
    n = np.cross(dx, dy)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    good = (ok_r | ok_l) & (ok_d | ok_u) & (norm[..., 0] > 1e-12)
    return np.where(good[..., None], n / np.maximum(norm, 1e-12), np.nan)


def quat_from_z_to(n: np.ndarray) -> np.ndarray:
    """wxyz quaternions rotating +z onto unit vectors ``n`` (…, 3) by the shortest arc."""
    w = 1.0 + n[..., 2]
    q = np.stack([w, -n[..., 1], n[..., 0], np.zeros_like(w)], axis=-1)
    flip = w < 1e-6  # n = -z: half a turn about x
    q[flip] = (0.0, 1.0, 0.0, 0.0)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def splatter_from_view(rgb: np.ndarray, depth: np.ndarray, mask: np.ndarray, camera: Camera,
                       footprint_sigma: float = FOOTPRINT_SIGMA) -> np.ndarray:
    """One view's splatter image (14, H, W) from RGB uint8, z-depth (metres) and a foreground mask."""
    H, W = depth.shape
    if (camera.height, camera.width) != (H, W) or rgb.shape[:2] != (H, W) or mask.shape != (H, W):
        raise ValueError(f"splatter_from_view: camera {camera.width}x{camera.height}, rgb {rgb.shape}, "
                         f"depth {depth.shape}, mask {mask.shape} must agree")
    on = mask & np.isfinite(depth)
    z = np.where(on, depth, 0.0).astype(np.float64)
    xyz = camera.backproject(camera.pixel_grid(), z)
    _, rays = camera.rays()
    normals = surface_normals(xyz, on)
    flat = np.isfinite(normals[..., 0])
    normals = np.where(flat[..., None], normals, -rays)  # no usable neighbours: face the camera
    normals *= -np.sign(np.sum(normals * rays, axis=-1, keepdims=True) + 1e-12)  # towards the camera
    cos = np.clip(np.abs(np.sum(normals * rays, axis=-1)), MIN_COS, 1.0)
    focal = 0.5 * (camera.K[0, 0] + camera.K[1, 1])
    s = footprint_sigma * z / focal / cos
    out = np.zeros((SPLATTER_CHANNELS, H, W), dtype=np.float32)
    out[XYZ] = np.where(on, xyz.transpose(2, 0, 1), 0.0)
    out[OPACITY] = on
    out[SCALE] = np.where(on, np.stack([s, s, THICKNESS * s]), 1e-4)
    out[ROTATION] = np.where(on, quat_from_z_to(normals).transpose(2, 0, 1), np.array([1.0, 0, 0, 0])[:, None, None])
    out[RGB] = np.where(on, rgb.astype(np.float32).transpose(2, 0, 1) / 255.0, 0.0)
    return out


def splatter_from_frames(frames: Sequence[SimFrame], cameras: Sequence[Camera]) -> np.ndarray:
    """Splatter image (V, 14, H, W) from simulator frames of the canonical views."""
    return np.stack([splatter_from_view(f.rgb, f.depth, f.object_mask, c) for f, c in zip(frames, cameras)])


def gt_splatter(scene: Scene, cameras: Sequence[Camera]) -> np.ndarray:
    """The current state's GT splatter image (V, 14, H, W), one view per camera."""
    return splatter_from_frames(scene.render_views(list(cameras)), cameras)
