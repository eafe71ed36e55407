"""``partrm-gym bench render``: rasterizer forward and forward+backward time."""

from __future__ import annotations

import argparse

import torch

from partrm_gym.app.bench.report import emit_report, markdown_table, median_ms
from partrm_gym.cameras import orbit_camera, stack_cameras
from partrm_gym.gaussians import Gaussians
from partrm_gym.rendering import rasterize

SIZES = (4096, 16384)
RESOLUTIONS = (64, 128)
PIXEL_SIGMA = 1.2  # typical splatter Gaussian: about one pixel at 128²


def bench_scene(n: int, device: str, seed: int = 0) -> Gaussians:
    """Random Gaussians inside the unit-radius-0.5 sphere, sized like splatter-image Gaussians."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(1, n, 3, generator=g) * 2 - 1) * 0.3
    quats = torch.nn.functional.normalize(torch.randn(1, n, 4, generator=g), dim=-1)
    scales = torch.rand(1, n, 3, generator=g) * 0.008 + 0.004
    opacities = torch.rand(1, n, generator=g) * 0.5 + 0.5
    colors = torch.rand(1, n, 3, generator=g)
    return Gaussians(means, opacities, scales, quats, colors).to(device)


def _time(n: int, res: int, cams: int, device: str, repeats: int) -> tuple[float, float]:
    g = bench_scene(n, device)
    cameras = [orbit_camera(30 + 90 * i, 20, 1.5, 49.1, res) for i in range(cams)]
    viewmats, Ks = stack_cameras(cameras, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def forward() -> None:
        with torch.no_grad():
            rasterize(g, viewmats, Ks, res, res)
        sync()

    params = [t.clone().requires_grad_() for t in (g.means, g.opacities, g.scales, g.quats, g.colors)]

    def forward_backward() -> None:
        out = rasterize(Gaussians(*params), viewmats, Ks, res, res)
        (out.rgb.sum() + out.alpha.sum()).backward()
        sync()

    return median_ms(forward, repeats), median_ms(forward_backward, repeats)


def bench_render(args: argparse.Namespace) -> str:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and args.device in ("auto", "cuda") else [])
    if args.device == "cpu":
        devices = ["cpu"]
    rows = []
    for device in devices:
        backend = "gsplat" if device == "cuda" else "torch"
        for n in SIZES:
            for res in RESOLUTIONS:
                fwd, fb = _time(n, res, 1, device, args.repeats)
                rows.append([backend, n, f"{res}²", 1, fwd, fb])
        fwd, fb = _time(SIZES[-1], RESOLUTIONS[-1], 4, device, args.repeats)
        rows.append([backend, SIZES[-1], f"{RESOLUTIONS[-1]}²", 4, fwd, fb])
    table = markdown_table(["backend", "Gaussians", "image", "cameras", "forward ms", "forward+backward ms"], rows)
    return emit_report("Rasterizer", f"partrm-gym bench render --repeats {args.repeats}", table, args.out)
