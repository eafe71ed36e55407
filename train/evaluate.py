"""``partrm-gym eval CHECKPOINT --data DIR --split test``: the model against its baselines.

For every pair of the split, three predictions of the next state are scored over the 8
evaluation views (dataset views at azimuths no input view has):

* ``static`` — "nothing moved": the current state's GT splatter;
* ``model`` — PartRM's predicted splatter;
* ``gt_upper_bound`` — the next state's GT splatter (the best any reconstruction from the
  4 input views can do).

PSNR and SSIM over the 8 views, LPIPS when a local backbone is configured (else reported as
unavailable), and Chamfer distance between opacity-weighted Gaussian centres and the
simulator's back-projected points of the next state.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from partrm_gym.cameras import evaluation_view_indices
from partrm_gym.errors import UsageError
from partrm_gym.gaussians import OPACITY, XYZ
from partrm_gym.io import atomic_write_csv, atomic_write_image, atomic_write_json, atomic_write_text
from partrm_gym.metrics import chamfer_distance, load_lpips, lpips_available, psnr, ssim
from partrm_gym.model.checkpoint import load_checkpoint
from partrm_gym.plotting import image_grid, save_figure, subplots, to_uint8_image
from partrm_gym.train.dataset import PartDragDataset
from partrm_gym.train.losses import render_splatter

METHODS = ("static", "model", "gt_upper_bound")
METRICS = ("psnr", "ssim", "chamfer", "lpips")
CHAMFER_POINTS = 4096  # points per side, subsampled for speed
OPACITY_FLOOR = 0.05  # Gaussians fainter than this are left out of the Chamfer distance


def simulator_points(depth: torch.Tensor | np.ndarray, cameras: list, rng: np.random.Generator) -> np.ndarray:
    """Back-projected object pixels of one state's views (depth (V, H, W), ``inf`` off the object), subsampled."""
    pts = []
    for v, cam in enumerate(cameras):
        d = np.asarray(depth[v])
        rows, cols = np.nonzero(np.isfinite(d))
        uv = np.stack([cols + 0.5, rows + 0.5], axis=1)
        pts.append(cam.backproject(uv, d[rows, cols].astype(np.float64)))
    all_pts = np.concatenate(pts)
    return all_pts[rng.choice(len(all_pts), size=min(CHAMFER_POINTS, len(all_pts)), replace=False)]


