"""Stable-Baselines3 agents trained in imagination (``PartRM-*``) or in the twin (``PartRMSim-*``).

``partrm-gym policy train CONFIG.yaml`` (or ``--algo ppo --env PartRM-Drawer-v0 --steps N``)
trains PPO or SAC with SB3 on ``n_envs`` copies of the chosen env (world-model envs batched into
one model call per step, twins in a ``DummyVecEnv``), logs to TensorBoard and
CSV, and checkpoints every ``checkpoint_every`` steps. Checkpoints are ``policy.safetensors``
+ ``agent.yaml`` (the resolved :class:`AgentConfig`) — SB3's own zip format pickles its
spaces and schedules, so it is not used. ``--resume`` restores the policy, the optimiser
and the step count; rollouts (and SAC's replay buffer) start afresh.

The observation is the current and the goal image stacked into one 6-channel image
(:class:`StackImageGoal`), so the CNN sees where they differ pixel by pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from stable_baselines3.common.vec_env import VecEnv

from partrm_gym.config import ConfigError, load_config, save_config
from partrm_gym.io import atomic_write_json
from partrm_gym.model.checkpoint import CHECKSUM_KEY, PROVENANCE, file_sha256, read_provenance, weights_match
from partrm_gym.provenance import provenance
from partrm_gym.registration import check_env_id
from partrm_gym.train.train_state import latest_checkpoint, load_training_state, save_training_state

POLICY_WEIGHTS, AGENT_CONFIG = "policy.safetensors", "agent.yaml"
SAC_ENTROPY = "entropy_coefficient.safetensors"
ALGOS = ("ppo", "sac")


@dataclass(frozen=True)
class AgentConfig:
    algo: Literal["ppo", "sac"] = "ppo"
    env_id: str = "PartRM-Drawer-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {split: train, model_path: ...}
    total_steps: int = 20_000
    n_envs: int = 4
    seed: int = 0
    learning_rate: float = 3e-4
    gamma: float = 0.95  # short episodes (max_steps 8): little need to look far ahead
    # PPO
    n_steps: int = 64  # per env and rollout
    batch_size: int = 64
    n_epochs: int = 4
    ent_coef: float = 0.0
    # SAC
    buffer_size: int = 20_000
    learning_starts: int = 500
    # logging / checkpoints
    checkpoint_every: int = 2_000
    snapshot_every: int = 0  # also keep the agent every this many steps in snapshots/ (never pruned); 0: none
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        for name in ("total_steps", "n_envs", "n_steps", "batch_size", "n_epochs", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.snapshot_every < 0:
            raise ValueError(f"snapshot_every must be >= 0 (0: no snapshots), got {self.snapshot_every}")
        check_env_id(self.env_id)


def stacked_space(observation_space: gym.spaces.Dict) -> gym.spaces.Box:
    """The Box of the current and goal images stacked along channels."""
    h, w, c = observation_space["image"].shape
    return gym.spaces.Box(0, 255, (h, w, 2 * c), np.uint8)


class StackImageGoal(gym.ObservationWrapper):
    """Dict(image, goal) of (H, W, 3) uint8 -> one (H, W, 6) uint8 image."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = stacked_space(env.observation_space)

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return _stack(observation)


