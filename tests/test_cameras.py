import math

import numpy as np
import pytest

from partrm_gym.cameras import (
    DEFAULT_RIG,
    Camera,
    canonical_rig,
    dataset_rig,
    evaluation_rig,
    evaluation_view_indices,
    look_at,
    orbit_camera,
    plucker_rays,
)


def test_project_backproject_round_trip(rng):
    cam = orbit_camera(37.0, 25.0, 1.5, 49.1, (96, 64))
    uv = rng.uniform(0, [96, 64], size=(100, 2))
    depth = rng.uniform(0.5, 3.0, size=100)
    uv2, z2 = cam.project(cam.backproject(uv, depth))
    np.testing.assert_allclose(uv2, uv, atol=1e-9)
    np.testing.assert_allclose(z2, depth, atol=1e-9)


@pytest.mark.parametrize("rig", [canonical_rig, dataset_rig, evaluation_rig])
def test_rigs_look_at_origin(rig):
    for cam in rig(64):
        uv, z = cam.project(np.zeros(3))
        np.testing.assert_allclose(uv, [32.0, 32.0], atol=1e-9)  # origin at the image centre
        assert z == pytest.approx(DEFAULT_RIG.radius)
        assert np.linalg.norm(cam.center) == pytest.approx(DEFAULT_RIG.radius)
        assert cam.fov_y_deg == pytest.approx(DEFAULT_RIG.fov_deg)


def test_opencv_axes_and_orbit_convention():
    cam = orbit_camera(0.0, 0.0, 2.0, 60.0, 64)
    np.testing.assert_allclose(cam.center, [2.0, 0.0, 0.0], atol=1e-12)
    # z up in the world is "up" in the image: smaller v.
    (u_up, v_up), _ = cam.project(np.array([0.0, 0.0, 0.3]))
    assert v_up < 32.0 and u_up == pytest.approx(32.0)
    # seen from +x, +y is on the right of the image.
    (u_right, _), _ = cam.project(np.array([0.0, 0.3, 0.0]))
    assert u_right > 32.0
    # azimuth grows counter-clockwise seen from +z: 90 degrees puts the camera on +y.
    np.testing.assert_allclose(orbit_camera(90.0, 0.0, 2.0, 60.0, 64).center, [0.0, 2.0, 0.0], atol=1e-12)


def test_rig_sizes_and_evaluation_views_differ_from_inputs():
    assert len(canonical_rig(32)) == 4 and len(dataset_rig(32)) == 12
    idx = evaluation_view_indices()
    assert len(idx) == 8 and idx == sorted(set(idx))
    inputs = {round(math.degrees(math.atan2(c.center[1], c.center[0]))) % 360 for c in canonical_rig(32)}
    for cam in evaluation_rig(32):
        az = round(math.degrees(math.atan2(cam.center[1], cam.center[0]))) % 360
        assert az not in inputs


def test_plucker_matches_ray_directions():
    cam = orbit_camera(120.0, 30.0, 1.5, 49.1, 16)
    pl = plucker_rays(cam).numpy().transpose(1, 2, 0)
    o, d = cam.rays()
    np.testing.assert_allclose(pl[..., 3:], d, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(pl[..., 3:], axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(pl[..., :3], np.cross(o, d), atol=1e-6)
    # each ray passes through the world point back-projected from its pixel centre
    pts = cam.backproject(cam.pixel_grid(), np.full((16, 16), 0.7))
    np.testing.assert_allclose(np.cross(pts - o, d), 0.0, atol=1e-9)


def test_bad_cameras_rejected():
    with pytest.raises(ValueError, match="NaN"):
        Camera(np.full((3, 3), np.nan), np.eye(4), 8, 8)
    with pytest.raises(ValueError, match="3x3"):
        Camera(np.eye(4), np.eye(4), 8, 8)
    with pytest.raises(ValueError, match="parallel"):
        look_at((0, 0, 2))
    with pytest.raises(ValueError, match="elevation"):
        orbit_camera(0, 90, 1.5, 49.1, 8)


def test_resized_keeps_projection_consistent():
    cam = orbit_camera(10, 20, 1.5, 49.1, 64)
    small = cam.resized(32, 32)
    p = np.array([[0.1, -0.2, 0.3]])
    np.testing.assert_allclose(small.project(p)[0], cam.project(p)[0] / 2, atol=1e-9)


def test_pixel_index_is_floor_clamped_at_every_border():
    from partrm_gym.cameras import pixel_index

    uv = np.array([[0.0, 0.0], [0.999, 0.5], [1.0, 1.0], [3.999, 2.999], [4.0, 3.0], [-0.2, -5.0], [1e9, -1e9]])
    rows, cols = pixel_index(uv, width=4, height=3)
    assert cols.tolist() == [0, 0, 1, 3, 3, 0, 3] and rows.tolist() == [0, 0, 1, 2, 2, 0, 0]
    assert rows.dtype == np.int64 and pixel_index(np.array([2.5, 1.5]), 4, 3) == (1, 2)  # one point, scalars
