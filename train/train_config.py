"""Training configuration: one YAML per stage, mapped onto :class:`TrainConfig`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

LGM_INIT_PREFIX = "lgm:"  # init_from: lgm:PATH starts from an LGM-format safetensors file (model/lgm_weights.py)


@dataclass(frozen=True)
class TrainConfig:
    # 0: static reconstruction, 1: motion (splatter L2), 2: appearance (rendered views),
    # 3: articulation (part labels and joints of the current state; only the articulation head trains)
    stage: int = 1
    model: str = "model/tiny"  # model config (shipped name or YAML path); ignored when init_from is set
    data: str = "data/default"  # dataset folder (its val split validates)
    # more dataset folders whose train splits are trained on beside data's (e.g. real objects beside procedural
    # ones); they must share data's rig and resolutions
    extra_data: tuple[str, ...] = ()
    # checkpoint folder of the previous stage, or lgm:PATH: LGM's released weights (an LGM-format safetensors file)
    # loaded into `model`, which must have layout: lgm
    init_from: str | None = None
    out: str = "runs/tiny_stage1"
    seed: int = 0
    batch_size: int = 8  # global batch, split across processes under torchrun
    steps: int = 2000
    lr: float = 4e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0
    mixed_precision: bool = True  # bf16 autocast, CUDA only
    log_every: int = 10
    save_every: int = 200
    sample_every: int = 500
    eval_pairs: int = 16  # validation pairs scored at each save
    # losses
    splatter_weight: float = 1.0  # stage 0/1: L2 between predicted and GT splatter images
    # stage 1's splatter target: "gt" (the dataset's GT splatter of the next state) or "teacher" (the paper's recipe
    # when fine-tuning LGM: a frozen copy of the network as loaded from init_from reconstructs the next state from
    # its 4 input views, without drags)
    splatter_target: Literal["gt", "teacher"] = "gt"
    render_weight: float = 1.0  # stage 0/2: MSE of renders in the 12 dataset views
    mask_weight: float = 1.0  # stage 0/2: MSE between rendered alpha and the object mask
    lpips_weight: float = 0.0  # stage 2: used only when lpips_weights is a local file
    lpips_weights: str | None = None
    render_views: int = 4  # dataset views rendered per sample for the render loss (of 12), random each step
    # stage 3: how many states' frozen reconstructions to keep in memory (None: all; LGM-sized features are ~34 MB
    # per state, so bound it there: the others are recomputed when drawn again)
    reconstruction_cache_states: int | None = None
    device: str = "auto"
    # recompute each UNet block in the backward pass instead of keeping its activations (lgm layout; about a
    # third more compute for a fraction of the activation memory, docs/scale.md)
    activation_checkpointing: bool = False

    @property
    def lgm_weights(self) -> str | None:
        """The LGM-format weights file of ``init_from: lgm:PATH`` (None: init_from is a checkpoint folder, or unset)."""
        if self.init_from and self.init_from.startswith(LGM_INIT_PREFIX):
            return self.init_from[len(LGM_INIT_PREFIX):]
        return None

    def __post_init__(self) -> None:
        if self.stage not in (0, 1, 2, 3):
            raise ValueError(f"stage must be 0, 1, 2 or 3, got {self.stage}")
        if self.stage == 3 and not self.init_from:
            raise ValueError("stage 3 (articulation) trains a head on a trained model: set init_from")
        for name in ("batch_size", "steps", "log_every", "save_every", "sample_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "grad_clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("warmup_steps", "eval_pairs", "weight_decay", "splatter_weight", "render_weight",
                     "mask_weight", "lpips_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.splatter_target == "teacher" and (self.stage != 1 or not self.init_from):
            raise ValueError("splatter_target: teacher is stage 1's target and needs init_from (the teacher is the "
                             "network as loaded from it)")
        if self.init_from == LGM_INIT_PREFIX:
            raise ValueError(f"init_from {self.init_from!r}: give the weights file after {LGM_INIT_PREFIX}")
        if not 1 <= self.render_views <= 12:
            raise ValueError(f"render_views must be in 1..12, got {self.render_views}")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``partrm-gym train`` and ``torchrun -m partrm_gym.train`` (one definition for both)."""
    parser.add_argument("config", help="training YAML or shipped name (e.g. configs/train/tiny_stage1.yaml)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    parser.add_argument("--out", help="override the config's run folder")
    parser.add_argument("--data", help="override the config's dataset folder")
    parser.add_argument("--steps", type=int, help="override the number of steps")
    parser.add_argument("--init-from", help="override the checkpoint to start from (a checkpoint folder, or "
                        "lgm:PATH for LGM-format weights)")
