"""The PyTorch rasterizer against a slow per-pixel reference, gradients, gsplat parity, bad input."""

import math

import pytest
import torch

from partrm_gym.cameras import orbit_camera, stack_cameras
from partrm_gym.gaussians import Gaussians
from partrm_gym.rendering import RASTERIZE_MODES, rasterize
from partrm_gym.rendering.torch_rasterizer import (
    ALPHA_MAX,
    ALPHA_MIN,
    CHUNK,
    T_MIN,
    TILE,
    draw_order,
    plan_tiles,
    project,
)


def random_gaussians(n, seed=0, dtype=torch.float32, spread=0.2, size=(0.01, 0.05)):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(1, n, 3, generator=g, dtype=dtype) * spread
    quats = torch.nn.functional.normalize(torch.randn(1, n, 4, generator=g, dtype=dtype), dim=-1)
    scales = torch.rand(1, n, 3, generator=g, dtype=dtype) * (size[1] - size[0]) + size[0]
    opacities = torch.rand(1, n, generator=g, dtype=dtype) * 0.9 + 0.05
    colors = torch.rand(1, n, 3, generator=g, dtype=dtype)
    return Gaussians(means, opacities, scales, quats, colors)


def reference_render(g, viewmat, K, W, H, bg, mode="antialiased"):
    """Per pixel, loop over depth-sorted Gaussians with the 3DGS rules (no extents: every pixel is tested)."""
    p = project(g.means, g.quats, g.scales, viewmat[None, None], K[None, None], W, H)
    u, v, conic, z, valid, comp = (getattr(p, k)[0, 0] for k in ("u", "v", "conic", "depth", "valid", "compensation"))
    opacity = g.opacities[0] * (comp if mode == "antialiased" else 1.0)
    order = [i for i in torch.argsort(z).tolist() if valid[i]]
    img = torch.zeros(H, W, 3, dtype=g.means.dtype)
    acc = torch.zeros(H, W, dtype=g.means.dtype)
    for y in range(H):
        for x in range(W):
            T, c = 1.0, torch.zeros(3, dtype=g.means.dtype)
            for i in order:
                dx, dy = x + 0.5 - u[i], y + 0.5 - v[i]
                power = -0.5 * (conic[i, 0] * dx * dx + conic[i, 2] * dy * dy) - conic[i, 1] * dx * dy
                if power > 0:
                    continue
                alpha = min(ALPHA_MAX, float(opacity[i] * math.exp(power)))
                if alpha < ALPHA_MIN:
                    continue
                if T * (1 - alpha) < T_MIN:
                    break
                c = c + alpha * T * g.colors[0, i]
                T *= 1 - alpha
            img[y, x] = c + T * bg
            acc[y, x] = 1 - T
    return img, acc


