"""``partrm-gym bench envs``: step latency of the world-model env and its twin, batched imagined steps/s."""

from __future__ import annotations

import argparse
import time

import numpy as np

from partrm_gym.bench.report import emit_report, markdown_table
from partrm_gym.policies.scripted import ScriptedPolicy


def _median_step_ms(env, steps: int, seed: int = 0) -> tuple[float, float]:  # noqa: ANN001
    """Median step time of scripted drags (they start on the object) and the share of steps that hit it."""
    policy = ScriptedPolicy(seed)
    obs, _ = env.reset(seed=seed)
    times, hits = [], 0
    for _ in range(steps):
        action = policy(obs)
        t = time.perf_counter()
        obs, _, terminated, truncated, info = env.step(action)
        times.append((time.perf_counter() - t) * 1e3)
        hits += not info.get("missed", False)
        if terminated or truncated:
            obs, _ = env.reset()
    return float(np.median(times)), hits / steps


def bench_envs(args: argparse.Namespace) -> str:
    import torch

    from partrm_gym.envs.sim_env import PartRMSimEnv
    from partrm_gym.envs.vector_env import PartRMVectorEnv
    from partrm_gym.envs.world_model_env import PartRMEnv
    from partrm_gym.model.world_model import WorldModel

    device = "cuda" if torch.cuda.is_available() and args.device in ("auto", "cuda") else "cpu"
    wm = WorldModel.from_pretrained(args.model, device=device)
    rows = [["PartRMSim-Drawer-v0 (twin)", "-", 1, *_median_step_ms(PartRMSimEnv(category="drawer", max_steps=1000),
                                                                      args.repeats)]]
    for transition in ("articulated", "regenerate"):
        rows.append(["PartRM-Drawer-v0 (world model)", transition, 1, *_median_step_ms(
            PartRMEnv(world_model=wm, category="drawer", max_steps=1000, transition=transition), args.repeats)])
        for n in (4, 8):
            venv = PartRMVectorEnv(n, world_model=wm, category="drawer", max_steps=1000, transition=transition)
            policies = [ScriptedPolicy(i) for i in range(n)]
            obs, _ = venv.reset(seed=0)
            t, hits = time.perf_counter(), 0
            for _ in range(args.repeats):
                actions = np.stack([p({k: v[i] for k, v in obs.items()}) for i, p in enumerate(policies)])
                obs, _, _, _, info = venv.step(actions)
                hits += int((~info["missed"]).sum())
            dt = (time.perf_counter() - t) / args.repeats
            rows.append([f"PartRM-Drawer-v0 vector, {n} envs", transition, n, dt * 1e3 / n, hits / (n * args.repeats)])
            venv.close()
    table = markdown_table(["env", "transition", "envs", "ms per env-step (median; mean for vector)",
                            "share of drags that grasp a part"], rows)
    table += "\n\nImagined env-steps/s: " + ", ".join(f"{r[1]} {r[2]} env(s): {1000 / r[3]:.1f}" for r in rows[1:])
    table += ("\n\nThe regenerate transition batches one model call per vector step; the articulated one calls no "
              "network during a step (its vector env steps each env in turn).")
    table += f"\n\nWorld model on {device} (the simulator and the image processing always run on the CPU)."
    return emit_report("Environment step latency", f"partrm-gym bench envs --repeats {args.repeats}", table, args.out)
