"""``partrm-gym train CONFIG.yaml``: one training stage of PartRM, readable top to bottom.

Stage 0 reconstructs the current state (no drags), stage 1 learns motion (splatter L2 to
the next state's GT splatter, or to a frozen teacher's reconstruction of it when fine-tuning LGM),
stage 2 appearance (renders of the predicted Gaussians vs the simulator's 12 views), stage 3 the
articulation head. Each stage starts from the previous stage's checkpoint (``init_from``), or from
LGM's weights (``init_from: lgm:PATH``). Run it as a plain process, or under ``torchrun
--nproc_per_node=N -m partrm_gym.train CONFIG`` for DDP (gloo on the CPU, NCCL on GPUs).

:func:`run` reads top to bottom as its phases: processes and devices, data, model (+ teacher) and
optimiser, logging, the loop, the final checkpoint.

Resumption is exact: the learning rate is a function of the step, the data order is the
DistributedSampler permutation of (seed, epoch), and the RNG and optimiser state are saved.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, default_collate
from tqdm import tqdm

from partrm_gym.config import ConfigError, apply_overrides, load_config, save_config
from partrm_gym.io import atomic_write_image, atomic_write_json, check_output_folder
from partrm_gym.metrics import psnr
from partrm_gym.model.checkpoint import load_checkpoint, save_checkpoint
from partrm_gym.model.config import ModelConfig
from partrm_gym.model.lgm_weights import check_lgm_file, load_lgm_weights
from partrm_gym.model.networks import build_network
from partrm_gym.plotting import image_grid, to_uint8_image
from partrm_gym.provenance import git_commit, provenance
from partrm_gym.train.data_config import DataConfig
from partrm_gym.train.data_format import DatasetError
from partrm_gym.train.dataset import MixedPartDragDataset, PartDragDataset, training_pairs
from partrm_gym.train.losses import articulation_loss, render_loss, render_splatter, splatter_loss
from partrm_gym.train.reconstructions import FrozenReconstructions
from partrm_gym.train.train_config import TrainConfig, add_train_arguments
from partrm_gym.train.train_state import latest_checkpoint, load_training_state, save_training_state

CSV_FIELDS = ("step", "loss", "splatter", "render_mse", "mask", "lpips", "art_movable", "art_type", "art_axis",
              "art_centre", "art_pivot", "lr", "samples_per_s", "val_psnr")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to ``lr * min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


class StepBatches:
    """The batch of global step ``s`` for this rank, from DistributedSampler's epoch permutations."""

    def __init__(self, dataset: PartDragDataset | MixedPartDragDataset, per_rank: int, rank: int, world: int,
                 seed: int) -> None:
        self.dataset, self.per_rank = dataset, per_rank
        self.sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.per_epoch = len(self.sampler) // per_rank
        if self.per_epoch == 0:
            raise ValueError(f"dataset of {len(dataset)} pairs is smaller than one batch ({per_rank * world})")
        self._epoch, self._order = -1, []

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._epoch, self._order = epoch, list(self.sampler)
        idx = self._order[k * self.per_rank:(k + 1) * self.per_rank]
        return default_collate([self.dataset[i] for i in idx])


def trained_parameters(model: torch.nn.Module, stage: int) -> list[torch.nn.Parameter]:
    """Stage 3 trains the articulation head alone, so the reconstruction (stages 0-2) stays exactly as it was;
    stages 0-2 never touch the head (frozen, so DistributedDataParallel does not wait for its gradients).
    Parameters no forward pass reads (the released LGM drag modules' ``alpha``) are never trained."""
    head = set(model.articulation.parameters()) if getattr(model, "articulation", None) is not None else set()
    unused = set(model.unused_parameters()) if hasattr(model, "unused_parameters") else set()
    for p in model.parameters():
        p.requires_grad_((p in head) == (stage == 3) and p not in unused)
    return [p for p in model.parameters() if p.requires_grad]


def forward(model: torch.nn.Module, batch: dict[str, torch.Tensor], stage: int) -> torch.Tensor:
    drags = None if stage == 0 else batch["drags"]
    mask = None if stage == 0 else batch["drag_mask"]
    return model(batch["input_rgb"], batch["plucker"], drags, mask)


