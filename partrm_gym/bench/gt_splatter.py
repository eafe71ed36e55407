"""``partrm-gym bench gt-splatter``: how well GT splatter images reproduce the simulator.

Per category: foreground PSNR of the GT splatter rendered back into the 4 canonical views it
was built from, and PSNR (whole image) in the 8 evaluation views — the upper bound of any
reconstruction from the 4 input views — with both rasterize modes: "antialiased" (the
package default) and "classic" (the original 3DGS rules).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from partrm_gym.assets import CATEGORIES
from partrm_gym.bench.report import emit_report, markdown_table
from partrm_gym.cameras import canonical_rig, evaluation_rig, stack_cameras
from partrm_gym.gaussians import Gaussians
from partrm_gym.gt_splatter import gt_splatter
from partrm_gym.metrics import psnr
from partrm_gym.rendering import RASTERIZE_MODES, RasterizeMode, rasterize
from partrm_gym.scene import Scene


def gt_splatter_psnr(category: str, seed: int, resolution: int, splat_resolution: int,
                     mode: RasterizeMode = "antialiased") -> tuple[float, float]:
    """(canonical-view foreground PSNR, evaluation-view PSNR) for one object half open."""
    with Scene.procedural(category, seed) as scene:
        scene.set_joint_fractions(np.full(len(scene.joints), 0.5))
        splat_cams = canonical_rig(splat_resolution)
        splat = torch.from_numpy(gt_splatter(scene, splat_cams))[None]
        scores = []
        for cams, use_mask in ((canonical_rig(resolution), True), (evaluation_rig(resolution), False)):
            frames = scene.render_views(cams)
            out = rasterize(Gaussians.from_splatter(splat), *stack_cameras(cams), resolution, resolution, mode=mode)
            target = torch.from_numpy(np.stack([f.rgb for f in frames])).float() / 255.0
            mask = torch.from_numpy(np.stack([f.object_mask for f in frames]))[..., None] if use_mask else None
            scores.append(float(psnr(out.rgb[0].clamp(0, 1), target, mask)))
    return scores[0], scores[1]


def bench_gt_splatter(args: argparse.Namespace) -> str:
    rows = []
    for category in CATEGORIES:
        vals = np.array([[gt_splatter_psnr(category, seed, args.resolution, args.resolution, mode)
                          for mode in RASTERIZE_MODES] for seed in range(args.objects)])
        rows.append([category, *vals.mean(axis=0).reshape(-1)])
    rows.append(["mean", *np.mean([r[1:] for r in rows], axis=0)])
    table = markdown_table(["category", *[f"{mode}: {what}" for mode in RASTERIZE_MODES
                                          for what in ("canonical views, foreground PSNR", "evaluation views PSNR")]],
                           rows)
    return emit_report(f"GT splatter fidelity ({args.objects} objects per category, half open, "
                       f"{args.resolution}² splatter and views)",
                       f"partrm-gym bench gt-splatter --resolution {args.resolution} --objects {args.objects}",
                       table, args.out)
