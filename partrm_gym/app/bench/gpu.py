"""``partrm-gym bench gpu``: what one CUDA device must show before paper-scale training, in one run.

Sections, in this order, each printed and appended to ``--out`` as soon as it is measured (a killed run keeps
what it measured):

1. **gsplat**: its first call (compiling or loading its CUDA kernels) timed on its own, then parity with the CPU
   reference rasterizer (the comparison of ``tests/test_rasterizer.py::test_parity_with_gsplat``), then those
   ``cuda``-marked tests run by pytest when the checkout has them.
2. **training**: 20 bf16 steps of the lgm ``big`` network (configs/model/lgm_big.yaml: the stage-2 loss, renders
   of 4 dataset views at 256² plus the mask term, AdamW) at batch 1 and 4 with activation checkpointing, and batch
   4 without: s/step and peak memory.
3. **LGM weights**: a random LGM-format ``big`` checkpoint (fp16, LGM's 376 keys) written on the fly, then read
   and placed by name: seconds, tensors, parameters.
4. **envs**: ``bench envs --device cuda`` with 1, 8 and 64 environments (batched resets and steps).

The last line printed is one summary line. Sized to take under 8 minutes on one H100 once gsplat's kernels are
built (their first compile is reported on its own: it can take minutes). Without CUDA, or with ``--dry-run``, it
runs the same code in a dry mode: a tiny lgm network, tiny sizes, the CPU, the torch rasterizer in place of
gsplat (a test runs it, so it cannot rot); its figures say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from partrm_gym.app.bench.report import check_report_path, machine_line, markdown_table, write_report
from partrm_gym.cameras import canonical_rig, dataset_rig, orbit_camera, plucker_rays, stack_cameras
from partrm_gym.config import load_config
from partrm_gym.gaussians import Gaussians
from partrm_gym.model.config import ModelConfig
from partrm_gym.model.lgm_network import LGMPartRM
from partrm_gym.model.lgm_weights import lgm_shapes, load_lgm_weights
from partrm_gym.rendering import RASTERIZE_MODES, rasterize
from partrm_gym.train.train import compute_loss, trained_parameters
from partrm_gym.train.train_config import TrainConfig

PARITY_MEAN, PARITY_MAX = 1e-3, 5e-2  # the thresholds of tests/test_rasterizer.py::test_parity_with_gsplat
PARITY_TESTS = Path(__file__).resolve().parents[3] / "tests" / "test_rasterizer.py"


@dataclass(frozen=True)
class Sizes:
    """What a run measures: the GPU's, or the dry run's tiny stand-ins for the same code."""

    model: ModelConfig
    train_batches: tuple[tuple[int, bool], ...]  # (batch, activation checkpointing)
    train_steps: int
    warmup_steps: int
    view_resolution: int
    render_views: int
    parity_gaussians: int
    parity_resolution: int
    vector_sizes: tuple[int, ...]
    twin_processes: int
    env_repeats: int


def gpu_sizes(repeats: int) -> Sizes:
    return Sizes(load_config(ModelConfig, "model/lgm_big"), ((1, True), (4, True), (4, False)), 20, 3, 256, 4,
                 5000, 128, (1, 8, 64), 8, repeats)


def dry_sizes() -> Sizes:
    tiny = ModelConfig(name="lgm_dry", layout="lgm", input_size=32, down_channels=(32, 32, 64),
                       down_attention=(False, False, True), up_channels=(64, 32), up_attention=(True, False),
                       layers_per_block=1, attention_heads=4, drag_levels=(True, True, True), max_drags=3,
                       input_elevation_deg=0.0)
    return Sizes(tiny, ((1, True), (2, False)), 2, 1, 32, 2, 200, 32, (1, 2), 0, 2)


class ProgressiveReport:
    """A report that grows by sections: each is printed and the whole so far written to ``out`` at once."""

    def __init__(self, title: str, command: str, out: str | Path | None) -> None:
        self.out = check_report_path(out) if out else None
        self.parts = [f"## {title}\n\nMeasured with `{command}` on {machine_line()}.\n"]
        self._flush(self.parts[0])

    def add(self, section: str) -> None:
        self.parts.append(section)
        self._flush(section)

    def _flush(self, text: str) -> None:
        print(text, flush=True)
        if self.out is not None:
            write_report(self.out, self.text)

    @property
    def text(self) -> str:
        return "\n".join(self.parts)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def random_gaussians(n: int, seed: int = 0) -> Gaussians:
    """Splatter-like Gaussians within 0.25 of the origin (the parity test's scene)."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(1, n, 3, generator=g) * 2 - 1) * 0.25
    quats = torch.nn.functional.normalize(torch.randn(1, n, 4, generator=g), dim=-1)
    scales = torch.rand(1, n, 3, generator=g) * 0.017 + 0.003
    return Gaussians(means, torch.rand(1, n, generator=g), scales, quats, torch.rand(1, n, 3, generator=g))


def gsplat_section(sizes: Sizes, dry: bool) -> tuple[str, str]:
    """(section, summary): first call timed alone, parity per mode, the pytest run of the cuda tests."""
    backend, device = ("torch", "cpu") if dry else ("gsplat", "cuda")
    res = sizes.parity_resolution
    viewmats, Ks = stack_cameras([orbit_camera(a, 20, 1.5, 49.1, res) for a in (0, 90)])
    g = random_gaussians(sizes.parity_gaussians)
    t = time.perf_counter()
    rasterize(random_gaussians(64, seed=1).to(device), viewmats.to(device), Ks.to(device), 16, 16, backend=backend)
    _sync(device)
    first = time.perf_counter() - t
    rows, ok = [], True
    for mode in RASTERIZE_MODES:
        ref = rasterize(g, viewmats, Ks, res, res, backend="torch", mode=mode)
        t = time.perf_counter()
        out = rasterize(g.to(device), viewmats.to(device), Ks.to(device), res, res, backend=backend, mode=mode)
        _sync(device)
        ms = (time.perf_counter() - t) * 1e3
        diff = (ref.rgb - out.rgb.cpu()).abs()
        passed = diff.mean().item() < PARITY_MEAN and diff.max().item() < PARITY_MAX
        ok &= passed
        rows.append([mode, f"{diff.max().item():.2e}", f"{diff.mean().item():.2e}", ms, "ok" if passed else "FAIL"])
    table = markdown_table(["mode", "max abs diff", "mean abs diff", f"{backend} ms ({sizes.parity_gaussians} "
                            f"Gaussians, 2 × {res}²)", f"pass (mean < {PARITY_MEAN}, max < {PARITY_MAX})"], rows)
    tests = "not run (dry run)" if dry else _run_parity_tests()
    where = "the torch rasterizer against itself (dry run: no gsplat)" if dry else "gsplat against the CPU reference"
    section = (f"### gsplat\n\nFirst call (kernel compile or load, then a 16² render): **{first:.1f} s**.\n\n"
               f"Parity, {where}:\n\n{table}\n\n`pytest -m cuda tests/test_rasterizer.py`: {tests}.\n")
    return section, f"gsplat first call {first:.1f} s, parity {'ok' if ok else 'FAILED'}"


def _run_parity_tests() -> str:
    if not PARITY_TESTS.is_file():
        return f"not run ({PARITY_TESTS} is not in this installation)"
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                            str(PARITY_TESTS)], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "timed out after 300 s"
    last = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
    return f"{'passed' if r.returncode == 0 else 'FAILED'} ({last})"


