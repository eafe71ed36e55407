"""``partrm-gym train CONFIG.yaml``: one training stage of PartRM, readable top to bottom.

Stage 0 reconstructs the current state (no drags), stage 1 learns motion (splatter L2 to
the next state's GT splatter), stage 2 appearance (renders of the predicted Gaussians vs the
simulator's 12 views). Each stage starts from the previous stage's checkpoint
(``init_from``). Run it as a plain process, or under ``torchrun --nproc_per_node=N -m
partrm_gym.train CONFIG`` for DDP (gloo on the CPU, NCCL on GPUs).

Resumption is exact: the learning rate is a function of the step, the data order is the
DistributedSampler permutation of (seed, epoch), and the RNG and optimiser state are saved.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, default_collate
from tqdm import tqdm

from partrm_gym.config import apply_overrides, load_config, save_config
from partrm_gym.io import atomic_write_image, atomic_write_json, check_output_folder
from partrm_gym.metrics import psnr
from partrm_gym.model.checkpoint import load_checkpoint, save_checkpoint
from partrm_gym.model.config import ModelConfig
from partrm_gym.model.partrm import PartRM
from partrm_gym.plotting import image_grid, to_uint8_image
from partrm_gym.provenance import git_commit, provenance
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
    stages 0-2 never touch the head (frozen, so DistributedDataParallel does not wait for its gradients)."""
    head = set(model.articulation.parameters()) if getattr(model, "articulation", None) is not None else set()
    for p in model.parameters():
        p.requires_grad_((p in head) == (stage == 3))
    return [p for p in model.parameters() if p.requires_grad]


def forward(model: torch.nn.Module, batch: dict[str, torch.Tensor], stage: int) -> torch.Tensor:
    drags = None if stage == 0 else batch["drags"]
    mask = None if stage == 0 else batch["drag_mask"]
    return model(batch["input_rgb"], batch["plucker"], drags, mask)


def compute_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], cfg: TrainConfig,
                 generator: torch.Generator, lpips_fn=None) -> tuple[torch.Tensor, dict[str, float]]:
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


