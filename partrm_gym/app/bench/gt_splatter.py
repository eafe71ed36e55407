"""``partrm-gym bench gt-splatter``: how well GT splatter images reproduce the simulator.

Per category: foreground PSNR of the GT splatter rendered back into the 4 canonical views it
was built from, and PSNR (whole image) in the 8 evaluation views — the upper bound of any
reconstruction from the 4 input views — for the back-projection alone and after the fit to
the canonical views (:class:`~partrm_gym.gt_splatter.SplatterFit`, what the dataset stores),
with the seconds the fit takes per state.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from partrm_gym.app.bench.report import emit_report, markdown_table
from partrm_gym.assets import CATEGORIES
from partrm_gym.cameras import canonical_rig, evaluation_rig, stack_cameras
from partrm_gym.gaussians import Gaussians
from partrm_gym.gt_splatter import DEFAULT_FIT, SplatterFit, gt_splatter
from partrm_gym.metrics import psnr
from partrm_gym.rendering import rasterize
from partrm_gym.scene import Scene

WORST_COLUMN = 4  # in the per-category numbers: the worst object's fitted canonical PSNR (a min, not a mean)


def gt_splatter_psnr(category: str, seed: int, resolution: int, splat_resolution: int,
                     fit: SplatterFit = DEFAULT_FIT) -> tuple[float, float]:
    """(canonical-view foreground PSNR, evaluation-view PSNR) for one object half open; the
    splatter is fitted to the canonical views at ``resolution``."""
    with Scene.procedural(category, seed) as scene:
        scene.set_joint_fractions(np.full(len(scene.joints), 0.5))
        splat = torch.from_numpy(gt_splatter(scene, canonical_rig(splat_resolution), fit,
                                             canonical_rig(resolution)))[None]
        scores = []
        for cams, use_mask in ((canonical_rig(resolution), True), (evaluation_rig(resolution), False)):
            frames = scene.render_views(cams)
            out = rasterize(Gaussians.from_splatter(splat), *stack_cameras(cams), resolution, resolution)
            target = torch.from_numpy(np.stack([f.rgb for f in frames])).float() / 255.0
            mask = torch.from_numpy(np.stack([f.object_mask for f in frames]))[..., None] if use_mask else None
            scores.append(float(psnr(out.rgb[0].clamp(0, 1), target, mask)))
    return scores[0], scores[1]


def bench_gt_splatter(args: argparse.Namespace) -> str:
    fitted = DEFAULT_FIT if args.fit_steps is None else SplatterFit(steps=args.fit_steps)
    splat_res = args.splatter_resolution or args.resolution
    rows = []
    for category in CATEGORIES:
        vals, seconds = [], []
        for seed in range(args.objects):
            plain = gt_splatter_psnr(category, seed, args.resolution, splat_res, SplatterFit(steps=0))
            t0 = time.perf_counter()
            fit = gt_splatter_psnr(category, seed, args.resolution, splat_res, fitted)
            seconds.append(time.perf_counter() - t0)
            vals.append([*plain, *fit])
        rows.append([category, *np.mean(vals, axis=0), float(np.min(np.array(vals)[:, 2])), float(np.mean(seconds))])
    per_category = np.array([r[1:] for r in rows])
    summary = per_category.mean(axis=0)
    summary[WORST_COLUMN] = per_category[:, WORST_COLUMN].min()
    rows.append(["mean", *summary])
    table = markdown_table(["category", "back-projected: canonical fg PSNR", "back-projected: evaluation PSNR",
                            f"fitted ({fitted.steps} steps): canonical fg PSNR", "fitted: evaluation PSNR",
                            "fitted: worst object, canonical fg", "s per object (fit + PSNRs)"], rows)
    return emit_report(f"GT splatter fidelity ({args.objects} objects per category, half open, {splat_res}² splatter, "
                       f"{args.resolution}² views; antialiased rendering)",
                       f"partrm-gym bench gt-splatter --resolution {args.resolution} --splatter-resolution "
                       f"{splat_res} --objects {args.objects} --fit-steps {fitted.steps}", table, args.out)
