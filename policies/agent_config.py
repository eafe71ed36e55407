"""What an SB3 agent run is: algorithm, env, budget, hyper-parameters, checkpoints (``agent.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from partrm_gym.registration import check_env_id

ALGOS = ("ppo", "sac")
WARM_STARTS = ("none", "scripted")


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
    image_shift: int = 0  # train on images moved by up to this many pixels (policies/augment.py); 0: none
    # SAC
    buffer_size: int = 20_000
    learning_starts: int = 500
    # warm start (PPO): behaviour-clone the scripted policy in the training env first (policies/warm_start.py)
    warm_start: Literal["none", "scripted"] = "none"
    warm_start_steps: int = 2_000  # env steps of scripted demonstrations (on top of total_steps)
    warm_start_epochs: int = 20  # passes over the demonstrations
    warm_start_std: float = 0.3  # the policy's exploration std after cloning (PPO's own start: 1)
    # PPO: anneal the exploration std geometrically from its start (warm_start_std, or 1 without a warm start) to this
    # by total_steps, so the policy PPO optimises ends near its mean action, which evaluation takes; null: PPO's own
    final_std: float | None = None
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
        if self.warm_start not in WARM_STARTS:
            raise ValueError(f"warm_start must be one of {WARM_STARTS}, got {self.warm_start!r}")
        if self.warm_start != "none" and self.algo != "ppo":
            raise ValueError(f"warm_start: {self.warm_start} is for algo: ppo (got algo: {self.algo}); use "
                             "warm_start: none")
        for name in ("warm_start_steps", "warm_start_epochs", "warm_start_std"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.image_shift < 0:
            raise ValueError(f"image_shift is a shift in pixels, >= 0 (0: no augmentation), got {self.image_shift}")
        if self.final_std is not None and (self.final_std <= 0 or self.algo != "ppo"):
            raise ValueError(f"final_std is a positive exploration std for algo: ppo (got {self.final_std} with "
                             f"algo: {self.algo}); use final_std: null")
        if self.snapshot_every < 0:
            raise ValueError(f"snapshot_every must be >= 0 (0: no snapshots), got {self.snapshot_every}")
        check_env_id(self.env_id)
