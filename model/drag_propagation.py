"""From one user drag in any camera to the model's per-view drags.

1. Propagation (the paper's "drag propagation"): the part under the drag start is segmented,
   points are sampled inside its mask and each gets the user's displacement — one drag on
   a handle says how the whole part moves.
2. Transfer: each drag is lifted to 3D with the depth of the observation view, moved in the
   camera plane (constant camera depth), and its start and end are projected into the 4
   canonical input views; only starts visible there (depth test) are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from partrm_gym.cameras import Camera
from partrm_gym.drags import pad_drags, to_normalised, to_pixels, validate_drags
from partrm_gym.model.segmenters import Segmenter

VISIBILITY_TOLERANCE = 0.02  # metres: a start whose depth differs more from the view's is not what it shows


def propagate_drag(drag: np.ndarray, mask: np.ndarray, max_drags: int, rng: np.random.Generator) -> np.ndarray:
    """The user's drag plus up to ``max_drags - 1`` drags from random mask pixels, same displacement."""
    d = validate_drags(drag)[0]
    h, w = mask.shape
    rows, cols = np.nonzero(mask)
    out = [d]
    if len(rows) and max_drags > 1:
        pick = rng.choice(len(rows), size=min(max_drags - 1, len(rows)), replace=False)
        starts = np.stack([(cols[pick] + 0.5) / w, (rows[pick] + 0.5) / h], axis=1)
        ends = np.clip(starts + (d[2:] - d[:2]), 0.0, 1.0)
        out += list(np.concatenate([starts, ends], axis=1))
    return np.asarray(out, dtype=np.float64)


def lift_drags(drags: np.ndarray, camera: Camera, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3D starts and ends of drags (N, 4) in ``camera`` with its depth map; plus which starts hit a surface."""
    d = validate_drags(drags)
    uv0, uv1 = to_pixels(d[:, :2], camera), to_pixels(d[:, 2:], camera)
    rows, cols = camera.pixel_index(uv0)
    z = depth[rows, cols].astype(np.float64)
    hit = np.isfinite(z) & (z > 0)
    z = np.where(hit, z, 0.0)
    return camera.backproject(uv0, z), camera.backproject(uv1, z), hit


def transfer_drags(drags: np.ndarray, camera: Camera, depth: np.ndarray, views: Sequence[Camera],
                   view_depths: Sequence[np.ndarray] | None, max_drags: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-view padded drags (V, max_drags, 4) and mask (V, max_drags) in the canonical ``views``.

    ``view_depths`` (each (H, W) for its view; ``inf`` where empty) enable the visibility test;
    with None, every start that projects inside a view is kept.
    """
    starts, ends, hit = lift_drags(drags, camera, depth)
    starts, ends = starts[hit], ends[hit]
    all_d, all_m = [], []
    for v, cam in enumerate(views):
        uv0, z0 = cam.project(starts)
        uv1, z1 = cam.project(ends)
        ok = (z0 > 0) & (z1 > 0) & (uv0[:, 0] >= 0) & (uv0[:, 0] < cam.width) & (uv0[:, 1] >= 0) & \
            (uv0[:, 1] < cam.height)
        if view_depths is not None and ok.any():
            rows, cols = cam.pixel_index(uv0)
            # two-sided: behind the surface is occluded, in front of it (e.g. at a silhouette) misses
            ok &= np.abs(z0 - view_depths[v][rows, cols]) <= VISIBILITY_TOLERANCE
        d = np.concatenate([to_normalised(uv0[ok], cam), np.clip(to_normalised(uv1[ok], cam), 0.0, 1.0)], axis=1)
        padded, mask = pad_drags(d, max_drags)
        all_d.append(padded)
        all_m.append(mask)
    return np.stack(all_d), np.stack(all_m)


def starts_on_surface(drag: np.ndarray, camera: Camera, depth: np.ndarray) -> bool:
    """Whether the drag's start pixel shows a surface (finite depth) in ``camera``."""
    return bool(np.isfinite(depth[camera.pixel_index(to_pixels(validate_drags(drag)[0, :2], camera))]))


def drags_for_model(drag: np.ndarray, image: np.ndarray, camera: Camera, depth: np.ndarray,
                    segmenter: Segmenter, views: Sequence[Camera], view_depths: Sequence[np.ndarray] | None,
                    max_drags: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Segment, propagate and transfer one user drag; returns the model's (V, max_drags, 4) drags and mask.

    A drag that starts off the surface (``depth`` infinite there) grabs nothing: all-False mask.
    The part mask is limited to pixels with a surface, so no propagated drag starts in the air.
    """
    d = validate_drags(drag)[0]
    if not starts_on_surface(d, camera, depth):
        return np.zeros((len(views), max_drags, 4), np.float32), np.zeros((len(views), max_drags), bool)
    start_px = tuple(to_pixels(d[:2], camera))
    mask = segmenter.segment(image, start_px) & np.isfinite(depth)  # type: ignore[arg-type]
    return transfer_drags(propagate_drag(d, mask, max_drags, rng), camera, depth, views, view_depths, max_drags)
