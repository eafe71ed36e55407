"""``partrm-gym bench all``: every benchmark in one Markdown report (the README's table comes from it)."""

from __future__ import annotations

import argparse

from partrm_gym.app.bench.report import write_report

# The benches `bench all` runs, in report order (each a `bench NAME` row of the CLI's table).
ALL = ("envs", "render", "sim", "pipeline", "gt-splatter", "rollout", "actions")
# bench_all runs the rollout once per transition, so both stand side by side in the report
ROLLOUT_TRANSITIONS = ("articulated", "regenerate")


def bench_all(args: argparse.Namespace) -> str:
    import importlib

    from partrm_gym.app.cli import COMMANDS

    targets = {c.name: c.target for c in COMMANDS}
    sections = []
    for name in ALL:
        module, function = targets[f"bench {name}"].split(":")
        run = getattr(importlib.import_module(module), function)
        for transition in ROLLOUT_TRANSITIONS if name == "rollout" else (None,):
            extra = {"transition": transition} if transition else {}
            sections.append(run(argparse.Namespace(**{**vars(args), "out": None, **extra})))
    text = f"# Benchmarks\n\nAll sections: `partrm-gym bench all --repeats {args.repeats}`.\n\n" + "\n".join(sections)
    if args.out:
        write_report(args.out, text)
    return text
