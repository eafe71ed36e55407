"""``partrm-gym bench envs``: imagination against the simulator it stands in for, in one run.

Every figure is on drags that grasp the object (each env runs the scripted policy): the
world-model env's step and reset latency against the PyBullet twin's, and env-steps/s (resets of
episodes that end on success included) of the batched
world-model vector env (1, 8 and 32 envs, both transitions) against the twin alone and against
8 twins in Gymnasium's ``AsyncVectorEnv`` (one process each).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from partrm_gym.app.bench.report import emit_report, markdown_table, view_fit_flag, view_fit_kwargs
from partrm_gym.policies.scripted import ScriptedPolicy
from partrm_gym.threads import child_threads

VECTOR_SIZES = (1, 8, 32)
TWIN_PROCESSES = 8


def _step_and_reset_times(env, steps: int, seed: int = 0) -> tuple[float, float, float, float]:
    """Scripted drags (they start on the object) on one env: (median step ms, share of steps that grasp a part,
    median reset ms, env-steps/s with its resets). An episode ends on success (or after ``max_steps``) and the env
    is reset then, as in training: the rate counts those resets. The env is closed afterwards."""
    policy = ScriptedPolicy(seed)
    times, resets, hits = [], [], 0
    try:
        obs, _ = env.reset(seed=seed)
        start = time.perf_counter()
        for _ in range(steps):
            action = policy(obs)
            t = time.perf_counter()
            obs, _, terminated, truncated, info = env.step(action)
            times.append((time.perf_counter() - t) * 1e3)
            hits += not info.get("missed", False)
            if terminated or truncated:
                t = time.perf_counter()
                obs, _ = env.reset()
                resets.append((time.perf_counter() - t) * 1e3)
        rate = steps / (time.perf_counter() - start)
    finally:
        env.close()
    return float(np.median(times)), hits / steps, float(np.median(resets)) if resets else float("nan"), rate


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


def bench_envs(args: argparse.Namespace, vector_sizes: Sequence[int] = VECTOR_SIZES,
               twin_processes: int = TWIN_PROCESSES) -> str:
    """The report of ``partrm-gym bench envs``. ``vector_sizes``: the PartRMVectorEnv sizes timed (``bench gpu``
    takes 1, 8 and 64); ``twin_processes``: the AsyncVectorEnv of twins compared with (0 leaves that row out)."""
    import torch

    from partrm_gym.envs.sim_env import PartRMSimEnv
    from partrm_gym.envs.vector_env import PartRMVectorEnv
    from partrm_gym.envs.world_model_env import PartRMEnv
    from partrm_gym.model.world_model import WorldModel

    device = "cuda" if torch.cuda.is_available() and args.device in ("auto", "cuda") else "cpu"
    wm = WorldModel.from_pretrained(args.model, device=device)
    task = {"category": "drawer", "max_steps": 1000, "control_mode": ScriptedPolicy.control_mode}
    fit_steps = getattr(args, "view_fit_steps", None)
    fit = view_fit_kwargs(fit_steps)
    twin_ms, twin_hits, twin_reset_ms, twin_rate = _step_and_reset_times(PartRMSimEnv(**task), args.repeats)
    latency = [["PartRMSim-Drawer-v0 (twin)", "-", twin_ms, twin_reset_ms, twin_hits, 1.0]]
    for transition in ("articulated", "regenerate"):
        ms, hits, reset_ms, _ = _step_and_reset_times(PartRMEnv(world_model=wm, transition=transition, **fit, **task),
                                                      args.repeats)
        latency.append(["PartRM-Drawer-v0 (world model)", transition, ms, reset_ms, hits, ms / twin_ms])
    throughput = [["twin, 1 env", "-", 1, twin_rate, twin_hits, 1.0]]
    if twin_processes:
        with child_threads(1):  # the twin processes share the cores: one thread each
            twins = gym.vector.AsyncVectorEnv([_make_twin] * twin_processes, context="spawn")
        rate, hits = _vector_rate(twins, args.repeats)
        twins.close()
        throughput.append([f"twin, AsyncVectorEnv ({twin_processes} processes)", "-", twin_processes, rate, hits,
                           rate / twin_rate])
    for transition in ("articulated", "regenerate"):
        for n in vector_sizes:
            venv = PartRMVectorEnv(n, world_model=wm, transition=transition, **fit, **task)
            rate, hits = _vector_rate(venv, args.repeats)
            venv.close()
            throughput.append(["world model, PartRMVectorEnv", transition, n, rate, hits, rate / twin_rate])
    table = "### Step latency (one env)\n\n" + markdown_table(
        ["env", "transition", "ms per step (median)", "ms per reset (median)", "share of drags that grasp a part",
         "× the twin's step time"],
        latency)
    table += "\n\n### Env-steps per second\n\n" + markdown_table(
        ["what", "transition", "envs", "env-steps/s", "share of drags that grasp a part",
         "× the twin's single-env steps/s"], throughput)
    table += ("\n\nEvery env-steps/s counts the resets of episodes that end on success (the scripted drags solve many "
              "tasks within a few steps, in both worlds), as training would; each vector env's first reset is not "
              "timed. The regenerate transition batches one model call per vector step; the articulated one calls no "
              "network during a step, and a vector env resets all its envs that ended on one step in one model call. "
              "Twin processes each take one thread.")
    table += f"\n\nWorld model on {device} (the simulator and the image processing always run on the CPU)."
    return emit_report("Imagination against the simulator: step latency and env-steps/s",
                       f"partrm-gym bench envs --repeats {args.repeats}{view_fit_flag(fit_steps)}", table, args.out)
