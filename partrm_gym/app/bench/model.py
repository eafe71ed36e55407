"""``partrm-gym bench model``: one forward of the world-model network per config and batch size.

What a model size costs before any training: the network of each config, with random weights, on random views,
Plücker rays and a full set of drags (the forward a drag step or a stage-1 training step makes), under
``torch.inference_mode``; on the CPU in the memory format :class:`~partrm_gym.model.world_model.WorldModel` uses
(channels-last). Reported per config and batch: parameters, input and splatter resolution, median forward time.
The measured choice of ``tiny``'s resolution rests on this table (docs/model.md).
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

import torch

from partrm_gym.app.bench.report import emit_report, markdown_table, median_ms

if TYPE_CHECKING:
    from partrm_gym.model.config import ModelConfig

DEFAULT_CONFIGS = ("model/tiny", "model/base")
DEFAULT_BATCHES = (1, 16)


def forward_ms(cfg: ModelConfig, batch: int, device: str, repeats: int) -> tuple[int, int, float]:
    """(parameters, splatter side, median ms of one forward) of ``cfg``'s network at ``batch`` (4 views each)."""
    from partrm_gym.model.networks import build_network

    torch.manual_seed(0)
    network = build_network(cfg).to(device).eval()
    if device == "cpu":
        network = network.to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    S, V, D = cfg.input_size, cfg.views, cfg.max_drags
    images = torch.rand(batch, V, 3, S, S, generator=g).to(device)
    plucker = torch.rand(batch, V, 6, S, S, generator=g).to(device)
    drags = torch.rand(batch, V, D, 4, generator=g).to(device)
    mask = torch.ones(batch, V, D, dtype=torch.bool, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def forward() -> None:
        with torch.inference_mode():
            network(images, plucker, drags, mask)
        sync()

    return sum(p.numel() for p in network.parameters()), cfg.output_size, median_ms(forward, repeats)


def bench_model(args: argparse.Namespace) -> str:
    from partrm_gym.config import load_config
    from partrm_gym.model.config import ModelConfig

    device = "cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    configs = args.configs or list(DEFAULT_CONFIGS)
    batches = args.batches or list(DEFAULT_BATCHES)
    rows = []
    for name in configs:
        cfg = load_config(ModelConfig, name)
        for batch in batches:
            t = time.perf_counter()
            params, side, ms = forward_ms(cfg, batch, device, args.repeats)
            rows.append([cfg.name, cfg.layout, f"{cfg.input_size}² → {side}²", f"{params / 1e6:.2f} M", batch,
                         f"{ms:.0f}", f"{time.perf_counter() - t:.1f}"])
    table = markdown_table(["config", "layout", "input → splatter", "params", "batch", "forward ms (median)",
                            "bench s (build + runs)"], rows)
    command = (f"partrm-gym bench model --configs {' '.join(configs)} --batches {' '.join(map(str, batches))} "
               f"--repeats {args.repeats}")
    return emit_report(f"World-model network forward ({device})", command, table, args.out)
