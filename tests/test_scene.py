import numpy as np
import pytest

from partrm_gym.cameras import canonical_rig, orbit_camera
from partrm_gym.scene import NORMALISED_RADIUS, Scene, SceneError

STATES = (0.0, 0.5, 1.0)


def _points_of(frame, camera, mask):
    rows, cols = np.nonzero(mask)
    uv = np.stack([cols + 0.5, rows + 0.5], axis=1)
    return camera.backproject(uv, frame.depth[rows, cols].astype(np.float64))


def _link_aabb(scene, links):
    boxes = [np.asarray(scene.client.getAABB(scene.body, link)) for link in links]
    return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)


def test_every_category_renders_and_moving_part_is_visible(category_scene):
    scene = category_scene
    cams = canonical_rig(64)
    for k, joint in enumerate(scene.joints):
        for t in STATES:
            fractions = np.zeros(len(scene.joints))
            fractions[k] = t
            scene.set_joint_fractions(fractions)
            frames = scene.render_views(cams)
            assert all(f.rgb.shape == (64, 64, 3) and f.rgb.dtype == np.uint8 for f in frames)
            assert all(f.object_mask.sum() > 50 for f in frames), "object missing from a canonical view"
            visible = [int(f.part_mask(joint).sum()) for f in frames]
            assert max(visible) >= 10, f"{joint.name} at {t} not visible in any canonical view: {visible}"


def test_part_masks_lie_on_the_part(category_scene):
    """Back-projected mask pixels fall inside the part's own bounding box (a wrong mask or a
    wrong camera/depth convention would put them elsewhere)."""
    scene = category_scene
    scene.set_joint_fractions(np.full(len(scene.joints), 0.7))
    tol = 0.02  # PyBullet AABB margin + a pixel footprint at 64²
    for cam in canonical_rig(64):
        frame = scene.render(cam)
        for joint in scene.joints:
            mask = frame.part_mask(joint)
            if mask.sum() < 5:
                continue
            lo, hi = _link_aabb(scene, joint.moved_links)
            pts = _points_of(frame, cam, mask)
            inside = np.all((pts >= lo - tol) & (pts <= hi + tol), axis=1)
            assert inside.mean() > 0.98, f"{joint.name}: only {inside.mean():.2%} of mask pixels on the part"


def test_normalised_into_unit_sphere(category_scene):
    scene = category_scene
    for t in STATES:
        scene.set_joint_fractions(np.full(len(scene.joints), t))
        for link in range(-1, scene.client.getNumJoints(scene.body)):
            lo, hi = (np.asarray(v) for v in scene.client.getAABB(scene.body, link))
            corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
            assert np.linalg.norm(corners, axis=1).max() <= NORMALISED_RADIUS + 1e-6


def test_depth_is_metric_z():
    with Scene.procedural("laptop", 0) as scene:
        cam = orbit_camera(30, 25, 1.5, 49.1, 64)
        frame = scene.render(cam)
        pts = _points_of(frame, cam, frame.object_mask)
        assert np.linalg.norm(pts, axis=1).max() <= NORMALISED_RADIUS + 0.02
        assert np.isinf(frame.depth[~frame.object_mask]).all()
        # the reprojected points land on their own pixels
        rows, cols = np.nonzero(frame.object_mask)
        uv, _ = cam.project(pts)
        np.testing.assert_allclose(uv, np.stack([cols + 0.5, rows + 0.5], 1), atol=1e-6)


def test_joint_state_api_and_errors():
    with Scene.procedural("drawer", 2) as scene:
        n = len(scene.joints)
        target = np.array([j.lower + 0.3 * j.range for j in scene.joints])
        scene.set_joint_states(target)
        np.testing.assert_allclose(scene.get_joint_states(), target)
        scene.set_joint_states(target + 100.0)  # clamped by default
        np.testing.assert_allclose(scene.get_joint_states(), [j.upper for j in scene.joints])
        with pytest.raises(SceneError, match="outside its limits"):
            scene.set_joint_states(target + 100.0, clamp=False)
        with pytest.raises(SceneError, match="finite"):
            scene.set_joint_states(np.full(n, np.nan))
        with pytest.raises(SceneError, match="expected"):
            scene.set_joint_states(np.zeros(n + 1))
        with pytest.raises(SceneError, match="no movable joint named"):
            scene.joint("nope")
        assert all(j.type == "prismatic" and j.axis == (1.0, 0.0, 0.0) for j in scene.joints)
    assert scene.closed
    with pytest.raises(SceneError, match="closed"):
        scene.render(orbit_camera(0, 20, 1.5, 49.1, 16))


def test_rendering_is_deterministic():
    with Scene.procedural("microwave", 1) as a, Scene.procedural("microwave", 1) as b:
        cam = orbit_camera(45, 20, 1.5, 49.1, 48)
        fa, fb = a.render(cam), b.render(cam)
        assert np.array_equal(fa.rgb, fb.rgb) and np.array_equal(fa.seg, fb.seg)


def test_supersampled_render_is_the_block_mean_of_the_fine_render():
    """RGB is the rounded mean of each k×k block of the fine render; depth and segmentation its centre sample."""
    with Scene.procedural("drawer", 2) as scene:
        cam = orbit_camera(30, 15, 1.5, 49.1, 40)
        k = 3
        coarse, fine = scene.render(cam, supersample=k), scene.render(cam.resized(40 * k, 40 * k), supersample=1)
        blocks = fine.rgb.reshape(40, k, 40, k, 3).astype(np.float64)
        assert np.array_equal(coarse.rgb, np.round(blocks.mean(axis=(1, 3))).astype(np.uint8))
        assert np.array_equal(coarse.seg, fine.seg[1::k, 1::k])
        assert np.array_equal(coarse.depth, fine.depth[1::k, 1::k])
        assert len(np.unique(coarse.seg)) > 2  # background, body and a drawer at least
