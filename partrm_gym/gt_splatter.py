"""Ground-truth splatter images: the simulator's canonical views lifted to Gaussians.

Each foreground pixel of each canonical view becomes one Gaussian at its back-projected
depth, with the pixel's colour and opacity 1; background pixels get opacity 0. Each
Gaussian is a flat disc lying in the surface (normal from the depth map): as wide as the
pixel's footprint on the surface, thin along the normal, so a view from another angle sees
a surface rather than a cloud of blobs.

Back-projection alone does not reproduce its own views: 3DGS rendering dilates every
Gaussian by 0.3 px² and a pixel-wide Gaussian per pixel blurs colour edges (23.8 dB on the
canonical foreground at 64²). So the colours and per-axis sizes are then fitted, a few Adam
steps as in 3DGS optimisation, to the 4 canonical images (:func:`fit_splatter`); positions,
orientations and opacities stay those of the back-projection. The result is the best
reconstruction from those 4 views we know how to build, hence the upper bound of the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from partrm_gym.cameras import Camera, stack_cameras
from partrm_gym.gaussians import FOOTPRINT_SIGMA, OPACITY, RGB, ROTATION, SCALE, SPLATTER_CHANNELS, XYZ, Gaussians
from partrm_gym.photometric_fit import PhotometricFit, fit_gaussians
from partrm_gym.scene import Scene, SimFrame

THICKNESS = 0.1  # disc std along the normal, as a fraction of its in-plane std
MIN_COS = 0.5  # grazing surfaces: footprint stretch along the tilt capped at 1 / MIN_COS (0.25 was worse)
SAME_SURFACE_STEP = 1.5  # neighbours farther apart than this many (stretched) pixel footprints: another surface


@dataclass(frozen=True)
class SplatterFit:
    """How long the back-projected splatter is fitted to its views (``steps=0``: back-projection only).

    30 Adam steps at 0.1 (on colour logits and bounded log-sizes) take ~0.4 s per state at
    data/default's sizes and raise the canonical foreground PSNR at 64² from 23.8 to 32.6 dB and
    the evaluation views from 25.8 to 27.2 dB (``partrm-gym bench gt-splatter``); longer fits
    overfit the 4 views (unbounded sizes, 8 categories: evaluation PSNR 27.0 dB after 10 steps,
    26.5 after 40, while the canonical one rose from 29.0 to 34.1).
    """

    steps: int = 30
    lr: float = 0.1
    max_scale_factor: float = 3.0  # a fitted size stays within [1/f, f] x the pixel footprint

    def __post_init__(self) -> None:
        if self.steps < 0 or not self.lr > 0:
            raise ValueError(f"SplatterFit: steps must be >= 0 and lr > 0, got steps={self.steps}, lr={self.lr}")
        if not self.max_scale_factor > 1:
            raise ValueError(f"SplatterFit: max_scale_factor must be > 1, got {self.max_scale_factor}")


DEFAULT_FIT = SplatterFit()


def surface_normals(points: np.ndarray, valid: np.ndarray, max_step: np.ndarray | float) -> np.ndarray:
    """Unit normals (H, W, 3) from back-projected points; NaN where no neighbour pair is usable.

    Along each image axis the shorter of the two one-sided differences is used, so a pixel at
    a depth edge takes its tangent from its own surface; a neighbour more than ``max_step``
    (per pixel, metres) away is on another surface.
    """
    H, W, _ = points.shape
    pad = np.pad(points, ((1, 1), (1, 1), (0, 0)), mode="edge")
    vpad = np.pad(valid, 1, mode="constant")
    c = (slice(1, H + 1), slice(1, W + 1))

    def tangent(a: tuple[slice, slice], b: tuple[slice, slice], a2: tuple[slice, slice], b2: tuple[slice, slice]
                ) -> tuple[np.ndarray, np.ndarray]:
        d1, d2 = pad[a] - pad[b], pad[a2] - pad[b2]
        n1, n2 = np.linalg.norm(d1, axis=-1), np.linalg.norm(d2, axis=-1)
        n1 = np.where(vpad[a] & vpad[b], n1, np.inf)
        n2 = np.where(vpad[a2] & vpad[b2], n2, np.inf)
        first = n1 <= n2
        return np.where(first[..., None], d1, d2), np.minimum(n1, n2) < max_step

    dx, ok_x = tangent((slice(1, H + 1), slice(2, W + 2)), c, c, (slice(1, H + 1), slice(0, W)))
    dy, ok_y = tangent((slice(2, H + 2), slice(1, W + 1)), c, c, (slice(0, H), slice(1, W + 1)))
    n = np.cross(dx, dy)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    good = ok_x & ok_y & (norm[..., 0] > 1e-12)
    return np.where(good[..., None], n / np.maximum(norm, 1e-12), np.nan)


def quat_from_matrix(R: np.ndarray) -> np.ndarray:
    """wxyz unit quaternions of rotation matrices ``R`` (…, 3, 3), by the largest-pivot branch."""
    m = R.reshape(-1, 3, 3)
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    diag = np.stack([trace, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], axis=1)
    pivot = np.argmax(diag, axis=1)
    q = np.empty((len(m), 4))
    for k in range(4):
        i = pivot == k
        if not i.any():
            continue
        r = m[i]
        if k == 0:
            w = np.sqrt(1.0 + trace[i]) / 2
            q[i] = np.stack([w, (r[:, 2, 1] - r[:, 1, 2]) / (4 * w), (r[:, 0, 2] - r[:, 2, 0]) / (4 * w),
                             (r[:, 1, 0] - r[:, 0, 1]) / (4 * w)], axis=1)
        else:  # the k-th axis component is the largest
            a, b, c = k - 1, k % 3, (k + 1) % 3
            t = np.sqrt(1.0 + r[:, a, a] - r[:, b, b] - r[:, c, c]) / 2
            comp = np.empty((i.sum(), 4))
            comp[:, 0] = (r[:, c, b] - r[:, b, c]) / (4 * t)
            comp[:, 1 + a] = t
            comp[:, 1 + b] = (r[:, b, a] + r[:, a, b]) / (4 * t)
            comp[:, 1 + c] = (r[:, c, a] + r[:, a, c]) / (4 * t)
            q[i] = comp
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q.reshape(*R.shape[:-2], 4)


def footprint_frames(normals: np.ndarray, rays: np.ndarray) -> np.ndarray:
    """Rotations (…, 3, 3) whose columns are the tilt direction, the other in-plane direction and the normal.

    A pixel's footprint on a surface tilted against the ray is stretched by 1/cos only along
    the tilt direction (the ray projected into the plane); across it, it keeps the pixel's width.
    """
    tilt = rays - np.sum(rays * normals, axis=-1, keepdims=True) * normals
    length = np.linalg.norm(tilt, axis=-1, keepdims=True)
    # facing the camera: any in-plane direction will do; take one orthogonal to the normal
    helper = np.where(np.abs(normals[..., :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    fallback = np.cross(normals, helper)
    tilt = np.where(length > 1e-6, tilt / np.maximum(length, 1e-12), fallback)
    tilt /= np.linalg.norm(tilt, axis=-1, keepdims=True)
    across = np.cross(normals, tilt)
    return np.stack([tilt, across, normals], axis=-1)


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
    focal = 0.5 * (camera.K[0, 0] + camera.K[1, 1])
    normals = surface_normals(xyz, on, max_step=SAME_SURFACE_STEP / MIN_COS * z / focal)
    flat = np.isfinite(normals[..., 0])
    normals = np.where(flat[..., None], normals, -rays)  # no usable neighbours: face the camera
    normals *= -np.sign(np.sum(normals * rays, axis=-1, keepdims=True) + 1e-12)  # towards the camera
    cos = np.clip(np.abs(np.sum(normals * rays, axis=-1)), MIN_COS, 1.0)
    s = footprint_sigma * z / focal
    out = np.zeros((SPLATTER_CHANNELS, H, W), dtype=np.float32)
    out[XYZ] = np.where(on, xyz.transpose(2, 0, 1), 0.0)
    out[OPACITY] = on
    out[SCALE] = np.where(on, np.stack([s / cos, s, THICKNESS * s]), 1e-4)
    quats = quat_from_matrix(footprint_frames(normals, rays)).transpose(2, 0, 1)
    out[ROTATION] = np.where(on, quats, np.array([1.0, 0, 0, 0])[:, None, None])
    out[RGB] = np.where(on, rgb.astype(np.float32).transpose(2, 0, 1) / 255.0, 0.0)
    return out


def splatter_from_frames(frames: Sequence[SimFrame], cameras: Sequence[Camera]) -> np.ndarray:
    """Back-projected splatter image (V, 14, H, W) from simulator frames of the canonical views."""
    return np.stack([splatter_from_view(f.rgb, f.depth, f.object_mask, c) for f, c in zip(frames, cameras)])


def fit_splatter(splatter: np.ndarray, images: np.ndarray, cameras: Sequence[Camera],
                 fit: SplatterFit = DEFAULT_FIT) -> np.ndarray:
    """Fit the colours and per-axis scales of splatter images so that their renders into ``cameras``
    match ``images``; the images may be finer than the splatter.

    Args:
        splatter: one state's splatter image ``# [V, 14, h, w]``, or a batch of states ``# [B, V, 14, h, w]``.
        images: the simulator's uint8 RGB in ``cameras``, ``# [C, H, W, 3]`` (or ``# [B, C, H, W, 3]``).
        cameras: the C cameras of ``images``.

    Returns the fitted splatter, the shape of ``splatter``. A batch is fitted in one optimisation whose
    loss is the sum of the states' own mean squared errors, so each state gets the gradients (and,
    up to float rounding, the result) of fitting it alone; the datasets batch the states of one part,
    which makes the fit about 1.5x faster per state than one state at a time on a 2-core CPU.
    """
    single = splatter.ndim == 4
    if single:
        splatter, images = splatter[None], images[None]
    if images.dtype != np.uint8:
        raise ValueError(f"fit_splatter: images must be uint8 RGB (as the simulator renders them), got {images.dtype}")
    if splatter.ndim != 5 or images.shape != (len(splatter), len(cameras), cameras[0].height, cameras[0].width, 3):
        raise ValueError(f"fit_splatter: images {images.shape[int(single):]} do not match {len(cameras)} cameras of "
                         f"{cameras[0].width}x{cameras[0].height} (and one image set per splatter state)")
    if fit.steps == 0:
        return splatter[0] if single else splatter
    base = torch.from_numpy(splatter).float()
    fixed = Gaussians.from_splatter(base)  # positions, orientations and opacities are not fitted
    target = torch.from_numpy(images).float() / 255.0
    viewmats, Ks = stack_cameras(list(cameras))
    fitted = fit_gaussians(fixed, viewmats, Ks, target, PhotometricFit(fit.steps, fit.lr, fit.max_scale_factor),
                           active=fixed.opacities > 0)
    out = fitted.to_splatter(*base.shape[1:2], *base.shape[3:]).numpy().astype(splatter.dtype)
    return out[0] if single else out


def splatter_from_rgbd(images: np.ndarray, depths: np.ndarray, cameras: Sequence[Camera], size: int,
                       fit: SplatterFit = DEFAULT_FIT) -> np.ndarray:
    """The GT-splatter routine on camera data: a splatter image per view, back-projected from each view's depth at
    ``size``² and fitted to the views themselves (what an RGB-D camera gives instead of a simulator).

    Args:
        images: RGB of the views.  # [V, S, S, 3] uint8
        depths: camera-z depth of the views in world units, inf where there is none.  # [V, S, S]
        cameras: the V cameras of ``images`` (at S²).
        size: the splatter images' side (the model's output size: the result is pixel-aligned with its prediction).
        fit: the colour and size fit to ``images``.

    Returns:
        splatter images  # [V, 14, size, size]
    """
    import cv2

    small = [cam.resized(size, size) for cam in cameras]
    splatter = []
    for rgb, depth, cam in zip(images, depths, small):
        rgb_small = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        depth_small = cv2.resize(np.asarray(depth, np.float32), (size, size), interpolation=cv2.INTER_NEAREST)
        splatter.append(splatter_from_view(rgb_small, depth_small, np.isfinite(depth_small), cam))
    return fit_splatter(np.stack(splatter), np.asarray(images, np.uint8), cameras, fit)


def gt_splatter(scene: Scene, cameras: Sequence[Camera], fit: SplatterFit = DEFAULT_FIT,
                fit_cameras: Sequence[Camera] | None = None) -> np.ndarray:
    """The current state's GT splatter image (V, 14, H, W), one view per camera, fitted to the
    simulator's images in ``fit_cameras`` (default: ``cameras``; the dataset uses the model's
    input views, the same rig at the input resolution)."""
    frames = scene.render_views(list(cameras))
    splatter = splatter_from_frames(frames, cameras)
    if fit.steps == 0:
        return splatter
    targets = frames if fit_cameras is None else scene.render_views(list(fit_cameras))
    return fit_splatter(splatter, np.stack([f.rgb for f in targets]), fit_cameras or cameras, fit)