def _stack(obs: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([obs["image"], obs["goal"]], axis=-1)


def make_vec_env(cfg: AgentConfig) -> Any:
    """SB3 VecEnv: world-model envs batch their model calls (:class:`WorldModelVecEnv`), twins step one by one."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    if cfg.env_id.startswith("PartRM-"):
        return WorldModelVecEnv(cfg.env_id, cfg.env_kwargs, cfg.n_envs, cfg.seed)
    venv = DummyVecEnv([lambda i=i: make_env(cfg.env_id, cfg.env_kwargs, cfg.seed + i) for i in range(cfg.n_envs)])
    venv.seed(cfg.seed)
    return venv


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None, seed: int | None = None) -> gym.Env:
    import partrm_gym  # noqa: F401  (registers the env IDs)

    check_env_id(env_id)
    env = StackImageGoal(gym.make(env_id, **(env_kwargs or {})))
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


class WorldModelVecEnv(VecEnv):
    """SB3's view of ``gym.make_vec("PartRM-*", n)``: one batched world-model call per step for all n envs.

    SB3 wants an ended episode reset within the same step and its last observation in
    ``info["terminal_observation"]``: the vector env's SAME_STEP autoreset provides exactly that.
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], n_envs: int, seed: int) -> None:
        import partrm_gym  # noqa: F401  (registers the env IDs)

        self.venv = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point",
                                 autoreset_mode=AutoresetMode.SAME_STEP, **env_kwargs)
        super().__init__(n_envs, stacked_space(self.venv.single_observation_space), self.venv.single_action_space)
        self._seed: int | None = seed
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        obs, _ = self.venv.reset(seed=self._seed)
        self._seed = None  # later resets continue each env's own random stream
        return _stack(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float32)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, rewards, terms, truncs, info = self.venv.step(self._actions)
        dones = terms | truncs
        infos: list[dict] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            final = info["final_info"]  # Gymnasium's layout: arrays over envs
            infos[i] = {"is_success": bool(final["is_success"][i]) if "is_success" in final else False,
                        "terminal_observation": _stack(info["final_obs"][i]),
                        "TimeLimit.truncated": bool(truncs[i] and not terms[i])}
        return _stack(obs), rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def seed(self, seed: int | None = None) -> list[int | None]:
        self._seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def _envs(self, indices: Any) -> list[gym.Env]:
        return [self.venv.envs[i] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(e, attr_name) for e in self._envs(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        for e in self._envs(indices):
            setattr(e, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        return [getattr(e, method_name)(*args, **kwargs) for e in self._envs(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def build_agent(cfg: AgentConfig, env: Any) -> Any:
    """A fresh SB3 model of ``cfg.algo`` on ``env`` (a VecEnv or an env)."""
    from stable_baselines3 import PPO, SAC

    common = {"policy": "CnnPolicy", "env": env, "learning_rate": cfg.learning_rate, "gamma": cfg.gamma,
              "seed": cfg.seed, "device": cfg.device, "verbose": 0,
              "policy_kwargs": {"normalize_images": True}}
    if cfg.algo == "ppo":
        return PPO(n_steps=cfg.n_steps, batch_size=cfg.batch_size, n_epochs=cfg.n_epochs, ent_coef=cfg.ent_coef,
                   **common)
    return SAC(buffer_size=cfg.buffer_size, learning_starts=cfg.learning_starts, batch_size=cfg.batch_size, **common)


class _SpacesOnly(gym.Env):
    """Just the spaces an agent was trained with: enough to build its networks, nothing to simulate."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space


def agent_spaces(cfg: AgentConfig) -> _SpacesOnly:
    from dataclasses import fields

    from partrm_gym.envs.task import TaskConfig, make_spaces

    task = TaskConfig(**{k: v for k, v in cfg.env_kwargs.items() if k in {f.name for f in fields(TaskConfig)}})
    action, observation = make_spaces(task)
    return _SpacesOnly(stacked_space(observation), action)


def _optimizers(model: Any) -> dict[str, torch.optim.Optimizer]:
    """Every optimiser an SB3 model trains with (PPO: one; SAC: actor, critic and the entropy coefficient's)."""
    if hasattr(model, "actor") and hasattr(model, "critic"):
        opts = {"actor": model.actor.optimizer, "critic": model.critic.optimizer}
        if getattr(model, "ent_coef_optimizer", None) is not None:
            opts["ent_coef"] = model.ent_coef_optimizer
        return opts
    return {"policy": model.policy.optimizer}


def save_agent(model: Any, cfg: AgentConfig, folder: str | Path, metrics: dict[str, Any] | None = None) -> Path:
    """Weights, config and provenance (written last: its presence marks a complete folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{POLICY_WEIGHTS}.tmp"
    save_model(model.policy, str(tmp))  # (not save_file: SB3 shares the CNN between actor and critic)
    checksum = file_sha256(tmp)
    tmp.replace(folder / POLICY_WEIGHTS)
    if isinstance(getattr(model, "log_ent_coef", None), torch.Tensor):  # SAC's learned entropy coefficient
        save_file({"log_ent_coef": model.log_ent_coef.detach().cpu()}, str(folder / SAC_ENTROPY))
    save_config(cfg, folder / AGENT_CONFIG)
    atomic_write_json(folder / PROVENANCE, {**provenance(None, {"num_timesteps": int(model.num_timesteps),
                                                                **(metrics or {})}), CHECKSUM_KEY: checksum})
    return folder


def load_agent(folder: str | Path, env: Any = None, device: str = "cpu") -> tuple[Any, AgentConfig]:
    """An SB3 model with the saved policy weights, for acting; ``env`` defaults to the training spaces only."""
    folder = Path(folder)
    for name in (POLICY_WEIGHTS, AGENT_CONFIG):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing: an agent folder (written by `partrm-gym policy "
                                    f"train`) holds {POLICY_WEIGHTS} and {AGENT_CONFIG}")
    try:
        cfg = replace(load_config(AgentConfig, folder / AGENT_CONFIG), device=device)
    except (ConfigError, ValueError) as e:
        raise ValueError(f"{folder / AGENT_CONFIG}: invalid agent config ({e})") from None
    if not weights_match(folder / POLICY_WEIGHTS, read_provenance(folder)):
        raise ValueError(f"{folder / POLICY_WEIGHTS} is corrupt or was modified (its SHA-256 differs from "
                         f"{PROVENANCE}); train or copy it again")
    model = build_agent(cfg, env if env is not None else agent_spaces(cfg))
    _load_policy(model, folder / POLICY_WEIGHTS)
    return model, cfg


def _load_policy(model: Any, path: Path) -> None:
    try:
        load_model(model.policy, str(path), device=str(model.device))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path} is corrupt ({e}); train or copy it again") from None
    except RuntimeError as e:
        raise ValueError(f"{path} does not fit this {type(model).__name__} policy: {e}") from None


class AgentPolicy:
    """A trained agent as a policy over the env's dict observations (deterministic actions), in the control mode
    it was trained in."""

    def __init__(self, model: Any, control_mode: str | None = None) -> None:
        self.model = model
        self.control_mode = control_mode

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        action, _ = self.model.predict(_stack(obs), deterministic=True)
        return np.asarray(action, dtype=np.float32)


def train_agent(cfg: AgentConfig, out: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train, checkpoint every ``cfg.checkpoint_every`` steps, write ``out/final``; returns it."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import VecMonitor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / AGENT_CONFIG)
    venv = VecMonitor(make_vec_env(cfg))
    try:
        model = build_agent(cfg, venv)
        if resume:
            ckpt = latest_checkpoint(out)
            if ckpt is None:
                raise FileNotFoundError(f"--resume: no checkpoint under {out}/checkpoints; start without --resume")
            _load_policy(model, ckpt / POLICY_WEIGHTS)
            if (ckpt / SAC_ENTROPY).is_file():
                with torch.no_grad():
                    model.log_ent_coef.copy_(load_file(str(ckpt / SAC_ENTROPY))["log_ent_coef"])
            model.num_timesteps = int(load_training_state(ckpt, _optimizers(model))["step"])
        # one log folder per (re)start, so a resumed run does not overwrite the CSV of the first
        model.set_logger(configure(str(out / "logs" / f"from_step_{model.num_timesteps:07d}"),
                                   ["csv", "tensorboard"]))

        class Checkpoints(BaseCallback):
            def _on_step(self) -> bool:
                if self.num_timesteps % cfg.checkpoint_every < cfg.n_envs:
                    save_training_state(out, self.num_timesteps, lambda d: save_agent(model, cfg, d),
                                        _optimizers(model), {})
                if cfg.snapshot_every and self.num_timesteps % cfg.snapshot_every < cfg.n_envs:
                    save_agent(model, cfg, snapshot_dir(out, self.num_timesteps // cfg.snapshot_every
                                                        * cfg.snapshot_every))
                return True

        remaining = cfg.total_steps - model.num_timesteps
        if remaining > 0:
            model.learn(remaining, callback=Checkpoints(), progress_bar=progress, reset_num_timesteps=not resume)
        return save_agent(model, cfg, out / "final")
    finally:
        venv.close()


def snapshot_dir(run: str | Path, steps: int) -> Path:
    """Where ``train_agent`` keeps the agent of ``steps`` env steps when ``snapshot_every`` asks for it."""
    return Path(run) / "snapshots" / f"step_{steps:08d}"


# -- evaluation ---------------------------------------------------------------------------------------------
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


def run_episode(env: gym.Env, act: Any, seed: int, record: bool = False) -> EpisodeResult:
    """One episode; ``act(env, obs)`` or ``act(obs)`` returns the action."""
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


__all__ = ["AgentConfig", "AgentPolicy", "EpisodeResult", "StackImageGoal", "build_agent", "load_agent",
           "make_env", "run_episode", "save_agent", "snapshot_dir", "summarise", "train_agent", "wilson_interval"]
