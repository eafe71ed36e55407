"""Stable-Baselines3 agents trained in imagination (``PartRM-*``) or in the twin (``PartRMSim-*``).

``partrm-gym policy train CONFIG.yaml`` (or ``--algo ppo --env PartRM-Drawer-v0 --steps N``)
trains PPO or SAC with SB3 on ``n_envs`` copies of the chosen env (world-model envs batched into
one model call per step, twins in a ``DummyVecEnv``), logs to TensorBoard and
CSV, and checkpoints every ``checkpoint_every`` steps. Checkpoints are ``policy.safetensors``
+ ``agent.yaml`` (the resolved :class:`AgentConfig`) — SB3's own zip format pickles its
spaces and schedules, so it is not used. ``--resume`` restores the policy, the optimiser
and the step count; rollouts (and SAC's replay buffer) start afresh.

The observation is the current and the goal image stacked into one 6-channel image
(:class:`~partrm_gym.policies.agent_envs.StackImageGoal`), so the CNN sees where they differ pixel by pixel.
The run's settings are :class:`~partrm_gym.policies.agent_config.AgentConfig`; episodes and their statistics
are in :mod:`partrm_gym.policies.episodes`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from partrm_gym.config import ConfigError, apply_overrides, load_config, save_config
from partrm_gym.model.checkpoint import PROVENANCE, read_provenance, weights_match, write_weights_folder
from partrm_gym.policies.agent_config import AgentConfig
from partrm_gym.policies.agent_envs import make_vec_env, stack_observation, stacked_space
from partrm_gym.provenance import provenance
from partrm_gym.train.train_state import latest_checkpoint, load_training_state, save_training_state

POLICY_WEIGHTS, AGENT_CONFIG = "policy.safetensors", "agent.yaml"
SAC_ENTROPY = "entropy_coefficient.safetensors"


def build_agent(cfg: AgentConfig, env: Any) -> Any:
    """A fresh SB3 model of ``cfg.algo`` on ``env`` (a VecEnv or an env)."""
    from stable_baselines3 import PPO, SAC

    from partrm_gym.policies.augment import ShiftedNatureCNN

    # SB3's CnnPolicy networks (NatureCNN; PPO's heads sit right on it, as SB3 does for a NatureCNN), the CNN
    # shifting its training images by image_shift
    policy_kwargs = {"normalize_images": True, "features_extractor_class": ShiftedNatureCNN,
                     "features_extractor_kwargs": {"shift": cfg.image_shift}}
    common = {"policy": "CnnPolicy", "env": env, "learning_rate": cfg.learning_rate, "gamma": cfg.gamma,
              "seed": cfg.seed, "device": cfg.device, "verbose": 0, "policy_kwargs": policy_kwargs}
    if cfg.algo == "ppo":
        policy_kwargs["net_arch"] = []
        return PPO(n_steps=cfg.n_steps, batch_size=cfg.batch_size, n_epochs=cfg.n_epochs, ent_coef=cfg.ent_coef,
                   **common)
    return SAC(buffer_size=cfg.buffer_size, learning_starts=cfg.learning_starts, batch_size=cfg.batch_size, **common)


class _SpacesOnly(gym.Env):
    """Just the spaces an agent was trained with (and its task settings): enough to build its networks and read
    its actions, nothing to simulate."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, task: Any = None) -> None:
        self.observation_space, self.action_space, self.task = observation_space, action_space, task


def agent_spaces(cfg: AgentConfig) -> _SpacesOnly:
    from dataclasses import fields

    from partrm_gym.envs.task import TaskConfig, make_spaces

    task = TaskConfig(**{k: v for k, v in cfg.env_kwargs.items() if k in {f.name for f in fields(TaskConfig)}})
    action, observation = make_spaces(task)
    return _SpacesOnly(stacked_space(observation), action, task)


def _optimizers(model: Any) -> dict[str, torch.optim.Optimizer]:
    """Every optimiser an SB3 model trains with (PPO: one; SAC: actor, critic and the entropy coefficient's)."""
    if hasattr(model, "actor") and hasattr(model, "critic"):
        opts = {"actor": model.actor.optimizer, "critic": model.critic.optimizer}
        if getattr(model, "ent_coef_optimizer", None) is not None:
            opts["ent_coef"] = model.ent_coef_optimizer
        return opts
    return {"policy": model.policy.optimizer}


