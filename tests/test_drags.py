import numpy as np
import pytest

from partrm_gym.assets import CATEGORIES
from partrm_gym.cameras import evaluation_rig, orbit_camera
from partrm_gym.drags import DragError, drags_between_states, pad_drags, solve_drag, validate_drags
from partrm_gym.scene import Scene

ROUND_TRIP_CASES = 200
TOLERANCE = 0.05  # of the joint range
REQUIRED_RATE = 0.95


def round_trip_success_rate(cases: int, seed: int = 0, resolution: int = 128) -> tuple[float, int]:
    """Drags sampled between random states A and B of a random part, solved back from A."""
    rng = np.random.default_rng(seed)
    cams = evaluation_rig(resolution)
    ok = total = 0
    for case in range(cases):
        with Scene.procedural(CATEGORIES[case % len(CATEGORIES)], 1000 + case) as scene:
            k = int(rng.integers(len(scene.joints)))
            fa = rng.uniform(0, 1, len(scene.joints))
            fb = fa.copy()
            fb[k] = rng.uniform(0, 1)
            lo = np.array([j.lower for j in scene.joints])
            span = np.array([j.range for j in scene.joints])
            a, b = lo + fa * span, lo + fb * span
            for ci in rng.permutation(len(cams)):
                drags = drags_between_states(scene, k, a, b, cams[ci], max_drags=1, rng=rng)
                if len(drags):
                    break
            else:
                continue  # part hidden from every evaluation view in state A
            total += 1
            sol = solve_drag(scene, cams[ci], drags)
            np.testing.assert_allclose(scene.get_joint_states(), a)  # the solver leaves the scene as it was
            if sol is not None and sol.joint_position == k and abs(sol.value - b[k]) <= TOLERANCE * span[k]:
                ok += 1
    return ok / max(total, 1), total


def test_drag_round_trip_recovers_joint_values():
    rate, total = round_trip_success_rate(ROUND_TRIP_CASES)
    assert total >= 0.9 * ROUND_TRIP_CASES
    assert rate >= REQUIRED_RATE, f"only {rate:.1%} of {total} drags recovered the target joint value"


def test_drags_between_states_shape_and_direction():
    with Scene.procedural("drawer", 3) as scene:
        cam = orbit_camera(60, 20, 1.5, 49.1, 96)  # sees the front and the +y side
        a = np.zeros(len(scene.joints))
        b = a.copy()
        b[0] = scene.joints[0].upper
        drags = drags_between_states(scene, 0, a, b, cam, max_drags=10, rng=np.random.default_rng(0))
        assert drags.shape == (10, 4) and (drags >= 0).all() and (drags <= 1).all()
        # the drawer comes out along +x: seen from azimuth 60 that moves points to the left of the image
        assert (drags[:, 2] < drags[:, 0]).all()
        # not visible from behind
        back = orbit_camera(180, 20, 1.5, 49.1, 96)
        assert drags_between_states(scene, 0, a, b, back).shape == (0, 4)


def test_solve_drag_off_object_and_bad_input():
    with Scene.procedural("laptop", 0) as scene:
        cam = orbit_camera(30, 20, 1.5, 49.1, 64)
        assert solve_drag(scene, cam, np.array([0.01, 0.01, 0.5, 0.5])) is None  # background
        with pytest.raises(DragError, match="NaN"):
            solve_drag(scene, cam, np.array([np.nan, 0.5, 0.5, 0.5]))
        with pytest.raises(DragError, match=r"\[0, 1\]"):
            solve_drag(scene, cam, np.array([1.5, 0.5, 0.5, 0.5]))
        with pytest.raises(DragError, match="shape"):
            validate_drags(np.zeros((2, 3)))


def test_pad_drags():
    d, m = pad_drags(np.ones((3, 4)), 5)
    assert d.shape == (5, 4) and m.tolist() == [True] * 3 + [False] * 2 and d[3:].sum() == 0
    d, m = pad_drags(np.ones((12, 4)), 10)
    assert m.all() and d.shape == (10, 4)