def run(args: argparse.Namespace) -> int:
    cfg = load_config(TrainConfig, args.config)
    cfg = apply_overrides(cfg, out=args.out, data=args.data, steps=args.steps, init_from=args.init_from)
    check_output_folder(cfg.out, "out (the run folder)")

    # -- processes and devices ------------------------------------------------------------------------
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    use_cuda = torch.cuda.is_available() and cfg.device in ("auto", "cuda")
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if use_cuda else "cpu")
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
    is_main = rank == 0
    start_commit = git_commit()  # the code this run trains with, whatever the checkout does meanwhile
    run_dir = Path(cfg.out)
    torch.manual_seed(cfg.seed + rank)
    generator = torch.Generator().manual_seed(cfg.seed)  # same on every rank: the same views are rendered

    # -- data -------------------------------------------------------------------------------------------
    train_set = training_pairs([cfg.data, *cfg.extra_data], "train")  # more than one folder: trained together
    val_set = PartDragDataset(cfg.data, "val")
    batches = StepBatches(train_set, cfg.batch_size // world, rank, world, cfg.seed)

    # -- model and optimiser ----------------------------------------------------------------------------
    if cfg.init_from:
        model, model_cfg, _ = load_checkpoint(cfg.init_from, device="cpu")
        if cfg.stage == 3 and not model_cfg.articulation_head:  # add the head; every other weight is kept
            model_cfg = replace(model_cfg, articulation_head=True)
            backbone, model = model, PartRM(model_cfg)
            missing, unexpected = model.load_state_dict(backbone.state_dict(), strict=False)
            if unexpected or any(not k.startswith("articulation.") for k in missing):
                raise RuntimeError(f"adding the articulation head changed other weights: {missing} {unexpected}")
    else:
        model_cfg = load_config(ModelConfig, cfg.model)
        model = PartRM(model_cfg)
    model.to(device).train()
    optimizer = torch.optim.AdamW(trained_parameters(model, cfg.stage), lr=cfg.lr, betas=cfg.betas,
                                  weight_decay=cfg.weight_decay)
    start = 0
    if args.resume:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise FileNotFoundError(f"--resume: no checkpoint under {run_dir}/checkpoints; start without --resume")
        model, _, _ = load_checkpoint(ckpt, device=device)
        model.train()
        optimizer = torch.optim.AdamW(trained_parameters(model, cfg.stage), lr=cfg.lr, betas=cfg.betas,
                                      weight_decay=cfg.weight_decay)
        start = load_training_state(ckpt, optimizer)["step"]
        generator.manual_seed(cfg.seed + start)
    if cfg.stage == 3:  # the frozen backbone's reconstruction of each state, labelled by the true geometry
        train_set = FrozenReconstructions(train_set, model, device)
        val_set = FrozenReconstructions(val_set, model, device)
        batches = StepBatches(train_set, cfg.batch_size // world, rank, world, cfg.seed)
    ddp = DistributedDataParallel(model) if world > 1 else model
    lpips_fn = None
    if cfg.stage == 2 and cfg.lpips_weight > 0:
        from partrm_gym.metrics import load_lpips

        lpips_fn = load_lpips(cfg.lpips_weights, device=device)  # None (with a message) when unavailable
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if use_cuda and cfg.mixed_precision else None

    # -- logging ----------------------------------------------------------------------------------------
    writer, csv_file = None, None
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "train_config.yaml")
        save_config(model_cfg, run_dir / "model_config.yaml")
        csv_path = run_dir / "log.csv"
        fresh = not (args.resume and csv_path.exists())
        csv_file = csv_path.open("w" if fresh else "a", newline="")
        log = csv.DictWriter(csv_file, CSV_FIELDS, extrasaction="ignore")
        if fresh:
            log.writeheader()
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tb"))
        except ImportError:
            print("tensorboard is not installed: logging to log.csv only")

    def save(step: int, val_psnr: float) -> None:
        def write_model(folder: Path) -> None:
            save_checkpoint(model, model_cfg, folder, provenance(cfg.data, {"stage": cfg.stage, "step": step,
                                                                             val_metric_name(cfg.stage): val_psnr},
                                                            start_commit, cfg.extra_data))

        save_training_state(run_dir, step, write_model, optimizer, {"val_psnr": val_psnr})

    # -- the loop ---------------------------------------------------------------------------------------
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=f"stage {cfg.stage}",
               disable=not is_main)
    t_last, n_last = time.perf_counter(), 0
    val_psnr = float("nan")
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = {k: v.to(device, non_blocking=True) for k, v in batches(step).items()}
        if amp is not None:
            with amp:
                loss, parts = compute_loss(ddp, batch, cfg, generator, lpips_fn)
        else:
            loss, parts = compute_loss(ddp, batch, cfg, generator, lpips_fn)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {step}: loss is {loss.item()}; lower lr or check the data "
                                     f"(`partrm-gym verify {cfg.data}`)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        n_last += cfg.batch_size
        done = step + 1
        if is_main and (done % cfg.log_every == 0 or done == cfg.steps):
            sps = n_last / (time.perf_counter() - t_last)
            t_last, n_last = time.perf_counter(), 0
            row = {"step": done, "lr": lr_at(step, cfg), "samples_per_s": round(sps, 3), **parts}
            bar.set_postfix(loss=f"{parts['loss']:.4f}", sps=f"{sps:.1f}")
            if done % cfg.save_every == 0 or done == cfg.steps:
                val_psnr = validate(model, val_set, cfg, device,
                                    run_dir / "samples" / f"step_{done:07d}.png" if done % cfg.sample_every == 0
                                    or done == cfg.steps else None)
                row["val_psnr"] = round(val_psnr, 3)
            log.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
            csv_file.flush()
            if writer is not None:
                for k, v in row.items():
                    if k != "step" and isinstance(v, (int, float)):
                        writer.add_scalar(k, v, done)
        if done % cfg.save_every == 0 or done == cfg.steps:
            if is_main:
                save(done, val_psnr)
            if world > 1:
                dist.barrier()
    bar.close()

    if is_main:
        final = run_dir / "final"
        save_checkpoint(model, model_cfg, final, provenance(cfg.data, {"stage": cfg.stage, "steps": cfg.steps,
                                                                        val_metric_name(cfg.stage): val_psnr},
                                                       start_commit, cfg.extra_data))
        atomic_write_json(run_dir / "summary.json", {"stage": cfg.stage, "steps": cfg.steps, "val_psnr": val_psnr,
                                                     "final_checkpoint": str(final)})
        metric = f"val part accuracy {val_psnr:.1f}%" if cfg.stage == 3 else f"val PSNR {val_psnr:.2f} dB"
        print(f"stage {cfg.stage} done: {metric}; checkpoint {final}")
        if writer is not None:
            writer.close()
        csv_file.close()
    if world > 1:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
