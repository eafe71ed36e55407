"""``partrm-gym bench all``: every benchmark in one Markdown report (the README's table comes from it)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from partrm_gym.app.bench.report import write_report


@dataclass(frozen=True)
class _Part:
    name: str
    module: str
    function: str


PARTS = (_Part("envs", "partrm_gym.app.bench.envs", "bench_envs"),
         _Part("render", "partrm_gym.app.bench.render", "bench_render"),
         _Part("sim", "partrm_gym.app.bench.sim", "bench_sim"),
         _Part("pipeline", "partrm_gym.app.bench.pipeline", "bench_pipeline"),
         _Part("gt-splatter", "partrm_gym.app.bench.gt_splatter", "bench_gt_splatter"),
         _Part("rollout", "partrm_gym.app.bench.rollout", "bench_rollout"),
         _Part("actions", "partrm_gym.app.bench.actions", "bench_actions"))
# bench_all runs the rollout once per transition, so both stand side by side in the report
ROLLOUT_TRANSITIONS = ("articulated", "regenerate")


def bench_all(args: argparse.Namespace) -> str:
    import importlib

    sections = []
    for part in PARTS:
        run = getattr(importlib.import_module(part.module), part.function)
        for transition in ROLLOUT_TRANSITIONS if part.name == "rollout" else (None,):
            extra = {"transition": transition} if transition else {}
            sections.append(run(argparse.Namespace(**{**vars(args), "out": None, **extra})))
    text = f"# Benchmarks\n\nAll sections: `partrm-gym bench all --repeats {args.repeats}`.\n\n" + "\n".join(sections)
    if args.out:
        write_report(args.out, text)
    return text
