"""Ground-truth splatter images: the simulator's canonical views lifted to Gaussians.

Each foreground pixel of each canonical view becomes one Gaussian at its back-projected
depth, with the pixel's colour, opacity 1, identity rotation and an isotropic scale of a
fraction of the pixel footprint; background pixels get opacity 0. This is what a perfect
reconstruction from those 4 views could produce, hence the upper bound of the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from partrm_gym.cameras import Camera
from partrm_gym.gaussians import OPACITY, RGB, ROTATION, SCALE, SPLATTER_CHANNELS, XYZ
from partrm_gym.scene import Scene, SimFrame

FOOTPRINT_SIGMA = 0.6  # Gaussian std as a fraction of the pixel footprint: covers the pixel, little bleeding


def splatter_from_view(rgb: np.ndarray, depth: np.ndarray, mask: np.ndarray, camera: Camera,
                       footprint_sigma: float = FOOTPRINT_SIGMA) -> np.ndarray:
    """One view's splatter image (14, H, W) from RGB uint8, z-depth (metres) and a foreground mask."""
    H, W = depth.shape
    if (camera.height, camera.width) != (H, W) or rgb.shape[:2] != (H, W) or mask.shape != (H, W):
        raise ValueError(f"splatter_from_view: camera {camera.width}x{camera.height}, rgb {rgb.shape}, "
                         f"depth {depth.shape}, mask {mask.shape} must agree")
    on = mask & np.isfinite(depth)
    z = np.where(on, depth, 0.0).astype(np.float64)
    out = np.zeros((SPLATTER_CHANNELS, H, W), dtype=np.float32)
    xyz = camera.backproject(camera.pixel_grid(), z)
    out[XYZ] = np.where(on, xyz.transpose(2, 0, 1), 0.0)
    out[OPACITY] = on
    focal = 0.5 * (camera.K[0, 0] + camera.K[1, 1])
    out[SCALE] = np.where(on, footprint_sigma * z / focal, 1e-4)[None]
    out[ROTATION.start] = 1.0  # wxyz identity
    out[RGB] = np.where(on, rgb.astype(np.float32).transpose(2, 0, 1) / 255.0, 0.0)
    return out


def splatter_from_frames(frames: Sequence[SimFrame], cameras: Sequence[Camera]) -> np.ndarray:
    """Splatter image (V, 14, H, W) from simulator frames of the canonical views."""
    return np.stack([splatter_from_view(f.rgb, f.depth, f.object_mask, c) for f, c in zip(frames, cameras)])


def gt_splatter(scene: Scene, cameras: Sequence[Camera]) -> np.ndarray:
    """The current state's GT splatter image (V, 14, H, W), one view per camera."""
    return splatter_from_frames(scene.render_views(list(cameras)), cameras)
