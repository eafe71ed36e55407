"""``partrm-gym policy eval``: success rate (95% Wilson interval), mean return and a video of a policy.

A policy is ``random``, ``scripted``, ``planner`` (CEM in imagination with a world model) or
the folder of an agent trained by ``partrm-gym policy train``. Episode ``i`` uses seed
``seed + i``, so every policy meets the same objects and goals (a paired comparison), and a
world-model env and its twin given the same seed start from the same task.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from partrm_gym.envs.task import TaskConfig
from partrm_gym.errors import UsageError
from partrm_gym.io import atomic_write_csv, atomic_write_gif, atomic_write_json
from partrm_gym.policies.agent_envs import make_env
from partrm_gym.policies.agents import AgentPolicy, load_agent
from partrm_gym.policies.episodes import EpisodeResult, run_episode, summarise
from partrm_gym.policies.planner import ImaginationPlanner, PlannerConfig
from partrm_gym.policies.scripted import make_policy

BUILTIN_POLICIES = ("random", "scripted", "planner")


def make_actor(policy: str, seed: int = 0, model_path: str | None = None,
               planner: PlannerConfig | None = None, world_model: Any = None, sample_actions: bool = False) -> Any:
    """A callable ``act(obs)`` or an object with ``act(env, obs)`` for ``run_episode``. ``sample_actions``: an
    agent samples from its policy instead of taking the mean action (:class:`AgentPolicy`)."""
    if policy in ("random", "scripted"):
        return make_policy(policy, seed)
    if policy == "planner":
        from partrm_gym.model.world_model import WorldModel

        return ImaginationPlanner(world_model or WorldModel.from_pretrained(model_path), planner or PlannerConfig(),
                                  seed)
    if not Path(policy).is_dir():
        raise FileNotFoundError(f"policy {policy!r} is neither one of {BUILTIN_POLICIES} nor an agent folder "
                                "(written by `partrm-gym policy train`, e.g. runs/ppo/final)")
    model, cfg = load_agent(policy)
    return AgentPolicy(model, cfg.env_kwargs.get("control_mode", TaskConfig.control_mode),
                       deterministic=not sample_actions, seed=seed)


def env_kwargs_for(actor: Any, env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """``env_kwargs`` with the control mode the actor acts in (an actor without one runs in the env's); a
    different ``control_mode`` in ``env_kwargs`` is an error, as the actions would mean something else."""
    kwargs = dict(env_kwargs or {})
    mode = getattr(actor, "control_mode", None)
    if mode is not None:
        if kwargs.get("control_mode", mode) != mode:
            raise UsageError(f"this policy acts in control_mode={mode!r}, the env was given "
                             f"control_mode={kwargs['control_mode']!r}; leave it out or use {mode!r}")
        kwargs["control_mode"] = mode
    return kwargs


def evaluate(actor: Any, env_id: str, env_kwargs: dict[str, Any] | None, episodes: int, seed: int,
             video_episodes: int = 1, desc: str = "eval") -> tuple[dict[str, Any], list[EpisodeResult]]:
    """Run ``episodes`` episodes; the first ``video_episodes`` keep their frames (observation | goal)."""
    if episodes < 1:
        raise UsageError(f"episodes={episodes}: evaluate at least 1 episode")
    env = make_env(env_id, env_kwargs_for(actor, env_kwargs)).unwrapped  # the dict observation: image and goal
    try:
        results = [run_episode(env, actor, seed + i, record=i < video_episodes)
                   for i in tqdm(range(episodes), desc=desc, unit="ep")]
    finally:
        env.close()
    return summarise(results), results


def write_report(out: Path, name: str, summary: dict[str, Any], results: list[EpisodeResult]) -> None:
    """Per-episode CSV, GIF, then the summary JSON last (its presence marks a finished evaluation)."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out / f"{name}.csv", [
        {"episode": i, "success": int(r.success), "return": round(r.ret, 6), "steps": r.steps,
         "final_joint_error": "" if r.joint_error is None else round(r.joint_error, 6)} for i, r in enumerate(results)])
    frames = [f for r in results for f in r.frames]
    if frames:
        atomic_write_gif(out / f"{name}.gif", np.stack(frames))
    atomic_write_json(out / f"{name}.json", summary)


def format_summary(name: str, s: dict[str, Any]) -> str:
    lo, hi = s["ci95"]
    err = s["mean_final_joint_error"]
    return (f"{name}: success {100 * s['success_rate']:.0f}% (95% CI {100 * lo:.0f}-{100 * hi:.0f}%) over "
            f"{s['episodes']} episodes, mean return {s['mean_return']:.3f}, mean steps {s['mean_steps']:.1f}"
            + (f", final joint error {err:.3f}" if err is not None else ""))


def main(args: argparse.Namespace) -> int:
    env_kwargs = {"split": args.split, **({"partnet_root": args.partnet} if getattr(args, "partnet", None) else {})}
    planner = PlannerConfig(candidates=args.candidates, iterations=args.iterations)
    if args.sample_actions and args.policy in BUILTIN_POLICIES:
        raise UsageError(f"--sample-actions is for a trained agent's folder; {args.policy!r} has no action "
                         "distribution to sample (leave the flag out)")
    actor = make_actor(args.policy, args.seed, args.model, planner, sample_actions=args.sample_actions)
    name = Path(args.policy).name if args.policy not in BUILTIN_POLICIES else args.policy
    summary, results = evaluate(actor, args.env, env_kwargs, args.episodes, args.seed, args.video_episodes,
                                desc=f"{name} on {args.env}")
    summary.update({"policy": args.policy, "env": args.env, "env_kwargs": env_kwargs, "seed": args.seed,
                    "planner": asdict(planner) if args.policy == "planner" else None,
                    "sample_actions": args.sample_actions})
    write_report(Path(args.out), name, summary, results)
    print(format_summary(name, summary))
    print(f"wrote {args.out}/{name}.{{json,csv,gif}}")
    return 0