def synthetic_batch(cfg: ModelConfig, batch: int, view_resolution: int, device: str) -> dict[str, torch.Tensor]:
    """A stage-2 batch of the model's sizes: random views, the model's own rays, random drags and targets."""
    g = torch.Generator().manual_seed(0)
    S, B = cfg.input_size, batch
    plucker = torch.stack([plucker_rays(c) for c in canonical_rig(S, cfg.input_rig)])
    viewmats, Ks = stack_cameras(dataset_rig(view_resolution))
    views = len(dataset_rig(view_resolution))
    out = {"input_rgb": torch.rand(B, 4, 3, S, S, generator=g), "plucker": plucker.expand(B, -1, -1, -1, -1),
           "drags": torch.rand(B, 4, cfg.max_drags, 4, generator=g),
           "drag_mask": torch.ones(B, 4, cfg.max_drags, dtype=torch.bool),
           "viewmats": viewmats.expand(B, -1, -1, -1), "Ks": Ks.expand(B, -1, -1, -1),
           "target_rgb": torch.rand(B, views, 3, view_resolution, view_resolution, generator=g),
           "target_mask": (torch.rand(B, views, 1, view_resolution, view_resolution, generator=g) > 0.5).float()}
    return {k: v.contiguous().to(device) for k, v in out.items()}


