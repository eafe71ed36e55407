"""``partrm-gym bench sim``: simulator costs that bound datagen and the twin env."""

from __future__ import annotations

import argparse
import time

import numpy as np

from partrm_gym.app.bench.report import emit_report, markdown_table, median_ms
from partrm_gym.assets import CATEGORIES
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


def _bench_partnet(root: str) -> str:
    """Per PartNet category: objects, load time (validate, colour, face the front, normalise; median and max) and
    the 4 canonical views at 128² (supersampled), one run per object."""
    from partrm_gym.assets.partnet_root import find_partnet_objects

    by_category: dict[str, list[tuple[float, float]]] = {}
    for entry in find_partnet_objects(root):
        t = time.perf_counter()
        with Scene.from_partnet(entry.folder) as scene:
            load = time.perf_counter() - t
            t = time.perf_counter()
            scene.render_views(canonical_rig(128))
            by_category.setdefault(entry.partnet_category, []).append((load * 1e3, (time.perf_counter() - t) * 1e3))
    rows = []
    for category, times in sorted(by_category.items()) + [("all", [x for v in by_category.values() for x in v])]:
        load, render = np.array(times).T
        rows.append([category, len(times), float(np.median(load)), float(load.max()), float(np.median(render))])
    return markdown_table(["PartNet category", "objects", "load ms (median)", "load ms (max)",
                           "state (4 views 128², supersampled) ms (median)"], rows)


def bench_sim(args: argparse.Namespace) -> str:
    rows = [_bench_category(category, args.repeats) for category in CATEGORIES]
    headers = ["category", "load+normalise ms", *(f"view {r}² ms" for r in RESOLUTIONS),
               f"view 64², {SUPERSAMPLE}×{SUPERSAMPLE} supersampled (default) ms",
               "state (4 views 128², supersampled) ms", "drag solve ms"]
    table = markdown_table(headers, rows)
    command = "partrm-gym bench sim"
    if getattr(args, "partnet", None):
        table += "\n\nReal PartNet-Mobility objects:\n\n" + _bench_partnet(args.partnet)
        command += " --partnet DIR"
    return emit_report("Simulator (PyBullet TinyRenderer)", command, table, args.out)