def compute_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], cfg: TrainConfig,
                 generator: torch.Generator, lpips_fn=None, teacher: torch.nn.Module | None = None
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """The stage's loss and its parts. ``teacher``: stage 1's target network (``splatter_target: teacher``), run
    on the next state's input views without drags; otherwise stage 1's target is the next state's GT splatter."""
    if cfg.stage == 3:  # the backbone is frozen (not in the optimiser): only the articulation head learns
        net = model.module if isinstance(model, DistributedDataParallel) else model
        art = net.articulation_maps(batch["features_src"])  # features of the frozen backbone (FrozenReconstructions)
        loss, parts = articulation_loss(art, batch["part_recon"], batch["articulation_recon"])
        parts["loss"] = float(loss.detach())
        return loss, parts
    pred = forward(model, batch, cfg.stage)
    parts: dict[str, float] = {}
    loss = torch.zeros((), device=pred.device)
    if cfg.stage in (0, 1):
        if cfg.stage == 1 and teacher is not None:
            with torch.no_grad():
                target = teacher(batch["input_rgb_dst"], batch["plucker"]).to(pred.dtype)
        else:
            target = batch["splatter_src"] if cfg.stage == 0 else batch["splatter_dst"]
        sl = splatter_loss(pred, target)
        loss = loss + cfg.splatter_weight * sl
        parts["splatter"] = float(sl.detach())
    if cfg.stage in (0, 2):
        views = torch.randperm(batch["viewmats"].shape[1], generator=generator)[:cfg.render_views]
        rl, rparts = render_loss(pred, batch, views.to(pred.device), cfg.mask_weight, lpips_fn, cfg.lpips_weight,
                                 target_prefix="source" if cfg.stage == 0 else "target")
        loss = loss + cfg.render_weight * rl
        parts.update(rparts)
    parts["loss"] = float(loss.detach())
    return loss, parts


@torch.no_grad()
def validate(model: torch.nn.Module, dataset: PartDragDataset, cfg: TrainConfig, device: torch.device,
             out_png: Path | None) -> float:
    """Mean PSNR of the next state over all dataset views of the first ``eval_pairs`` validation pairs; stage 3:
    the share (%) of visible reconstructed Gaussians whose movable/static label the articulation head gets right."""
    if cfg.stage == 3:
        return validate_articulation(model, dataset, cfg, device)
    model.eval()
    scores, rows = [], []
    for i in range(min(cfg.eval_pairs, len(dataset))):
        batch = {k: v.unsqueeze(0).to(device) for k, v in dataset[i].items()}
        pred = forward(model, batch, cfg.stage)
        prefix = "source" if cfg.stage == 0 else "target"
        target = batch[f"{prefix}_rgb"]
        rgb, _ = render_splatter(pred, batch["viewmats"], batch["Ks"], target.shape[-1], target.shape[-2])
        scores.append(float(psnr(rgb.clamp(0, 1), target)))
        if out_png is not None and i < 4:
            views = range(0, target.shape[1], 3)  # every third dataset view
            rows.append([to_uint8_image(target[0, v]) for v in views] + [to_uint8_image(rgb[0, v]) for v in views])
    if out_png is not None and rows:
        atomic_write_image(out_png, image_grid(rows))
    model.train()
    return float(np.mean(scores)) if scores else float("nan")


def val_metric_name(stage: int) -> str:
    return "val_part_accuracy" if stage == 3 else "val_psnr"


@torch.no_grad()
def validate_articulation(model: torch.nn.Module, dataset: FrozenReconstructions, cfg: TrainConfig,
                          device: torch.device) -> float:
    model.eval()
    right = total = 0
    for i in range(min(cfg.eval_pairs, len(dataset))):
        batch = {k: v.unsqueeze(0).to(device) for k, v in dataset[i].items()}
        art = model.articulation_maps(batch["features_src"])
        part = batch["part_recon"]
        fg = part >= 0
        right += int(((art[:, :, 0] > 0.5) == (part > 0))[fg].sum())
        total += int(fg.sum())
    model.train()
    return 100.0 * right / max(total, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="partrm-gym train", description=__doc__.splitlines()[0])
    add_train_arguments(parser)
    return run(parser.parse_args(argv))