def visible_points(means: np.ndarray, opacities: np.ndarray, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Centres (M, 3) and opacities (M,) of the Gaussians (N, 3), (N,) above ``OPACITY_FLOOR``, subsampled to
    ``CHAMFER_POINTS``: the Gaussians' side of the Chamfer distance."""
    keep = np.nonzero(opacities > OPACITY_FLOOR)[0]
    if len(keep) > CHAMFER_POINTS:
        keep = rng.choice(keep, size=CHAMFER_POINTS, replace=False)
    return means[keep], opacities[keep]


def splatter_points(splatter: torch.Tensor, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Centres and opacities of the visible Gaussians of one splatter image (V, 14, h, w)."""
    return visible_points(splatter[:, XYZ].permute(0, 2, 3, 1).reshape(-1, 3).numpy(),
                          splatter[:, OPACITY].reshape(-1).numpy(), rng)


@torch.no_grad()
def evaluate(checkpoint: str | Path | None, data: str | Path, split: str = "test", max_pairs: int | None = None,
             device: str = "cpu", seed: int = 0, sample_png: Path | None = None,
             lpips_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> list[dict]:
    """One row per (pair, method) with the metrics; the model row is skipped without a checkpoint.

    ``lpips_fn(pred, target)`` takes (N, 3, H, W) images in [-1, 1] (the ``lpips`` package's
    convention) and is only given when a local backbone loaded (:func:`partrm_gym.metrics.load_lpips`).
    """
    if max_pairs is not None and max_pairs < 1:
        raise UsageError(f"max_pairs={max_pairs}: score at least 1 pair (or None for all)")
    dataset = PartDragDataset(data, split)
    model = None
    if checkpoint is not None:
        model, _, _ = load_checkpoint(checkpoint, device=device)
        model.eval()
    views = torch.tensor(evaluation_view_indices(dataset.config.rig))
    n = len(dataset) if max_pairs is None else min(max_pairs, len(dataset))
    # spread the evaluated pairs over all objects when only some are scored
    order = np.linspace(0, len(dataset) - 1, n).round().astype(int) if n < len(dataset) else np.arange(n)
    rng = np.random.default_rng(seed)
    rows, grid = [], []
    for i in tqdm(order, desc=f"eval {split}", unit="pair"):
        item = dataset[int(i)]
        batch = {k: v.unsqueeze(0).to(device) for k, v in item.items()}
        preds = {"static": batch["splatter_src"], "gt_upper_bound": batch["splatter_dst"]}
        if model is not None:
            preds["model"] = model(batch["input_rgb"], batch["plucker"], batch["drags"], batch["drag_mask"]).float()
        target = batch["target_rgb"][:, views]
        truth_pts = simulator_points(item["depth_dst"], dataset.view_cameras, rng) if "depth_dst" in item else None
        renders = {}
        for method, splat in preds.items():
            rgb, _ = render_splatter(splat, batch["viewmats"][:, views], batch["Ks"][:, views],
                                  target.shape[-1], target.shape[-2])
            rgb = rgb.clamp(0, 1)
            renders[method] = rgb
            row = {"pair": int(i), "category": dataset.category(int(i)), "method": method,
                   "psnr": float(psnr(rgb, target)),
                   "ssim": float(np.mean([ssim(rgb[0, v], target[0, v]) for v in range(len(views))]))}
            if lpips_fn is not None:
                row["lpips"] = float(lpips_fn(rgb[0] * 2 - 1, target[0] * 2 - 1).mean())
            if truth_pts is not None:
                pts, w = splatter_points(splat[0].cpu(), rng)
                row["chamfer"] = float(chamfer_distance(pts, truth_pts, weights_a=w)) if len(pts) else float("nan")
            rows.append(row)
        if sample_png is not None and len(grid) < 6:
            grid.append([to_uint8_image(target[0, v]) for v in (0, 3)] +
                        [to_uint8_image(renders[m][0, v]) for m in METHODS if m in renders for v in (0, 3)])
    if sample_png is not None and grid:
        atomic_write_image(sample_png, image_grid(grid))
    return rows


def summarise(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """{category | 'all': {method: {metric: mean}}}."""
    acc: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for key in (r["category"], "all"):
            for m in METRICS:
                if m in r and np.isfinite(r[m]):
                    acc[(key, r["method"])][m].append(r[m])
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for (cat, method), vals in acc.items():
        out[cat][method] = {m: float(np.mean(v)) for m, v in vals.items()}
        out[cat][method]["pairs"] = len(next(iter(vals.values())))
    return dict(out)


def markdown(summary: dict, lpips_note: str) -> str:
    with_lpips = any("lpips" in m for per_cat in summary.values() for m in per_cat.values())
    lines = ["| category | method | pairs | PSNR ↑ | SSIM ↑ | Chamfer ↓ |" + (" LPIPS ↓ |" if with_lpips else ""),
             "|---|---|---|---|---|---|" + ("---|" if with_lpips else "")]
    for cat in sorted(summary, key=lambda c: (c == "all", c)):
        for method in METHODS:
            if method in summary[cat]:
                s = summary[cat][method]
                lines.append(f"| {cat} | {method} | {s['pairs']} | {s.get('psnr', float('nan')):.2f} | "
                             f"{s.get('ssim', float('nan')):.4f} | {s.get('chamfer', float('nan')):.4f} |"
                             + (f" {s.get('lpips', float('nan')):.4f} |" if with_lpips else ""))
    return "\n".join(lines) + ("" if with_lpips else f"\n\nLPIPS: {lpips_note}") + "\n"


def plot(summary: dict, path: Path) -> None:
    cats = sorted(summary, key=lambda c: (c == "all", c))
    fig, ax = subplots(figsize=(1.6 * len(cats) + 2, 3.2))
    width = 0.8 / len(METHODS)
    for k, method in enumerate(METHODS):
        vals = [summary[c].get(method, {}).get("psnr", np.nan) for c in cats]
        ax.bar(np.arange(len(cats)) + k * width, vals, width, label=method)
    ax.set_xticks(np.arange(len(cats)) + width, cats, rotation=20)
    ax.set_ylabel("PSNR (dB), 8 evaluation views")
    ax.legend()
    save_figure(fig, path, dpi=110)


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    available, reason = lpips_available(args.lpips_weights)
    lpips_fn = load_lpips(args.lpips_weights, args.device) if available else None
    rows = evaluate(None if args.checkpoint in ("none", "") else args.checkpoint, args.data, args.split,
                    args.max_pairs, args.device, sample_png=out / f"samples_{args.split}.png", lpips_fn=lpips_fn)
    summary = summarise(rows)
    lpips_note = f"unavailable ({reason})"
    pairs = f" --max-pairs {args.max_pairs}" if args.max_pairs else ""
    text = f"# Evaluation ({args.split} split)\n\nCommand: `partrm-gym eval {args.checkpoint} --data {args.data} " \
           f"--split {args.split}{pairs}`\n\n" + markdown(summary, lpips_note)
    atomic_write_text(out / f"eval_{args.split}.md", text)
    atomic_write_csv(out / f"eval_{args.split}.csv", rows, ["pair", "category", "method", *METRICS])
    atomic_write_json(out / f"eval_{args.split}.json", summary)
    plot(summary, out / f"eval_{args.split}.png")
    print(text)
    print(f"wrote {out}/eval_{args.split}.{{md,csv,json,png}}")
    return 0