@pytest.mark.parametrize("mode", RASTERIZE_MODES)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_dense_reference(seed, mode):
    g = random_gaussians(40, seed, dtype=torch.float64)
    cam = orbit_camera(30, 20, 1.5, 20.0, (20, 16))  # pixels about the Gaussians' size
    viewmats, Ks = stack_cameras([cam], dtype=torch.float64)
    bg = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    out = rasterize(g, viewmats, Ks, 20, 16, background=bg, mode=mode)
    ref, acc = reference_render(g, viewmats[0], Ks[0], 20, 16, bg, mode)
    assert (acc > 0.3).float().mean() > 0.1  # the scene covers a good part of the image
    torch.testing.assert_close(out.rgb[0, 0], ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.alpha[0, 0, ..., 0], acc, atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", RASTERIZE_MODES)
def test_deep_tile_lists_and_early_stop_match_reference(mode):
    """Tiles whose lists span several CHUNKs (carried transmittance) and pixels that stop at T_MIN."""
    g = random_gaussians(80, 5, dtype=torch.float64, spread=0.05, size=(0.02, 0.12))
    g.opacities[:] = 0.6 + 0.4 * g.opacities
    cam = orbit_camera(30, 20, 1.5, 12.0, (10, 8))
    viewmats, Ks = stack_cameras([cam], dtype=torch.float64)
    bg = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    p = project(g.means, g.quats, g.scales, viewmats[None], Ks[None], 10, 8)
    order, rx, ry = draw_order(p, g.opacities[:, None], 10, 8)
    plan = plan_tiles(p.u.reshape(-1)[order], p.v.reshape(-1)[order], rx, ry, order // 80, 1, 10, 8)
    assert torch.bincount(plan.chunk_tile).min() >= 3  # every tile's list is at least 3 chunks long
    out = rasterize(g, viewmats, Ks, 10, 8, background=bg, mode=mode)
    ref, acc = reference_render(g, viewmats[0], Ks[0], 10, 8, bg, mode)
    assert (acc > 1 - 1e-3).float().mean() > 0.5  # most pixels run into the transmittance stop
    torch.testing.assert_close(out.rgb[0, 0], ref, atol=1e-9, rtol=0)
    torch.testing.assert_close(out.alpha[0, 0, ..., 0], acc, atol=1e-9, rtol=0)


@pytest.mark.parametrize("mode", RASTERIZE_MODES)
def test_gradcheck_all_parameters(mode):
    g = random_gaussians(4, 3, dtype=torch.float64, spread=0.05, size=(0.03, 0.06))
    cam = orbit_camera(20, 15, 1.0, 40.0, 8)
    viewmats, Ks = stack_cameras([cam], dtype=torch.float64)
    params = [g.means.clone().requires_grad_(), g.opacities.clone().requires_grad_(),
              g.scales.clone().requires_grad_(), g.quats.clone().requires_grad_(), g.colors.clone().requires_grad_()]

    def f(m, o, s, q, c):
        out = rasterize(Gaussians(m, o, s, q, c), viewmats, Ks, 8, 8, background=(0.3, 0.3, 0.3), mode=mode)
        return out.rgb, out.alpha

    assert torch.autograd.gradcheck(f, params, eps=1e-6, atol=1e-5)


def test_gradcheck_across_chunks():
    """Gradients through the transmittance carried between the chunks of one tile (one 4×4 tile, 40 Gaussians)."""
    g = random_gaussians(40, 7, dtype=torch.float64, spread=0.03, size=(0.03, 0.06))
    g.opacities[:] = 0.05 + 0.25 * g.opacities  # no pixel reaches the T_MIN stop (a discontinuity)
    cam = orbit_camera(20, 15, 1.0, 12.0, TILE)
    viewmats, Ks = stack_cameras([cam], dtype=torch.float64)
    params = [t.clone().requires_grad_() for t in (g.means, g.opacities, g.scales, g.quats, g.colors)]

    def f(m, o, s, q, c):
        out = rasterize(Gaussians(m, o, s, q, c), viewmats, Ks, TILE, TILE, background=(0.3, 0.3, 0.3))
        return out.rgb, out.alpha, out.depth

    with torch.no_grad():
        p = project(g.means, g.quats, g.scales, viewmats[None], Ks[None], TILE, TILE)
        assert draw_order(p, g.opacities[:, None] * p.compensation, TILE, TILE)[0].numel() > 2 * CHUNK
    assert torch.autograd.gradcheck(f, params, eps=1e-6, atol=1e-5)


def test_batches_cameras_and_scenes_consistently():
    g = Gaussians.cat([random_gaussians(200, 0), random_gaussians(200, 1)])
    cams = [orbit_camera(a, 20, 1.5, 49.1, 24) for a in (0, 120)]
    viewmats, Ks = stack_cameras(cams)
    both = rasterize(g, viewmats, Ks, 24, 24)
    for b in range(2):
        for c in range(2):
            single = rasterize(g[b], viewmats[c:c + 1], Ks[c:c + 1], 24, 24)
            torch.testing.assert_close(both.rgb[b, c], single.rgb[0, 0], atol=1e-5, rtol=0)


def test_depth_is_expected_depth():
    g = Gaussians(torch.zeros(1, 1, 3), torch.ones(1, 1) * 0.9, torch.full((1, 1, 3), 0.2),
                  torch.tensor([[[1.0, 0, 0, 0]]]), torch.ones(1, 1, 3))
    cam = orbit_camera(0, 0, 2.0, 40.0, 16)
    out = rasterize(g, *stack_cameras([cam]), 16, 16)
    centre = out.depth[0, 0, 8, 8, 0]
    assert abs(float(centre) - 2.0) < 1e-4 and out.alpha[0, 0, 8, 8, 0] > 0.8


def test_empty_scene_and_camera_behind_give_background():
    bg = (0.1, 0.2, 0.3)
    cam = orbit_camera(0, 20, 1.5, 49.1, 12)
    empty = Gaussians(torch.zeros(1, 0, 3), torch.zeros(1, 0), torch.zeros(1, 0, 3), torch.zeros(1, 0, 4),
                      torch.zeros(1, 0, 3))
    out = rasterize(empty, *stack_cameras([cam]), 12, 12, background=bg)
    assert torch.allclose(out.rgb, torch.tensor(bg)) and out.alpha.abs().max() == 0
    g = random_gaussians(50, 0)
    behind = Gaussians(g.means + torch.tensor([3.0, 0, 0]), g.opacities, g.scales, g.quats, g.colors)  # behind it
    out = rasterize(behind, *stack_cameras([cam]), 12, 12, background=bg)
    assert out.alpha.abs().max() == 0 and torch.allclose(out.rgb, torch.tensor(bg))


def test_bad_gaussians_are_sanitized_not_propagated():
    g = random_gaussians(20, 0)
    g.means[0, 3] = float("nan")
    g.scales[0, 4] = -1.0
    g.quats[0, 5] = torch.tensor([2.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="NaN"):
        g.validate()
    clean = g.sanitize()
    clean.validate()
    assert clean.opacities[0, 3] == 0 and clean.scales[0, 4].min() > 0
    out = rasterize(clean, *stack_cameras([orbit_camera(0, 20, 1.5, 49.1, 16)]), 16, 16)
    assert torch.isfinite(out.rgb).all()


def test_argument_errors():
    g = random_gaussians(5)
    viewmats, Ks = stack_cameras([orbit_camera(0, 20, 1.5, 49.1, 8)])
    with pytest.raises(ValueError, match="backend"):
        rasterize(g, viewmats, Ks, 8, 8, backend="opengl")
    with pytest.raises(ValueError, match="positive"):
        rasterize(g, viewmats, Ks, 0, 8)
    with pytest.raises(ValueError, match="mode"):
        rasterize(g, viewmats, Ks, 8, 8, mode="mip")
    with pytest.raises(RuntimeError, match="CUDA"):
        rasterize(g, viewmats, Ks, 8, 8, backend="gsplat")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat parity needs CUDA")
@pytest.mark.parametrize("mode", RASTERIZE_MODES)
def test_parity_with_gsplat(mode):
    g = random_gaussians(5000, 0, spread=0.25, size=(0.003, 0.02))
    cams = [orbit_camera(a, 20, 1.5, 49.1, 128) for a in (0, 90)]
    viewmats, Ks = stack_cameras(cams)
    cpu = rasterize(g, viewmats, Ks, 128, 128, backend="torch", mode=mode)
    gpu = rasterize(g.to("cuda"), viewmats.cuda(), Ks.cuda(), 128, 128, backend="gsplat", mode=mode)
    diff = (cpu.rgb - gpu.rgb.cpu()).abs()
    print(f"gsplat parity ({mode}): max abs diff {diff.max():.2e}, mean {diff.mean():.2e}")
    assert diff.mean() < 1e-3 and diff.max() < 5e-2


def test_edge_on_discs_fade_only_in_antialiased_mode():
    """A flat surface of thin discs seen edge-on covers ~nothing; "classic" dilation stacks it into an opaque line."""
    n = 50
    g = torch.Generator().manual_seed(0)
    means = torch.zeros(1, n, 3)
    means[0, :, 0] = torch.rand(n, generator=g) * 0.4 - 0.2  # along the view direction
    means[0, :, 2] = torch.rand(n, generator=g) * 0.4 - 0.2  # up
    scales = torch.tensor([0.02, 0.02, 0.0002]).expand(1, n, 3)
    quats = torch.tensor([math.sqrt(0.5), -math.sqrt(0.5), 0.0, 0.0]).expand(1, n, 4)  # disc normal along +y
    discs = Gaussians(means, torch.ones(1, n), scales, quats, torch.zeros(1, n, 3))
    cam = orbit_camera(0, 0, 1.5, 49.1, 64)  # on the +x axis: the plane y = 0 is edge-on
    classic = rasterize(discs, *stack_cameras([cam]), 64, 64, mode="classic").alpha[0, 0, ..., 0]
    antialiased = rasterize(discs, *stack_cameras([cam]), 64, 64, mode="antialiased").alpha[0, 0, ..., 0]
    assert classic.max() > 0.9
    assert antialiased.max() < 0.1


def test_zero_thickness_gaussian_has_finite_gradients():
    """A zero-size Gaussian has antialiasing compensation exactly 0: no NaN may reach any gradient."""
    means = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.05, 0.0]]], requires_grad=True)
    scales = torch.tensor([[[0.0, 0.0, 0.0], [0.05, 0.05, 0.05]]], requires_grad=True)
    quats = torch.tensor([[[math.sqrt(0.5), -math.sqrt(0.5), 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]], requires_grad=True)
    opacities = torch.tensor([[0.9, 0.9]], requires_grad=True)
    colors = torch.rand(1, 2, 3, requires_grad=True)
    out = rasterize(Gaussians(means, opacities, scales, quats, colors),
                    *stack_cameras([orbit_camera(0, 0, 1.5, 49.1, 32)]), 32, 32)
    (out.rgb.sum() + out.alpha.sum()).backward()
    for t in (means, scales, quats, opacities, colors):
        assert torch.isfinite(t.grad).all()


def test_part_labels_render_each_label_where_its_gaussians_are_drawn():
    """Seven labels (three rasterizations of three one-hot channels): every blob's pixel shows its own label,
    a pixel drawn by none shows -2."""
    from partrm_gym.rendering import render_part_labels

    camera = orbit_camera(0.0, 0.0, 2.0, 40.0, 64)
    labels = torch.tensor([-1, 0, 1, 2, 3, 4, 5])
    ys = torch.linspace(-0.45, 0.45, len(labels))  # a row across the image, in front of the camera on +x
    means = torch.stack([torch.zeros_like(ys), ys, torch.zeros_like(ys)], -1)[None]
    n = len(labels)
    g = Gaussians(means, torch.full((1, n), 0.99), torch.full((1, n, 3), 0.04),
                  torch.tensor([1.0, 0, 0, 0]).expand(1, n, 4), torch.rand(1, n, 3))
    seg = render_part_labels(g, labels, [camera])[0]
    rows, cols = camera.pixel_index(camera.project(means[0].numpy())[0])
    assert seg[rows, cols].tolist() == labels.tolist()
    assert seg[0, 0] == -2


def test_part_labels_of_an_empty_scene_and_bad_labels():
    from partrm_gym.rendering import render_part_labels

    camera = orbit_camera(0.0, 0.0, 2.0, 40.0, 16)
    empty = Gaussians(torch.zeros(1, 0, 3), torch.zeros(1, 0), torch.zeros(1, 0, 3), torch.zeros(1, 0, 4),
                      torch.zeros(1, 0, 3))
    assert (render_part_labels(empty, torch.zeros(0, dtype=torch.long), [camera, camera]) == -2).all()
    g = random_gaussians(4)
    with pytest.raises(ValueError, match=">= -1"):
        render_part_labels(g, torch.tensor([-2, 0, 0, 1]), [camera])
    two = Gaussians(*(torch.cat([t, t]) for t in (g.means, g.opacities, g.scales, g.quats, g.colors)))
    with pytest.raises(ValueError, match="one scene"):
        render_part_labels(two, torch.zeros(4, dtype=torch.long), [camera])