# -- the phases of a run, in the order run() calls them ---------------------------------------------------------


@dataclass(frozen=True)
class Processes:
    """This process's place in the run: torchrun's WORLD_SIZE / RANK / LOCAL_RANK (1 / 0 / 0 when run plainly)."""

    world: int
    rank: int
    device: torch.device
    use_cuda: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_processes(cfg: TrainConfig) -> Processes:
    """Join the process group (NCCL on GPUs, gloo on the CPU) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    use_cuda = torch.cuda.is_available() and cfg.device in ("auto", "cuda")
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if use_cuda else "cpu")
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
    return Processes(world, rank, device, use_cuda)


def load_data(cfg: TrainConfig) -> tuple[PartDragDataset | MixedPartDragDataset, PartDragDataset]:
    """The training pairs (data and extra_data trained together) and data's validation pairs."""
    return training_pairs([cfg.data, *cfg.extra_data], "train"), PartDragDataset(cfg.data, "val")


def initial_model(cfg: TrainConfig) -> tuple[torch.nn.Module, ModelConfig]:
    """The network the run starts from: a checkpoint folder, LGM-format weights (``lgm:PATH``), or fresh from the
    model config. Stage 3 adds an articulation head when the network has none; every other weight is kept."""
    if cfg.lgm_weights is not None:
        model_cfg = load_config(ModelConfig, cfg.model)
        if model_cfg.layout != "lgm":
            raise ConfigError(f"init_from {cfg.init_from}: LGM's weights need a model config with layout: lgm; "
                              f"{cfg.model} has layout {model_cfg.layout} (e.g. model: model/lgm_big)")
        model = build_network(model_cfg)
        load_lgm_weights(model, cfg.lgm_weights, progress=os.environ.get("RANK", "0") == "0")
    elif cfg.init_from:
        model, model_cfg, _ = load_checkpoint(cfg.init_from, device="cpu")
    else:
        model_cfg = load_config(ModelConfig, cfg.model)
        return build_network(model_cfg), model_cfg
    if cfg.stage == 3 and not model_cfg.articulation_head:
        model_cfg = replace(model_cfg, articulation_head=True)
        backbone, model = model, build_network(model_cfg)
        missing, unexpected = model.load_state_dict(backbone.state_dict(), strict=False)
        if unexpected or any(not k.startswith("articulation.") for k in missing):
            raise RuntimeError(f"adding the articulation head changed other weights: {missing} {unexpected}")
    return model, model_cfg


def check_data_fits_model(data: DataConfig, model_cfg: ModelConfig, where: str) -> None:
    """The dataset's input views must be the model's: its input size and input rig (elevation 0 for LGM's)."""
    have, want = data.rig, model_cfg.input_rig
    fields = ("radius", "fov_deg", "canonical_elevation_deg", "canonical_azimuth_offset_deg")
    if data.input_resolution != model_cfg.input_size or any(getattr(have, f) != getattr(want, f) for f in fields):
        raise DatasetError(
            f"{where}: its input views ({data.input_resolution}², elevation {have.canonical_elevation_deg}°, radius "
            f"{have.radius}) are not the model's ({model_cfg.input_size}², elevation {want.canonical_elevation_deg}°, "
            f"radius {want.radius}); generate the data with the model's rig (configs/data/paper.yaml for LGM's)")


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(trained_parameters(model, cfg.stage), lr=cfg.lr, betas=cfg.betas,
                             weight_decay=cfg.weight_decay)


def resume(run_dir: Path, cfg: TrainConfig, device: torch.device
           ) -> tuple[torch.nn.Module, torch.optim.Optimizer, int]:
    """The model, optimiser (with its state) and step of the run folder's last checkpoint; restores the RNG."""
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"--resume: no checkpoint under {run_dir}/checkpoints; start without --resume")
    model, _, _ = load_checkpoint(ckpt, device=device)
    model.train()
    optimizer = make_optimizer(model, cfg)
    return model, optimizer, load_training_state(ckpt, optimizer)["step"]


