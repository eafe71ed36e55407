"""Zero123++ fine-tuning configuration and flags (torch-free, so the CLI's parser builds instantly)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class FinetuneConfig:
    weights: str = "weights/zero123plus-v1.2"  # local diffusers folder (model_index.json, unet/, vae/, ...)
    data: str = "data/default"
    out: str = "runs/zero123pp"
    steps: int = 2000
    batch_size: int = 4
    lr: float = 1e-5
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    tile: int = 320  # side of one grid view (Zero123++ v1.2: 320)
    seed: int = 0
    save_every: int = 250
    log_every: int = 10
    mixed_precision: bool = True  # bf16 autocast on CUDA (the frozen VAE and encoders stay in float32)
    condition_dropout: float = 0.1  # share of samples trained unconditioned, so classifier-free guidance keeps working
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "tile", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.condition_dropout < 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1), got {self.condition_dropout}")


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``partrm-gym finetune-zero123pp`` (one definition for the CLI and ``main``)."""
    parser.add_argument("config", nargs="?", help="YAML with FinetuneConfig fields")
    parser.add_argument("--weights", help="local Zero123++ diffusers folder")
    parser.add_argument("--data", help="dataset folder")
    parser.add_argument("--out", help="run folder")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--resume", action="store_true")
