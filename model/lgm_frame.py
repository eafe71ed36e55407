"""LGM's conventions, mapped once: its world frame, input normalisation, Plücker rays and drag pixels.

The project's world is metres, z up, azimuth 0 on +x and counter-clockwise seen from +z, OpenCV cameras
(docs/conventions.md). LGM's world is y up, azimuth 0 on +z and 90 on +x, the object inside [-1, 1]³, OpenGL
cameras on a sphere of radius ``cam_radius``. A point maps as

    p_lgm = s · R · p_project,   R = [[0, 1, 0],    LGM x = project y
                                      [0, 0, 1],    LGM y = project z
                                      [1, 0, 0]],   LGM z = project x

R is a proper rotation (det +1: 120° about (1, 1, 1)), so orientations map as rotations too, and
s = lgm_cam_radius / rig_radius puts the project's input cameras exactly where LGM's are. OpenCV and OpenGL
cameras at one pose see the same ray through a pixel, so LGM's rays are the project's rays, mapped.

Everything here is a pure function of tensors; the lgm-layout network (model/lgm_network.py) calls it on the
way in (RGB, rays) and on the way out (Gaussians), so the rest of the project never sees LGM's frame.
"""

from __future__ import annotations

import numpy as np
import torch

from partrm_gym.cameras import Camera

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# rows: LGM's x, y, z axes in project coordinates
PROJECT_TO_LGM = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
# the rotation LGM -> project (PROJECT_TO_LGM transposed) as a unit quaternion wxyz: 120° about (1, 1, 1)
LGM_TO_PROJECT_QUAT = (0.5, 0.5, 0.5, 0.5)
# PartRM's released drags are pixel coordinates of its 512² renders, whatever the network's input size
RELEASED_DRAG_FRAME = 512


def frame_scale(rig_radius: float, lgm_cam_radius: float) -> float:
    """s of p_lgm = s · R · p: the project's input cameras (at rig_radius) land at LGM's (at lgm_cam_radius)."""
    return lgm_cam_radius / rig_radius


def _rotate(x: torch.Tensor, matrix: np.ndarray, dim: int) -> torch.Tensor:
    """Apply a 3×3 matrix to the 3-vectors along ``dim`` of ``x``."""
    m = torch.as_tensor(matrix, dtype=x.dtype, device=x.device)
    return (x.movedim(dim, -1) @ m.T).movedim(-1, dim)


def points_to_lgm(points: torch.Tensor, scale: float, dim: int = -1) -> torch.Tensor:
    """Project points (metres) -> LGM points; the 3 coordinates along ``dim``."""
    return _rotate(points, PROJECT_TO_LGM, dim) * scale


def points_from_lgm(points: torch.Tensor, scale: float, dim: int = -1) -> torch.Tensor:
    """LGM points -> project points (metres); the inverse of :func:`points_to_lgm`."""
    return _rotate(points, PROJECT_TO_LGM.T, dim) / scale


def quat_multiply(a: torch.Tensor, b: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Hamilton product a ⊗ b of wxyz quaternions along ``dim`` (the rotation b, then a)."""
    aw, ax, ay, az = a.unbind(dim)
    bw, bx, by, bz = b.unbind(dim)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz,
                        aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw], dim=dim)


def _frame_quat(like: torch.Tensor, dim: int, inverse: bool) -> torch.Tensor:
    w, x, y, z = LGM_TO_PROJECT_QUAT
    q = torch.tensor([w, -x, -y, -z] if inverse else [w, x, y, z], dtype=like.dtype, device=like.device)
    shape = [1] * like.ndim
    shape[dim] = 4
    return q.reshape(shape)


def quats_from_lgm(quats: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """A Gaussian's rotation (wxyz, local -> LGM world) -> local -> project world: q(Rᵀ) ⊗ q."""
    return quat_multiply(_frame_quat(quats, dim, inverse=False).expand_as(quats), quats, dim)


def quats_to_lgm(quats: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The inverse of :func:`quats_from_lgm`: q(R) ⊗ q."""
    return quat_multiply(_frame_quat(quats, dim, inverse=True).expand_as(quats), quats, dim)


def splatter_from_lgm(splatter: torch.Tensor, scale: float) -> torch.Tensor:
    """Activated LGM-frame splatter images (B, V, 14, h, w) -> the project's frame: means and scales in metres,
    rotations mapped; opacity and colour unchanged. Channel layout as partrm_gym.gaussians (LGM's too)."""
    return torch.cat([points_from_lgm(splatter[:, :, 0:3], scale, dim=2), splatter[:, :, 3:4],
                      splatter[:, :, 4:7] / scale, quats_from_lgm(splatter[:, :, 7:11], dim=2),
                      splatter[:, :, 11:14]], dim=2)


def splatter_to_lgm(splatter: torch.Tensor, scale: float) -> torch.Tensor:
    """The inverse of :func:`splatter_from_lgm` (project -> LGM frame)."""
    return torch.cat([points_to_lgm(splatter[:, :, 0:3], scale, dim=2), splatter[:, :, 3:4],
                      splatter[:, :, 4:7] * scale, quats_to_lgm(splatter[:, :, 7:11], dim=2),
                      splatter[:, :, 11:14]], dim=2)


def plucker_to_lgm(plucker: torch.Tensor, scale: float, dim: int = -3) -> torch.Tensor:
    """The project's Plücker rays (o × d, d) -> LGM's: o' = sRo, d' = Rd, so o' × d' = sR(o × d) (R proper).
    ``plucker`` has its 6 channels along ``dim`` (channels first by default: (…, 6, H, W))."""
    moment, direction = plucker.split(3, dim=dim)
    return torch.cat([_rotate(moment, PROJECT_TO_LGM, dim) * scale, _rotate(direction, PROJECT_TO_LGM, dim)], dim=dim)


def lgm_plucker_rays(camera: Camera, scale: float) -> torch.Tensor:
    """LGM's ray channels (6, H, W) for a project camera, computed from its rays in float64."""
    o, d = camera.rays()  # (H, W, 3) each, project frame
    o, d = scale * o @ PROJECT_TO_LGM.T, d @ PROJECT_TO_LGM.T
    return torch.from_numpy(np.concatenate([np.cross(o, d), d], axis=-1).transpose(2, 0, 1).astype(np.float32))


def normalise_rgb(images: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """RGB in [0, 1] (white background) -> LGM's input: ImageNet mean and std per channel along ``dim``."""
    shape = [1] * images.ndim
    shape[dim] = 3
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device).reshape(shape)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device).reshape(shape)
    return (images - mean) / std


def released_drag_pixels(drags: torch.Tensor) -> torch.Tensor:
    """The project's drags (…, 4) = (x0, y0, x1, y1) normalised to [0, 1] of their view (x along the width) ->
    PartRM's released drag coordinates (…, 4), pixels of its 512² renders.

    PartRM's data code projects a 3D point to OpenGL NDC and returns ``512 - ((ndc + 1)·512 - 1) / 2`` per axis, with
    the x axis of NDC negated by its camera matrix; both reduce to ``512·u + 0.5`` for the coordinate u ∈ [0, 1]
    measured from the image's left (x) or top (y) edge; the result is clamped to [0, 511]. The first coordinate
    of each point is x (along the width), as here. docs/lgm.md has the derivation."""
    return (drags * RELEASED_DRAG_FRAME + 0.5).clamp(0, RELEASED_DRAG_FRAME - 1)