def set_activation_checkpointing(model: torch.nn.Module, on: bool) -> None:
    if not on:
        return
    if not hasattr(getattr(model, "unet", None), "checkpointing"):
        raise ConfigError("activation_checkpointing: true needs a model with layout: lgm")
    model.unet.checkpointing = True


class RunLog:
    """log.csv (appended to on --resume) and TensorBoard, written by the main process only."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, model_cfg: ModelConfig, resumed: bool) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "train_config.yaml")
        save_config(model_cfg, run_dir / "model_config.yaml")
        csv_path = run_dir / "log.csv"
        fresh = not (resumed and csv_path.exists())
        self.file = csv_path.open("w" if fresh else "a", newline="")
        self.csv = csv.DictWriter(self.file, CSV_FIELDS, extrasaction="ignore")
        if fresh:
            self.csv.writeheader()
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tb"))
        except ImportError:
            print("tensorboard is not installed: logging to log.csv only")

    def write(self, row: dict[str, float | int]) -> None:
        self.csv.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
        self.file.flush()
        if self.writer is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.file.close()


@dataclass
class Run:
    """Everything the loop and the checkpoints need, built by run()'s phases."""

    cfg: TrainConfig
    procs: Processes
    run_dir: Path
    commit: str | None  # the code this run trains with, whatever the checkout does meanwhile
    model: torch.nn.Module
    model_cfg: ModelConfig
    ddp: torch.nn.Module  # the model, wrapped for DistributedDataParallel when there are several processes
    optimizer: torch.optim.Optimizer
    batches: StepBatches
    val_set: PartDragDataset | FrozenReconstructions
    generator: torch.Generator  # same on every rank: the same views are rendered
    teacher: torch.nn.Module | None = None  # stage 1's frozen target network (splatter_target: teacher)
    lpips_fn: Callable | None = None
    log: RunLog | None = None  # main process only

    def provenance(self, **metrics: float | int) -> dict:
        return provenance(self.cfg.data, {"stage": self.cfg.stage, **metrics}, self.commit, self.cfg.extra_data)


def train_step(r: Run, step: int) -> dict[str, float]:
    """One optimiser step on the batch of global step ``step``; returns the loss parts."""
    cfg = r.cfg
    for group in r.optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)
    batch = {k: v.to(r.procs.device, non_blocking=True) for k, v in r.batches(step).items()}
    bf16 = r.procs.use_cuda and cfg.mixed_precision
    with torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
        loss, parts = compute_loss(r.ddp, batch, cfg, r.generator, r.lpips_fn, r.teacher)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"step {step}: loss is {loss.item()}; lower lr or check the data "
                                 f"(`partrm-gym verify {cfg.data}`)")
    r.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(r.model.parameters(), cfg.grad_clip)
    r.optimizer.step()
    return parts


def save_step(r: Run, step: int, val_psnr: float) -> None:
    """A resumable checkpoint (model, optimiser, RNG) of ``step`` under the run folder."""
    def write_model(folder: Path) -> None:
        save_checkpoint(r.model, r.model_cfg, folder,
                        r.provenance(step=step, **{val_metric_name(r.cfg.stage): val_psnr}))

    save_training_state(r.run_dir, step, write_model, r.optimizer, {"val_psnr": val_psnr})


def train_loop(r: Run, start: int) -> float:
    """Steps ``start`` .. ``cfg.steps``: log every ``log_every``, validate and checkpoint every ``save_every`` (and
    at the end); returns the last validation figure."""
    cfg = r.cfg
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=f"stage {cfg.stage}",
               disable=not r.procs.is_main)
    t_last, n_last = time.perf_counter(), 0
    val_psnr = float("nan")
    for step in bar:
        parts = train_step(r, step)
        n_last += cfg.batch_size
        done = step + 1
        checkpoint_due = done % cfg.save_every == 0 or done == cfg.steps
        if r.log is not None and (done % cfg.log_every == 0 or done == cfg.steps):
            sps = n_last / (time.perf_counter() - t_last)
            t_last, n_last = time.perf_counter(), 0
            row = {"step": done, "lr": lr_at(step, cfg), "samples_per_s": round(sps, 3), **parts}
            bar.set_postfix(loss=f"{parts['loss']:.4f}", sps=f"{sps:.1f}")
            if checkpoint_due:
                sample = done % cfg.sample_every == 0 or done == cfg.steps
                val_psnr = validate(r.model, r.val_set, cfg, r.procs.device,
                                    r.run_dir / "samples" / f"step_{done:07d}.png" if sample else None)
                row["val_psnr"] = round(val_psnr, 3)
            r.log.write(row)
        if checkpoint_due:
            if r.procs.is_main:
                save_step(r, done, val_psnr)
            if r.procs.world > 1:
                dist.barrier()
    bar.close()
    return val_psnr


