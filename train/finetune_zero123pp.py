"""``partrm-gym finetune-zero123pp CONFIG.yaml``: adapt Zero123++ to this project's cameras and objects.

For users with a GPU and the Zero123++ v1.2 weights in a local diffusers folder (nothing is
downloaded). Zero123++ turns one photo into a 3×2 grid of views at fixed relative azimuths
(30°, 90°, …, 330°). Fine-tuning teaches its UNet to produce, from the canonical view 0 of a
state, the 6 dataset views at those azimuths (dataset rig views 1, 3, …, 11, elevation 30°) of
the same state — so the views it imagines for a real photo match what PartRM was trained on.

The training objective is Zero123++'s own: the condition image's VAE latent, noised at the same
timestep, runs through the UNet first and each self-attention layer keeps its input
("reference attention"); the noised grid latent then runs with those kept tokens appended to
its keys and values, and the UNet's prediction (v or ε, from the scheduler config) is regressed
with MSE. Cross-attention sees the empty-prompt text embedding plus the CLIP image embedding
scaled by the pipeline's ramping coefficients. Latents and images use the pipeline's scalings.

Readable top to bottom; the UNet is saved with ``save_pretrained`` as safetensors; ``--resume``
restores UNet, optimiser and step. Tested on the CPU with tiny random components for one step.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from partrm_gym.config import apply_overrides, load_config, save_config
from partrm_gym.train.dataset import PartDragDataset
from partrm_gym.train.finetune_config import FinetuneConfig, add_finetune_arguments
from partrm_gym.train.train_state import latest_checkpoint, load_training_state, save_training_state

GRID_VIEWS = (1, 3, 5, 7, 9, 11)  # dataset rig views at azimuths 30, 90, ..., 330: the 3x2 grid, row-major
GRID_ROWS, GRID_COLS = 3, 2
# Zero123++'s pipeline maps images and latents into the range its UNet was trained on
IMAGE_SCALE = 0.5 / 0.8
LATENT_SHIFT, LATENT_SCALE = 0.22, 0.75


class ReferenceAttention:
    """Self-attention processors that keep (write) or append (read) the reference pass's tokens."""

    def __init__(self, unet: torch.nn.Module) -> None:
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.mode = "off"
        self.bank: dict[str, torch.Tensor] = {}
        base = AttnProcessor2_0()
        state = self

        class Processor:
            def __init__(self, name: str) -> None:
                self.name = name
                self.enabled = name.endswith("attn1.processor")  # self-attention only

            def __call__(self, attn: Any, hidden_states: torch.Tensor,
                         encoder_hidden_states: torch.Tensor | None = None,
                         attention_mask: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
                context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
                if self.enabled and state.mode == "write":
                    state.bank[self.name] = context
                elif self.enabled and state.mode == "read":
                    context = torch.cat([context, state.bank.pop(self.name)], dim=1)
                return base(attn, hidden_states, context, attention_mask)

        unet.set_attn_processor({name: Processor(name) for name in unet.attn_processors})

    def predict(self, unet: torch.nn.Module, noisy: torch.Tensor, noisy_reference: torch.Tensor,
                timesteps: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        self.mode, self.bank = "write", {}
        unet(noisy_reference, timesteps, encoder_hidden_states=context)
        self.mode = "read"
        try:
            return unet(noisy, timesteps, encoder_hidden_states=context).sample
        finally:
            self.mode, self.bank = "off", {}


@dataclass
class Zero123ppParts:
    unet: torch.nn.Module
    vae: torch.nn.Module
    scheduler: Any  # a diffusers DDPMScheduler (training noise schedule)
    encode_condition: Callable[[torch.Tensor], torch.Tensor]  # images in [-1, 1] -> cross-attention context
    unconditional: Callable[[int], torch.Tensor]  # batch size -> the context of "no image" (the empty prompt)


def load_parts(weights: str | Path, device: torch.device) -> Zero123ppParts:
    """Zero123++ from a local diffusers folder; clear errors for what is missing."""
    folder = Path(weights)
    index = folder / "model_index.json"
    if not index.is_file():
        raise FileNotFoundError(
            f"no Zero123++ weights at {folder} (expected model_index.json, unet/, vae/, scheduler/, vision_encoder/, "
            "text_encoder/, tokenizer/). On a machine with internet: `huggingface-cli download "
            f"sudo-ai/zero123plus-v1.2 --local-dir {folder}`, then copy the folder here.")
    try:
        from transformers import CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection
    except ImportError as e:
        raise ImportError("Zero123++'s conditioning encoders need the `transformers` package: "
                          "pip install transformers") from e
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    local = {"local_files_only": True}
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **local).to(device)
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", **local).to(device)
    scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler", **local)
    tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", **local)
    text = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", **local).to(device).eval()
    vision = CLIPVisionModelWithProjection.from_pretrained(folder, subfolder="vision_encoder", **local)
    vision = vision.to(device).eval()
    ramp = torch.tensor(json.loads(index.read_text())["ramping_coefficients"], device=device)[:, None]
    with torch.no_grad():
        tokens = tokenizer("", padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
        empty_prompt = text(tokens.input_ids.to(device))[0]  # (1, 77, D)
    clip_mean = torch.tensor([0.48145466, 0.4578275, 0.40821073], device=device)[:, None, None]
    clip_std = torch.tensor([0.26862954, 0.26130258, 0.27577711], device=device)[:, None, None]

    @torch.no_grad()
    def encode_condition(images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate((images + 1) / 2, size=224, mode="bicubic", align_corners=False, antialias=True)
        global_embeds = vision((x - clip_mean) / clip_std).image_embeds[:, None]  # (B, 1, D)
        return empty_prompt + global_embeds * ramp

    return Zero123ppParts(unet, vae, scheduler, encode_condition, lambda n: empty_prompt.expand(n, -1, -1))


def grid_batch(batch: dict[str, torch.Tensor], tile: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(condition (B, 3, tile, tile), grid (B, 3, 3·tile, 2·tile)) in [-1, 1] from dataset items of one state."""
    cond = F.interpolate(batch["input_rgb"][:, 0], size=tile, mode="bilinear", align_corners=False, antialias=True)
    views = batch["source_rgb"][:, list(GRID_VIEWS)]  # (B, 6, 3, H, W)
    views = F.interpolate(views.flatten(0, 1), size=tile, mode="bilinear", align_corners=False, antialias=True)
    views = views.unflatten(0, (-1, GRID_ROWS, GRID_COLS))  # (B, rows, cols, 3, tile, tile)
    grid = views.permute(0, 3, 1, 4, 2, 5).reshape(-1, 3, GRID_ROWS * tile, GRID_COLS * tile)
    return cond * 2 - 1, grid * 2 - 1


def diffusion_loss(parts: Zero123ppParts, refs: ReferenceAttention, cond: torch.Tensor, grid: torch.Tensor,
                   generator: torch.Generator, condition_dropout: float = 0.0) -> torch.Tensor:
    """Zero123++'s objective; a ``condition_dropout`` share of samples sees a blank image and the empty
    prompt (the unconditional branch of classifier-free guidance, as the pipeline builds it)."""
    vae, sched = parts.vae, parts.scheduler
    B = grid.shape[0]
    drop = torch.rand(B, generator=generator) < condition_dropout
    cond = torch.where(drop.to(cond.device)[:, None, None, None], torch.zeros_like(cond), cond)
    with torch.no_grad(), torch.autocast(device_type=grid.device.type, enabled=False):
        latents = vae.encode(grid.float() * IMAGE_SCALE).latent_dist.sample(generator) * vae.config.scaling_factor
        latents = (latents - LATENT_SHIFT) * LATENT_SCALE
        reference = vae.encode(cond.float()).latent_dist.sample(generator)  # kept unscaled, as Zero123++ does
        context = parts.encode_condition(cond.float())
        context = torch.where(drop.to(context.device)[:, None, None], parts.unconditional(B).to(context), context)
    t = torch.randint(0, sched.config.num_train_timesteps, (B,), generator=generator).to(latents.device)
    noise = torch.randn(latents.shape, generator=generator).to(latents.device)
    ref_noise = torch.randn(reference.shape, generator=generator).to(latents.device)
    pred = refs.predict(parts.unet, sched.add_noise(latents, noise, t), sched.add_noise(reference, ref_noise, t), t,
                        context)
    target = sched.get_velocity(latents, noise, t) if sched.config.prediction_type == "v_prediction" else noise
    return F.mse_loss(pred.float(), target.float())


def finetune(cfg: FinetuneConfig, parts: Zero123ppParts | None = None, resume: bool = False,
             progress: bool = True) -> Path:
    """Run (or continue) the fine-tuning; returns the folder of the final UNet."""
    device = torch.device("cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    parts = parts or load_parts(cfg.weights, device)
    parts.vae.requires_grad_(False)
    unet = parts.unet.train()
    refs = ReferenceAttention(unet)
    data = PartDragDataset(cfg.data, "train")
    if len(data) < cfg.batch_size:
        raise ValueError(f"{cfg.data}: {len(data)} training pairs, fewer than one batch of {cfg.batch_size}")
    optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run / "finetune_config.yaml")
    start = 0
    if resume:
        ckpt = latest_checkpoint(run)
        if ckpt is None:
            raise FileNotFoundError(f"--resume: no checkpoint under {run}/checkpoints; start without --resume")
        from safetensors.torch import load_file

        unet.load_state_dict(load_file(str(ckpt / "unet" / "diffusion_pytorch_model.safetensors")))
        start = load_training_state(ckpt, optimizer)["step"]
        generator.manual_seed(cfg.seed + start)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and cfg.mixed_precision else None
    per_epoch = max(1, len(data) // cfg.batch_size)
    log_path = run / "log.csv"
    kept = ["step,loss"]
    if resume and log_path.is_file():  # rows after the checkpoint will be logged again
        kept += [r for r in log_path.read_text().splitlines()[1:] if r and int(r.split(",")[0]) <= start]
    log_path.write_text("\n".join(kept) + "\n")
    log = log_path.open("a")
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="zero123++", disable=not progress)
    for step in bar:
        epoch, k = divmod(step, per_epoch)
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed + epoch))
        items = [data[int(i)] for i in order[k * cfg.batch_size:(k + 1) * cfg.batch_size]]
        batch = {key: torch.stack([it[key] for it in items]).to(device) for key in ("input_rgb", "source_rgb")}
        cond, grid = grid_batch(batch, cfg.tile)
        if amp is not None:
            with amp:
                loss = diffusion_loss(parts, refs, cond, grid, generator, cfg.condition_dropout)
        else:
            loss = diffusion_loss(parts, refs, cond, grid, generator, cfg.condition_dropout)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"step {step}: loss is {value}; lower lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), cfg.grad_clip)
        optimizer.step()
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            log.write(f"{done},{value:.6f}\n")
            log.flush()
            bar.set_postfix(loss=f"{value:.4f}")
        if done % cfg.save_every == 0 or done == cfg.steps:
            save_training_state(run, done, lambda d: unet.save_pretrained(d / "unet", safe_serialization=True),
                                optimizer, {})
    log.close()
    final = run / "final"
    unet.save_pretrained(final / "unet", safe_serialization=True)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="partrm-gym finetune-zero123pp", description=__doc__.splitlines()[0])
    add_finetune_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    cfg = load_config(FinetuneConfig, args.config) if args.config else FinetuneConfig()
    cfg = apply_overrides(cfg, weights=args.weights, data=args.data, out=args.out, steps=args.steps)
    final = finetune(cfg, resume=args.resume)
    print(f"fine-tuned UNet in {final}/unet (copy it over the unet/ of the Zero123++ folder to use it)")
    return 0
