"""``partrm-gym bench sim``: simulator costs that bound datagen and the twin env."""

from __future__ import annotations

import argparse
import time

import numpy as np

from partrm_gym.assets import CATEGORIES
from partrm_gym.bench.report import emit_report, markdown_table, median_ms
from partrm_gym.cameras import canonical_rig, evaluation_rig
from partrm_gym.drags import drags_between_states, solve_drag
from partrm_gym.scene import SUPERSAMPLE, Scene

RESOLUTIONS = (64, 128, 256)


def _bench_category(category: str, repeats: int) -> list[object]:
    t = time.perf_counter()
    scene = Scene.procedural(category, 0)
    load_ms = (time.perf_counter() - t) * 1e3
    with scene:
        scene.set_joint_fractions(np.full(len(scene.joints), 0.5))
        per_view = [median_ms(lambda r=r: scene.render(canonical_rig(r)[0], supersample=1), repeats)
                    for r in RESOLUTIONS]
        supersampled = median_ms(lambda: scene.render(canonical_rig(64)[0]), repeats)
        cams = canonical_rig(128)
        per_state = median_ms(lambda: scene.render_views(cams), repeats)
        cam = evaluation_rig(128)[0]
        a = np.array([j.lower for j in scene.joints])
        b = np.array([j.upper for j in scene.joints])
        drags = drags_between_states(scene, 0, a, b, cam, max_drags=1)
        solve = median_ms(lambda: solve_drag(scene, cam, drags), repeats) if len(drags) else float("nan")
    return [category, load_ms, *per_view, supersampled, per_state, solve]


def bench_sim(args: argparse.Namespace) -> str:
    rows = [_bench_category(category, args.repeats) for category in CATEGORIES]
    headers = ["category", "load+normalise ms", *(f"view {r}² ms" for r in RESOLUTIONS),
               f"view 64², {SUPERSAMPLE}×{SUPERSAMPLE} supersampled (default) ms",
               "state (4 views 128², supersampled) ms", "drag solve ms"]
    return emit_report("Simulator (PyBullet TinyRenderer)", "partrm-gym bench sim", markdown_table(headers, rows),
                       args.out)