def finish(r: Run, val_psnr: float) -> None:
    """The inference checkpoint ``final/`` and ``summary.json`` (main process); leave the process group."""
    cfg = r.cfg
    if r.log is not None:
        final = r.run_dir / "final"
        save_checkpoint(r.model, r.model_cfg, final,
                        r.provenance(steps=cfg.steps, **{val_metric_name(cfg.stage): val_psnr}))
        atomic_write_json(r.run_dir / "summary.json", {"stage": cfg.stage, "steps": cfg.steps, "val_psnr": val_psnr,
                                                       "final_checkpoint": str(final)})
        metric = f"val part accuracy {val_psnr:.1f}%" if cfg.stage == 3 else f"val PSNR {val_psnr:.2f} dB"
        print(f"stage {cfg.stage} done: {metric}; checkpoint {final}")
        r.log.close()
    if r.procs.world > 1:
        dist.destroy_process_group()


def run(args: argparse.Namespace) -> int:
    cfg = load_config(TrainConfig, args.config)
    cfg = apply_overrides(cfg, out=args.out, data=args.data, steps=args.steps, init_from=args.init_from)
    check_output_folder(cfg.out, "out (the run folder)")
    if cfg.lgm_weights is not None:
        check_lgm_file(cfg.lgm_weights)  # before minutes of loading data

    # -- processes and devices
    procs = setup_processes(cfg)
    commit = git_commit()
    torch.manual_seed(cfg.seed + procs.rank)
    generator = torch.Generator().manual_seed(cfg.seed)

    # -- data
    train_set, val_set = load_data(cfg)
    per_rank = cfg.batch_size // procs.world
    batches = StepBatches(train_set, per_rank, procs.rank, procs.world, cfg.seed)

    # -- model, teacher and optimiser
    model, model_cfg = initial_model(cfg)
    check_data_fits_model(train_set.config, model_cfg, cfg.data)
    # stage 1's teacher: the network as loaded, frozen (a resumed run rebuilds it from init_from, as here)
    teacher = (copy.deepcopy(model).to(procs.device).eval().requires_grad_(False)
               if cfg.splatter_target == "teacher" else None)
    model.to(procs.device).train()
    optimizer, start = make_optimizer(model, cfg), 0
    if args.resume:
        model, optimizer, start = resume(Path(cfg.out), cfg, procs.device)
        generator.manual_seed(cfg.seed + start)
    set_activation_checkpointing(model, cfg.activation_checkpointing)
    if cfg.stage == 3:  # the frozen backbone's reconstruction of each state, labelled by the true geometry
        keep = cfg.reconstruction_cache_states
        train_set = FrozenReconstructions(train_set, model, procs.device, keep)
        val_set = FrozenReconstructions(val_set, model, procs.device, keep)
        batches = StepBatches(train_set, per_rank, procs.rank, procs.world, cfg.seed)
    ddp = DistributedDataParallel(model) if procs.world > 1 else model
    lpips_fn = None
    if cfg.stage == 2 and cfg.lpips_weight > 0:
        from partrm_gym.metrics import load_lpips

        lpips_fn = load_lpips(cfg.lpips_weights, device=procs.device)  # None (with a message) when unavailable

    # -- logging
    log = RunLog(Path(cfg.out), cfg, model_cfg, args.resume) if procs.is_main else None

    # -- the loop, then the final checkpoint
    r = Run(cfg, procs, Path(cfg.out), commit, model, model_cfg, ddp, optimizer, batches, val_set, generator,
            teacher, lpips_fn, log)
    finish(r, train_loop(r, start))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
