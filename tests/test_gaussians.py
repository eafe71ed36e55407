import pytest
import torch

from partrm_gym.gaussians import SPLATTER_CHANNELS, Gaussians, load_ply, save_ply


def _splatter(B=2, V=4, h=3, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(B, V, SPLATTER_CHANNELS, h, w, generator=g)
    s[:, :, 7:11] = torch.nn.functional.normalize(s[:, :, 7:11] + 0.1, dim=2)
    s[:, :, 4:7] = s[:, :, 4:7] * 0.05 + 1e-3
    return s


def test_splatter_round_trip_and_layout():
    s = _splatter()
    g = Gaussians.from_splatter(s)
    assert g.means.shape == (2, 60, 3) and g.quats.shape == (2, 60, 4)
    torch.testing.assert_close(g.to_splatter(4, 3, 5), s)
    # pixel (view 1, row 2, col 3) is Gaussian 1*15 + 2*5 + 3, channels in the documented order
    k = 15 + 10 + 3
    torch.testing.assert_close(g.means[0, k], s[0, 1, 0:3, 2, 3])
    torch.testing.assert_close(g.opacities[0, k], s[0, 1, 3, 2, 3])
    torch.testing.assert_close(g.colors[0, k], s[0, 1, 11:14, 2, 3])
    with pytest.raises(ValueError, match="splatter"):
        Gaussians.from_splatter(torch.zeros(1, 4, 13, 2, 2))


def test_ply_round_trip(tmp_path):
    g = Gaussians.from_splatter(_splatter(B=1))
    path = save_ply(tmp_path / "scene.ply", g)
    header = path.read_bytes()[:400].decode("ascii", errors="ignore")
    for prop in ("x", "f_dc_0", "opacity", "scale_0", "rot_0"):
        assert f"property float {prop}\n" in header
    back = load_ply(path)
    for name in ("means", "opacities", "scales", "quats", "colors"):
        torch.testing.assert_close(getattr(back, name), getattr(g, name), atol=2e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="one scene"):
        save_ply(tmp_path / "two.ply", Gaussians.from_splatter(_splatter(B=2)))


def test_ply_bad_files(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"not a ply")
    with pytest.raises(ValueError, match="not a PLY"):
        load_ply(bad)
    g = Gaussians.from_splatter(_splatter(B=1))
    path = save_ply(tmp_path / "t.ply", g)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ValueError, match="truncated"):
        load_ply(path)


def test_shape_checks():
    with pytest.raises(ValueError, match="opacities"):
        Gaussians(torch.zeros(1, 3, 3), torch.zeros(1, 4), torch.zeros(1, 3, 3), torch.zeros(1, 3, 4),
                  torch.zeros(1, 3, 3))
