"""``partrm-gym bench envs``: step latency of the world-model env and its twin, batched imagined steps/s."""

from __future__ import annotations

import argparse
import time

import numpy as np

from partrm_gym.bench.report import emit_report, markdown_table

CENTRE_DRAG = np.array([0.0, 0.1, -0.2, 0.1], np.float32)  # starts on the object in most scenes


def _median_step_ms(env, steps: int, seed: int = 0) -> float:  # noqa: ANN001
    env.reset(seed=seed)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(CENTRE_DRAG)
        times.append((time.perf_counter() - t) * 1e3)
        if terminated or truncated:
            env.reset()
    return float(np.median(times))


def bench_envs(args: argparse.Namespace) -> str:
    from partrm_gym.envs.sim_env import PartRMSimEnv
    from partrm_gym.envs.vector_env import PartRMVectorEnv
    from partrm_gym.envs.world_model_env import PartRMEnv
    from partrm_gym.model.world_model import WorldModel

    wm = WorldModel.from_pretrained(args.model)
    rows = [["PartRMSim-Drawer-v0 (twin)", 1, _median_step_ms(PartRMSimEnv(category="drawer"), args.repeats)],
            ["PartRM-Drawer-v0 (world model)", 1, _median_step_ms(PartRMEnv(world_model=wm, category="drawer"),
                                                                  args.repeats)]]
    for n in (4, 8):
        venv = PartRMVectorEnv(n, world_model=wm, category="drawer", max_steps=1000)
        venv.reset(seed=0)
        actions = np.tile(CENTRE_DRAG, (n, 1))
        t = time.perf_counter()
        for _ in range(args.repeats):
            venv.step(actions)
        dt = (time.perf_counter() - t) / args.repeats
        rows.append([f"PartRM-Drawer-v0 vector (batched model call), {n} envs", n, dt * 1e3 / n])
        venv.close()
    table = markdown_table(["env", "envs", "ms per env-step (median / mean for vector)"], rows)
    table += "\n\nImagined steps/s: " + ", ".join(f"{r[1]} env(s): {1000 / r[2]:.1f}" for r in rows[1:])
    return emit_report("Environment step latency", f"partrm-gym bench envs --repeats {args.repeats}", table, args.out)
