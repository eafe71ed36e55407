"""Running episodes and summarising them: success with a Wilson interval, return, steps, final joint error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (well-behaved at 0 and n successes, unlike the normal one)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


@dataclass
class EpisodeResult:
    success: bool
    ret: float
    steps: int
    joint_error: float | None = None
    frames: list[np.ndarray] = field(default_factory=list)


POLICY_STREAM = 0x504F4C  # tags a policy's random stream apart from the env's (both derive from the episode seed)


def policy_seed(seed: int) -> int:
    """The seed of a policy's own random draws in the episode seeded ``seed``: fixed by it, but a stream apart
    from the env's. Why: gymnasium seeds the env's generator with ``SeedSequence(seed)``, exactly as
    ``np.random.default_rng(seed)`` does, so a policy seeded with the episode's seed would draw the very numbers
    the env drew its task from (a random drag's start would follow which drawer is the task)."""
    return int(np.random.SeedSequence([seed, POLICY_STREAM]).generate_state(1)[0])


def run_episode(env: gym.Env, act: Any, seed: int, record: bool = False) -> EpisodeResult:
    """One episode; ``act(env, obs)`` or ``act(obs)`` returns the action.

    ``seed`` seeds the env's reset and, through ``act.reset(policy_seed(seed))`` where the policy has one, the
    policy's own random draws. Why: an episode is then the same episode wherever it runs — in the twin and in
    imagination, alone or after other episodes — so a paired comparison differs only by the world, not by how far
    a shared random stream had been consumed by earlier episodes (common random numbers)."""
    reseed = getattr(act, "reset", None)
    if reseed is not None:
        reseed(policy_seed(seed))
    obs, info = env.reset(seed=seed)
    wants_env = getattr(act, "act", None)
    frames = [_frame(obs)] if record else []
    total, steps, done = 0.0, 0, False
    while not done:
        action = wants_env(env, obs) if wants_env is not None else act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        steps += 1
        done = terminated or truncated
        if record:
            frames.append(_frame(obs))
    return EpisodeResult(bool(info.get("is_success", False)), total, steps, info.get("joint_error"), frames)


def _frame(obs: dict[str, np.ndarray]) -> np.ndarray:
    """The observation beside the goal, one video frame."""
    return np.concatenate([obs["image"], obs["goal"]], axis=1)  # side by side (width), not stacked channels


def summarise(results: list[EpisodeResult]) -> dict[str, Any]:
    wins = sum(r.success for r in results)
    lo, hi = wilson_interval(wins, len(results))
    errors = [r.joint_error for r in results if r.joint_error is not None]
    return {"episodes": len(results), "success_rate": wins / max(len(results), 1), "ci95": [lo, hi],
            "mean_return": float(np.mean([r.ret for r in results])) if results else float("nan"),
            "mean_steps": float(np.mean([r.steps for r in results])) if results else float("nan"),
            "mean_final_joint_error": float(np.mean(errors)) if errors else None}


__all__ = ["EpisodeResult", "policy_seed", "run_episode", "summarise", "wilson_interval"]