def time_training(cfg: ModelConfig, batch: int, checkpointing: bool, sizes: Sizes, device: str
                  ) -> tuple[float, float]:
    """(median s/step, peak GiB) of stage-2 training steps (bf16 autocast on CUDA); raises on out-of-memory."""
    torch.manual_seed(0)
    with torch.device(device):
        model = LGMPartRM(cfg)
    model.train().unet.checkpointing = checkpointing
    optimizer = torch.optim.AdamW(trained_parameters(model, 2), lr=1e-5)
    train_cfg = TrainConfig(stage=2, render_views=sizes.render_views)
    data = synthetic_batch(cfg, batch, sizes.view_resolution, device)
    generator = torch.Generator().manual_seed(0)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(sizes.warmup_steps + sizes.train_steps):
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext():
            loss, _ = compute_loss(model, data, train_cfg, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        _sync(device)
        if step >= sizes.warmup_steps:
            times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return statistics.median(times), peak


def training_section(sizes: Sizes, device: str) -> tuple[str, str]:
    cfg = sizes.model
    with torch.device("meta"):
        params = sum(p.numel() for p in LGMPartRM(cfg).parameters()) / 1e6
    rows, summary = [], []
    for batch, checkpointing in sizes.train_batches:
        ckpt = "on" if checkpointing else "off"
        try:
            s, peak = time_training(cfg, batch, checkpointing, sizes, device)
            rows.append([batch, ckpt, s, f"{peak:.1f}" if peak == peak else "n/a (CPU)"])
            summary.append(f"batch {batch} ckpt {ckpt} {s:.2f} s/step" + (f" {peak:.1f} GiB" if peak == peak else ""))
        except torch.cuda.OutOfMemoryError:
            rows.append([batch, ckpt, "out of memory", "-"])
            summary.append(f"batch {batch} ckpt {ckpt} out of memory")
        if device == "cuda":
            torch.cuda.empty_cache()
    precision = "bf16 autocast" if device == "cuda" else "float32 (CPU)"
    table = markdown_table(["batch", "activation checkpointing", "s/step (median)", "peak memory GiB"], rows)
    section = (f"### Training: {cfg.name} ({params:.1f} M parameters, {cfg.input_size}² in, {cfg.output_size}² "
               f"splatter), {precision}\n\n{sizes.train_steps} timed steps after {sizes.warmup_steps} warm-up "
               f"steps, stage-2 loss (renders of {sizes.render_views} of 12 dataset views at "
               f"{sizes.view_resolution}², + mask), AdamW, on {device}.\n\n{table}\n")
    return section, f"{cfg.name} training: " + ", ".join(summary)


def weights_section(sizes: Sizes, device: str) -> tuple[str, str]:
    """Write a random LGM-format checkpoint of the model's size, then read and place it by name."""
    from safetensors.torch import save_file

    cfg = sizes.model
    with torch.device("meta"):
        shapes = lgm_shapes(LGMPartRM(cfg))
    g = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="partrm_bench_lgm_") as tmp:
        path = Path(tmp) / "model_fp16_fixrot.safetensors"
        t = time.perf_counter()
        save_file({k: (torch.randn(s, generator=g) * 0.02).half() for k, s in shapes.items()}, str(path))
        write_s, size_mb = time.perf_counter() - t, path.stat().st_size / 2**20
        with torch.device(device):
            model = LGMPartRM(cfg)
        t = time.perf_counter()
        report = load_lgm_weights(model, path, progress=False)
        _sync(device)
        read_s = time.perf_counter() - t
    table = markdown_table(["what", "figure"], [
        ["file (fp16, random)", f"{size_mb:.0f} MiB written in {write_s:.1f} s"],
        ["read and placed by name", f"{read_s:.1f} s onto {device}"],
        ["tensors placed", f"{report.tensors} / {len(shapes)}, none left over"],
        ["parameters", f"{report.parameters / 1e6:.1f} M"]])
    return (f"### LGM-format weights ({cfg.name})\n\n{table}\n",
            f"LGM weights {report.tensors}/{len(shapes)} tensors, {report.parameters / 1e6:.1f} M in {read_s:.1f} s")


def envs_section(args: argparse.Namespace, sizes: Sizes, device: str) -> tuple[str, str]:
    from partrm_gym.app.bench.envs import bench_envs

    env_args = argparse.Namespace(model=getattr(args, "model", None), device=device, repeats=sizes.env_repeats,
                                  out=None, view_fit_steps=None)
    with contextlib.redirect_stdout(io.StringIO()):  # its report becomes this section, printed once
        text = bench_envs(env_args, vector_sizes=sizes.vector_sizes, twin_processes=sizes.twin_processes)
    body = text.split("\n", 1)[1].replace("\n### ", "\n#### ")
    sizes_note = ", ".join(map(str, sizes.vector_sizes))
    return (f"### Envs: `bench envs --device {device}` with {sizes_note} environments\n{body}",
            f"envs up to {sizes.vector_sizes[-1]} on {device}")


def bench_gpu(args: argparse.Namespace) -> str:
    """Run the sections (see the module docstring) and return the report; the summary line is printed last."""
    cuda = torch.cuda.is_available() and getattr(args, "device", "auto") in ("auto", "cuda")
    dry = bool(getattr(args, "dry_run", False)) or not cuda
    device = "cpu" if dry else "cuda"
    sizes = dry_sizes() if dry else gpu_sizes(getattr(args, "repeats", 10))
    command = "partrm-gym bench gpu" + (" --dry-run" if getattr(args, "dry_run", False) else "")
    title = "GPU check" + (" (dry run: tiny sizes on the CPU, not GPU figures)" if dry else "")
    report = ProgressiveReport(title, command, getattr(args, "out", None))
    summaries = []
    for section in (lambda: gsplat_section(sizes, dry), lambda: training_section(sizes, device),
                    lambda: weights_section(sizes, device), lambda: envs_section(args, sizes, device)):
        text, summary = section()
        report.add(text)
        summaries.append(summary)
    print(("bench gpu (dry run): " if dry else "bench gpu: ") + "; ".join(filter(None, summaries)), flush=True)
    return report.text
