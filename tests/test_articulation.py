"""The articulated imagined state: rigid part motion that matches the simulator, a drag solver, part grouping."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import MINI

import partrm_gym.articulation as art
from partrm_gym.articulation import (
    STATIC,
    ArticulatedState,
    PartJoint,
    group_parts,
    joints_from_votes,
    move_gaussians,
    solve_joint_value,
    true_joint_geometry,
)
from partrm_gym.envs.task import TaskConfig, observation_camera
from partrm_gym.gaussians import Gaussians
from partrm_gym.scene import Scene


@pytest.mark.parametrize("category", ["storage_door", "storage_drawer", "laptop", "microwave", "trashcan"])
def test_joint_geometry_moves_points_as_the_simulator_does(category):
    rng = np.random.default_rng(0)
    with Scene.procedural(category, 5) as scene:
        for k, joint in enumerate(scene.joints[:2]):
            q = scene.get_joint_states()
            jtype, axis, pivot = true_joint_geometry(scene, k)
            assert jtype == joint.type
            local = rng.normal(size=(6, 3)) * 0.05
            before = scene.to_world(joint.child_link, local)
            moved = q.copy()
            moved[k] = joint.lower + 0.8 * joint.range
            scene.set_joint_states(moved)
            after = scene.to_world(joint.child_link, local)
            scene.set_joint_states(q)
            model = PartJoint(jtype, axis, pivot, joint.lower, joint.upper, q[k])
            predicted = model.move_points(before, moved[k] - q[k])
            assert np.abs(predicted - after).max() < 1e-6


def _random_gaussians(n: int, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    quats = torch.nn.functional.normalize(torch.randn(1, n, 4, generator=g), dim=-1)
    return Gaussians(torch.rand(1, n, 3, generator=g) - 0.5, torch.rand(1, n, generator=g),
                     torch.rand(1, n, 3, generator=g) * 0.02 + 1e-3, quats, torch.rand(1, n, 3, generator=g))


def _covariances(g: Gaussians) -> torch.Tensor:
    w, x, y, z = g.quats[0].double().unbind(-1)
    R = torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(-1, 3, 3)
    S = torch.diag_embed(g.scales[0].double() ** 2)
    return R @ S @ R.transpose(1, 2)


def test_revolute_motion_is_rigid_and_touches_only_the_part():
    g = _random_gaussians(200)
    selected = torch.arange(200) < 80
    joint = PartJoint("revolute", np.array([0.3, -0.2, 0.9]), np.array([0.1, 0.0, -0.05]), -2.0, 2.0, 0.0)
    moved = move_gaussians(g, selected, joint, 0.7)
    for name in ("opacities", "scales", "colors"):
        assert torch.equal(getattr(moved, name), getattr(g, name))
    assert torch.equal(moved.means[0, ~selected], g.means[0, ~selected])
    assert torch.equal(moved.quats[0, ~selected], g.quats[0, ~selected])
    expected = joint.move_points(g.means[0, selected].double().numpy(), 0.7)
    assert np.abs(moved.means[0, selected].double().numpy() - expected).max() < 1e-5
    # the covariance turns with the part: Σ' = R Σ Rᵀ
    from partrm_gym.articulation import rotation_matrices

    R = torch.as_tensor(rotation_matrices(joint.axis, np.array([0.7]))[0])
    cov, cov_moved = _covariances(g)[selected], _covariances(moved)[selected]
    assert torch.allclose(cov_moved, R @ cov @ R.T, atol=1e-6)


def test_solver_recovers_the_joint_value_of_a_drag():
    camera = observation_camera(TaskConfig(resolution=64))
    cases = (("prismatic", [1.0, 0.0, 0.0], 0.0, 0.3), ("revolute", [0.0, 0.0, 1.0], 0.0, 1.5))
    for jtype, axis, lower, upper in cases:
        joint = PartJoint(jtype, np.array(axis), np.array([0.2, -0.2, 0.0]), lower, upper, start=0.1)
        point = np.array([0.25, 0.05, 0.1])
        for q in (0.05, 0.2, upper * 0.9):
            target, _ = camera.project(joint.move_points(point[None], q - joint.value))
            assert solve_joint_value(joint, point, target[0], camera) == pytest.approx(q, abs=2e-3 * (upper - lower))
        far, _ = camera.project(joint.move_points(point[None], upper + 0.2 * (upper - lower) - joint.value))
        assert solve_joint_value(joint, point, far[0], camera) == pytest.approx(upper)  # clamped to the limit


def test_grouping_separates_parts_that_share_an_axis():
    rng = np.random.default_rng(0)
    # two touching drawer fronts (a 10 x 10 grid each, 2 cm apart) whose votes point at their own centres,
    # and 3 stray Gaussians far from both
    grid = np.stack(np.meshgrid(np.linspace(-0.1, 0.1, 10), np.linspace(-0.1, 0.1, 10)), -1).reshape(-1, 2)
    upper = np.c_[np.full(100, 0.3), grid[:, 0], 0.11 + 0.1 + grid[:, 1]]
    lower = np.c_[np.full(100, 0.3), grid[:, 0], -0.11 + 0.1 + grid[:, 1] - 0.2]
    stray = np.array([[0.0, 0.45, 0.0], [0.0, -0.45, 0.0], [-0.3, 0.0, 0.3]])
    means = np.concatenate([upper, lower, stray])
    noise = rng.normal(0, 0.03, (200, 3))
    votes = np.concatenate([upper.mean(0) + noise[:100], lower.mean(0) + noise[100:], stray])
    labels = group_parts(means, votes, link=0.04, radius=0.15, min_size=5)
    assert len(set(labels[:100])) == 1 and len(set(labels[100:200])) == 1 and labels[0] != labels[100]
    assert STATIC not in labels[:200] and (labels[200:] == STATIC).all()  # too few to be a part
    axes = np.tile([1.0, 0.0, 0.0], (203, 1)) + rng.normal(0, 0.05, (203, 3))
    joints = joints_from_votes(means, labels, np.zeros(203), axes, means)
    assert [j[0] for j in joints] == ["prismatic", "prismatic"]
    assert all(abs(j[1] @ [1.0, 0.0, 0.0]) > 0.99 for j in joints)


def test_state_moves_each_part_from_its_start_and_clamps():
    g = _random_gaussians(100)
    labels = torch.full((100,), STATIC)
    labels[10:40], labels[60:70] = 0, 1
    joints = [PartJoint("prismatic", np.array([1.0, 0, 0]), np.zeros(3), 0.0, 0.3, start=0.1),
              PartJoint("revolute", np.array([0, 0, 1.0]), np.zeros(3), -1.0, 1.0, start=0.0)]
    state = ArticulatedState(g, labels, joints)
    assert torch.equal(state.gaussians().means, g.means)  # at the start values nothing moved
    assert state.set_value(0, 5.0) == 0.3
    out = state.gaussians().means[0]
    assert torch.allclose(out[10:40], g.means[0, 10:40] + torch.tensor([0.2, 0.0, 0.0]))
    assert torch.equal(out[labels == STATIC], g.means[0][labels == STATIC])
    assert torch.equal(out[60:70], g.means[0, 60:70])
    with pytest.raises(ValueError, match="labels"):
        ArticulatedState(g, labels[:5], joints)


def test_articulated_network_outputs_have_the_documented_layout():
    from partrm_gym.articulation import AXIS, MOVABLE
    from partrm_gym.model.partrm import PartRM

    cfg = replace(MINI, articulation_head=True)
    net = PartRM(cfg).eval()
    images, plucker = torch.rand(2, 4, 3, 16, 16), torch.rand(2, 4, 6, 16, 16)
    with torch.no_grad():
        splatter, art = net.forward_articulated(images, plucker)
        plain = net(images, plucker)
    assert torch.allclose(splatter, plain)  # the head does not change the reconstruction
    assert art.shape == (2, 4, 11, cfg.output_size, cfg.output_size)
    assert ((art[:, :, MOVABLE] >= 0) & (art[:, :, MOVABLE] <= 1)).all()
    assert torch.allclose(art[:, :, AXIS].norm(dim=2), torch.ones(()), atol=1e-4)


def test_reconstruction_labels_follow_the_nearest_true_surface():
    from partrm_gym.train.reconstructions import INVISIBLE, reconstruction_part_labels

    gt = torch.zeros(1, 14, 2, 3)
    gt[0, 0] = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])  # true surface points along x, 1 apart
    gt_part = torch.tensor([[[0, 0, 1], [2, -1, 0]]])  # static, static, joint 0 / joint 1, background, static
    recon = gt.clone()
    recon[0, 3] = 1.0  # opaque
    recon[0, 0] += 0.02  # each Gaussian 0.02 from its own pixel's true point
    recon[0, 0, 0, 0] = 2.03  # pixel (0, 0) reconstructed next to joint 0's point
    recon[0, 1, 1, 0] = 1.0  # pixel (1, 0) is 1.0 from every true point: a floater
    recon[0, 3, 0, 1] = 0.0  # pixel (0, 1) is invisible
    recon[0, 0, 1, 1] = 5.0  # the background pixel's Gaussian lands on the static point at x = 5
    labels = reconstruction_part_labels(recon, gt, gt_part)
    expected = torch.tensor([[[1, INVISIBLE, 1], [0, 0, 0]]])
    assert torch.equal(labels, expected)  # labels come from where a Gaussian is, not from its pixel


def test_grasp_snaps_to_the_drawn_surface_and_the_surface_layer_votes(monkeypatch):
    """A drag start just off the imagined silhouette is moved onto it; the Gaussians of the surface layer under
    the pixel vote (opacity-weighted) for the part, rather than the single one nearest the drawn depth."""
    camera = observation_camera(TaskConfig(resolution=32))
    centre = np.array([16.5, 16.5])
    depth_here = 1.5
    point = camera.backproject(centre, np.asarray(depth_here))
    toward = (camera.backproject(centre, np.asarray(depth_here + 1.0)) - point)
    toward /= np.linalg.norm(toward)
    # three Gaussians on the same pixel ray: static one nearest the drawn depth, two of part 0 1 cm behind it
    means = torch.tensor(np.stack([point, point + 0.01 * toward, point + 0.012 * toward]), dtype=torch.float32)[None]
    quats = torch.tensor([[[1.0, 0, 0, 0]] * 3])
    g = Gaussians(means, torch.tensor([[0.3, 0.4, 0.4]]), torch.full((1, 3, 3), 0.01), quats, torch.rand(1, 3, 3))
    labels = torch.tensor([STATIC, 0, 0])
    state = ArticulatedState(g, labels, [PartJoint("prismatic", np.array([1.0, 0, 0]), np.zeros(3), -0.5, 0.5, 0.0)])
    depth = np.full((32, 32), np.inf, dtype=np.float32)
    depth[16, 16] = depth_here  # the one pixel with a surface
    monkeypatch.setattr(art, "VOTE_DEPTH", 0.0)
    monkeypatch.setattr(art, "SNAP_RADIUS_PX", 0.0)
    assert state.grasp(g, depth, camera, centre) is None  # the nearest alone: static, a miss
    assert state.grasp(g, depth, camera, centre + [1.2, 0.0]) is None  # off the surface, no snapping
    monkeypatch.setattr(art, "VOTE_DEPTH", 0.03)
    part, grasped = state.grasp(g, depth, camera, centre)
    assert part == 0 and np.allclose(grasped, point, atol=1e-6)  # the layer votes 0.8 against 0.3
    monkeypatch.setattr(art, "SNAP_RADIUS_PX", 1.5)
    part, grasped = state.grasp(g, depth, camera, centre + [1.2, 0.0])
    assert part == 0 and np.allclose(grasped, point, atol=1e-6)  # moved onto the surface pixel's centre
    assert state.grasp(g, depth, camera, centre + [3.0, 0.0]) is None  # too far to snap


def test_revolute_grasp_lifts_to_the_hinged_panel_or_its_front_gaussian_in_front_of_the_drawn_depth(monkeypatch):
    camera = observation_camera(TaskConfig(resolution=32))
    centre = np.array([16.5, 16.5])
    seen = camera.backproject(centre, np.asarray(1.5))  # the panel point the centre pixel sees
    ray = seen - camera.center
    across = np.cross(ray, [0.0, 0.0, 1.0])
    pivot = seen + 0.15 * across / np.linalg.norm(across)  # a vertical hinge 0.15 beside it
    out = (seen - pivot) / np.linalg.norm(seen - pivot)
    r, t = np.meshgrid(np.linspace(0.0, 0.3, 16), np.linspace(-0.1, 0.1, 11))
    panel = pivot + r.reshape(-1, 1) * out + t.reshape(-1, 1) * np.array([0.0, 0.0, 1.0])  # a 0.3 × 0.2 door
    uv, z = camera.project(panel)
    in_front = (np.linalg.norm(uv - centre, axis=1) <= 2.0) & (z < 1.5)
    panel = panel[~in_front]  # the Gaussians under the pixel all lie behind the point it sees: the plane is nearer
    joint = PartJoint("revolute", np.array([0.0, 0.0, 1.0]), pivot, -1.0, 1.0, 0.0)

    def part_of(points: np.ndarray) -> tuple[Gaussians, ArticulatedState]:
        n = len(points)
        g = Gaussians(torch.tensor(points, dtype=torch.float32)[None], torch.full((1, n), 0.5),
                      torch.full((1, n, 3), 0.01), torch.tensor([[[1.0, 0, 0, 0]] * n]), torch.rand(1, n, 3))
        return g, ArticulatedState(g, torch.zeros(n, dtype=torch.long), [joint])

    g, state = part_of(panel)
    depth = np.full((32, 32), 1.7, dtype=np.float32)  # blended with what lies behind, the drawn depth is too far
    part, grasped = state.grasp(g, depth, camera, centre)
    assert part == 0 and np.linalg.norm(grasped - seen) < 1e-3  # on the panel, not 0.2 behind it
    monkeypatch.setattr(art, "LIFT_REVOLUTE_GRASP", False)
    _, behind = state.grasp(g, depth, camera, centre)
    assert np.allclose(behind, camera.backproject(centre, np.asarray(1.7)), atol=1e-6)
    monkeypatch.setattr(art, "LIFT_REVOLUTE_GRASP", True)
    depth[:] = 1.4  # a drawn surface in front of the panel is kept: the grasp is on the nearer one
    _, nearer = state.grasp(g, depth, camera, centre)
    assert np.allclose(nearer, camera.backproject(centre, np.asarray(1.4)), atol=1e-6)
    # a Gaussian of the part under the pixel, in front of both: the grasp is at its depth
    front = camera.backproject(centre, np.asarray(1.3))
    g_front, state_front = part_of(np.concatenate([panel, front[None]]))
    _, at_front = state_front.grasp(g_front, depth, camera, centre)
    assert np.allclose(at_front, front, atol=1e-5)
    means, weights = g.means[0], g.opacities[0]
    above, _ = camera.project(pivot + 0.15 * out + np.array([0.0, 0.0, 0.3]))  # the plane, beyond the door's top
    assert art.panel_depth(means, weights, joint, camera, above) == np.inf
    assert art.panel_depth(means[:1], weights[:1], joint, camera, centre) == np.inf  # one Gaussian spans no plane
