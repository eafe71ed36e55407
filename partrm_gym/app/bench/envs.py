"""``partrm-gym bench envs``: imagination against the simulator it stands in for, in one run.

Every figure is on drags that grasp the object (each env runs the scripted policy): the
world-model env's step latency against the PyBullet twin's, and env-steps/s of the batched
world-model vector env (1, 8 and 32 envs, both transitions) against the twin alone and against
8 twins in Gymnasium's ``AsyncVectorEnv`` (one process each).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

from partrm_gym.app.bench.report import emit_report, markdown_table
from partrm_gym.policies.scripted import ScriptedPolicy
from partrm_gym.threads import child_threads

VECTOR_SIZES = (1, 8, 32)
TWIN_PROCESSES = 8


def _median_step_ms(env, steps: int, seed: int = 0) -> tuple[float, float]:
    """Median step time of scripted drags (they start on the object) and the share of steps that grasp a part."""
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


def _vector_rate(venv, steps: int) -> tuple[float, float]:
    """(env-steps/s, share of drags that grasp a part) of a vector env over ``steps`` batched steps of scripted
    drags, after its reset (not timed)."""
    n = venv.num_envs
    policies = [ScriptedPolicy(i) for i in range(n)]
    obs, _ = venv.reset(seed=0)
    t, hits = time.perf_counter(), 0
    for _ in range(steps):
        actions = np.stack([p({k: v[i] for k, v in obs.items()}) for i, p in enumerate(policies)])
        obs, _, _, _, info = venv.step(actions)
        hits += int((~info["missed"]).sum())
    return n * steps / (time.perf_counter() - t), hits / (n * steps)


def _make_twin() -> gym.Env:
    """A twin for one ``AsyncVectorEnv`` process (Gymnasium also calls it once in this process, for the spaces)."""
    from partrm_gym.envs.sim_env import PartRMSimEnv

    return PartRMSimEnv(category="drawer", max_steps=1000, control_mode=ScriptedPolicy.control_mode)


def bench_envs(args: argparse.Namespace) -> str:
    import torch

    from partrm_gym.envs.sim_env import PartRMSimEnv
    from partrm_gym.envs.vector_env import PartRMVectorEnv
    from partrm_gym.envs.world_model_env import PartRMEnv
    from partrm_gym.model.world_model import WorldModel

    device = "cuda" if torch.cuda.is_available() and args.device in ("auto", "cuda") else "cpu"
    wm = WorldModel.from_pretrained(args.model, device=device)
    task = {"category": "drawer", "max_steps": 1000, "control_mode": ScriptedPolicy.control_mode}
    twin_ms, twin_hits = _median_step_ms(PartRMSimEnv(**task), args.repeats)
    latency = [["PartRMSim-Drawer-v0 (twin)", "-", twin_ms, twin_hits, 1.0]]
    for transition in ("articulated", "regenerate"):
        ms, hits = _median_step_ms(PartRMEnv(world_model=wm, transition=transition, **task), args.repeats)
        latency.append(["PartRM-Drawer-v0 (world model)", transition, ms, hits, ms / twin_ms])
    twin_rate = 1000 / twin_ms
    throughput = [["twin, 1 env", "-", 1, twin_rate, twin_hits, 1.0]]
    with child_threads(1):  # the twin processes share the cores: one thread each
        twins = gym.vector.AsyncVectorEnv([_make_twin] * TWIN_PROCESSES, context="spawn")
    rate, hits = _vector_rate(twins, args.repeats)
    twins.close()
    throughput.append([f"twin, AsyncVectorEnv ({TWIN_PROCESSES} processes)", "-", TWIN_PROCESSES, rate, hits,
                       rate / twin_rate])
    for transition in ("articulated", "regenerate"):
        for n in VECTOR_SIZES:
            venv = PartRMVectorEnv(n, world_model=wm, transition=transition, **task)
            rate, hits = _vector_rate(venv, args.repeats)
            venv.close()
            throughput.append(["world model, PartRMVectorEnv", transition, n, rate, hits, rate / twin_rate])
    table = "### Step latency (one env)\n\n" + markdown_table(
        ["env", "transition", "ms per step (median)", "share of drags that grasp a part", "× the twin's time"],
        latency)
    table += "\n\n### Env-steps per second\n\n" + markdown_table(
        ["what", "transition", "envs", "env-steps/s", "share of drags that grasp a part",
         "× the twin's single-env steps/s"], throughput)
    table += ("\n\nResets are not timed (each vector env resets once before its timed steps). The regenerate "
              "transition batches one model call per vector step; the articulated one calls no network during a "
              "step. Twin processes each take one thread.")
    table += f"\n\nWorld model on {device} (the simulator and the image processing always run on the CPU)."
    return emit_report("Imagination against the simulator: step latency and env-steps/s",
                       f"partrm-gym bench envs --repeats {args.repeats}", table, args.out)