def save_agent(model: Any, cfg: AgentConfig, folder: str | Path, metrics: dict[str, Any] | None = None) -> Path:
    """Weights, config and provenance (:func:`~partrm_gym.model.checkpoint.write_weights_folder`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(getattr(model, "log_ent_coef", None), torch.Tensor):  # SAC's learned entropy coefficient
        save_file({"log_ent_coef": model.log_ent_coef.detach().cpu()}, str(folder / SAC_ENTROPY))
    # save_model, not save_file: SB3 shares the CNN between actor and critic
    return write_weights_folder(folder, POLICY_WEIGHTS, lambda path: save_model(model.policy, path), cfg,
                                AGENT_CONFIG, provenance(None, {"num_timesteps": int(model.num_timesteps),
                                                                **(metrics or {})}))


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
    """A trained agent as a policy over the env's dict observations, in the control mode it was trained in.

    By default it takes the mean action (``deterministic=True``, SB3's evaluation convention). With
    ``deterministic=False`` it samples from the policy's Gaussian, the policy PPO actually optimises; the samples
    come from a torch generator state of its own, seeded with ``seed`` and reseeded at every episode by
    ``run_episode`` (:meth:`reset`), so an evaluation is reproducible and draws nothing from the global torch RNG.
    Why both: after a drag that grasps nothing the observation is
    unchanged, so the mean action repeats the miss until the episode ends, while a sample tries elsewhere
    (docs/experiment.md has both figures for the headline agents).
    """

    def __init__(self, model: Any, control_mode: str | None = None, deterministic: bool = True,
                 seed: int = 0) -> None:
        self.model = model
        self.control_mode = control_mode
        self.deterministic = deterministic
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """Restart the sampling stream from ``seed``. ``run_episode`` calls it at every episode, with
        :func:`~partrm_gym.policies.episodes.policy_seed` of the episode's seed."""
        self._rng_state = torch.Generator().manual_seed(seed).get_state()  # lent to SB3's sampling in __call__

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.deterministic:
            action, _ = self.model.predict(stack_observation(obs), deterministic=True)
        else:
            with torch.random.fork_rng(devices=[]):  # SB3 samples from the global CPU generator: lend it ours
                torch.set_rng_state(self._rng_state)
                action, _ = self.model.predict(stack_observation(obs), deterministic=False)
                self._rng_state = torch.get_rng_state()
        return np.asarray(action, dtype=np.float32)


def train_agent(cfg: AgentConfig, out: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train, checkpoint every ``cfg.checkpoint_every`` steps, write ``out/final``; returns it."""
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList
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
        elif cfg.warm_start == "scripted":
            _warm_start(model, cfg, venv, out, progress)
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

        class ExplorationSchedule(BaseCallback):
            def _on_rollout_start(self) -> None:
                with torch.no_grad():
                    model.policy.log_std.fill_(math.log(exploration_std(cfg, self.num_timesteps)))

            def _on_step(self) -> bool:
                return True

        callbacks = [Checkpoints()] + ([ExplorationSchedule()] if cfg.final_std is not None else [])
        remaining = cfg.total_steps - model.num_timesteps
        if remaining > 0:
            model.learn(remaining, callback=CallbackList(callbacks), progress_bar=progress,
                        reset_num_timesteps=not resume)
        return save_agent(model, cfg, out / "final")
    finally:
        venv.close()


def train_command(args: Any) -> int:
    """``partrm-gym policy train [CONFIG] [--algo --env --steps --seed --out --resume]``."""
    cfg = load_config(AgentConfig, args.config) if args.config else AgentConfig()
    cfg = apply_overrides(cfg, algo=args.algo, env_id=args.env, total_steps=args.steps, seed=args.seed)
    out = args.out or f"runs/policy/{cfg.algo}_{cfg.env_id}"
    final = train_agent(cfg, out, resume=args.resume)
    print(f"wrote {final} (policy.safetensors + agent.yaml); TensorBoard logs in {out}")
    return 0


def exploration_std(cfg: AgentConfig, step: int) -> float:
    """PPO's exploration std at env step ``step`` under ``cfg.final_std``: geometric from the start (``warm_start_std``
    after a warm start, else 1, SB3's initial std) to ``final_std`` at ``total_steps``.

    Why: PPO improves the *sampled* policy, and from a behaviour clone at a fixed std 0.3 it learned a mean action
    that only works with the noise (after a miss the observation is unchanged, so the mean action repeats the miss):
    its mean action fell from the clone's 52% to 32% twin success while its samples rose 28% -> 40%. Annealed to
    0.05, the mean action kept the clone's level (docs/experiment.md)."""
    if cfg.final_std is None:
        raise ValueError("exploration_std: this config has no schedule (final_std: null)")
    start = cfg.warm_start_std if cfg.warm_start != "none" else 1.0
    frac = min(max(step / cfg.total_steps, 0.0), 1.0)
    return math.exp((1 - frac) * math.log(start) + frac * math.log(cfg.final_std))


def _warm_start(model: Any, cfg: AgentConfig, venv: Any, out: Path, progress: bool) -> None:
    """Behaviour-clone the scripted policy in the training env (:mod:`partrm_gym.policies.warm_start`) and keep
    the cloned agent as ``out/warm_start`` (what PPO starts from)."""
    from partrm_gym.policies.warm_start import behaviour_clone, scripted_demonstrations

    task = agent_spaces(cfg).task
    obs, actions, returns = scripted_demonstrations(venv, task, cfg.warm_start_steps, cfg.gamma, cfg.seed, progress)
    losses = behaviour_clone(model, obs, actions, returns, cfg.warm_start_epochs, cfg.warm_start_std, seed=cfg.seed)
    print(f"warm start: cloned {len(obs)} scripted steps of successful episodes ({cfg.warm_start_steps} env steps "
          f"recorded); action MSE {losses['action_loss']:.4f}, value MSE {losses['value_loss']:.4f}")
    save_agent(model, cfg, snapshot_dir(out, 0), {"demonstration_steps": len(obs), **losses})


def snapshot_dir(run: str | Path, steps: int) -> Path:
    """Where ``train_agent`` keeps the agent of ``steps`` env steps when ``snapshot_every`` asks for it; step 0 of a
    warm-started agent is its behaviour clone (what PPO starts from)."""
    if steps == 0:
        return Path(run) / "warm_start"
    return Path(run) / "snapshots" / f"step_{steps:08d}"


__all__ = ["AgentPolicy", "build_agent", "exploration_std", "load_agent", "save_agent", "snapshot_dir", "train_agent"]
