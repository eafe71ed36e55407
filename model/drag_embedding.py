"""PartRM's multi-scale drag embedding, residual and zero-initialised (the paper's equation).

Per UNet level l: each drag's start and end points get Fourier features and their own
3-layer MLP (-> C_l/2 each); the concatenated embedding is written into a (C_l, H_l, W_l)
map at the drag start's cell (summed if several drags share it, zero elsewhere), then
O_l + conv([O_l, D_l]) with the conv initialised to zero, so a pretrained static model
starts out unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from partrm_gym.model.config import ModelConfig


def fourier_features(points: torch.Tensor, frequencies: int) -> torch.Tensor:
    """(…, 2) in [0, 1] -> (…, 4·frequencies): sin and cos of 2^k·π·p."""
    scales = (2.0 ** torch.arange(frequencies, device=points.device, dtype=points.dtype)) * math.pi
    angles = points[..., None] * scales  # (…, 2, F)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)


def point_mlp(frequencies: int, hidden: tuple[int, int], out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(4 * frequencies, hidden[0]), nn.SiLU(), nn.Linear(hidden[0], hidden[1]), nn.SiLU(),
                         nn.Linear(hidden[1], out))


class DragLevel(nn.Module):
    def __init__(self, channels: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.frequencies = cfg.drag_frequencies
        self.start_mlp = point_mlp(cfg.drag_frequencies, cfg.drag_hidden, channels // 2)
        self.end_mlp = point_mlp(cfg.drag_frequencies, cfg.drag_hidden, channels - channels // 2)
        self.fuse = nn.Conv2d(2 * channels, channels, 3, padding=1)
        nn.init.zeros_(self.fuse.weight)
        nn.init.zeros_(self.fuse.bias)

    def forward(self, features: torch.Tensor, drags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """features (B·V, C, H, W); drags (B·V, D, 4) in [0, 1]; mask (B·V, D)."""
        BV, C, H, W = features.shape
        emb = torch.cat([self.start_mlp(fourier_features(drags[..., :2], self.frequencies)),
                         self.end_mlp(fourier_features(drags[..., 2:], self.frequencies))], dim=-1)
        emb = emb * mask[..., None].to(emb.dtype)  # (BV, D, C)
        col = (drags[..., 0] * W).long().clamp(0, W - 1)
        row = (drags[..., 1] * H).long().clamp(0, H - 1)
        cell = row * W + col  # (BV, D)
        dmap = torch.zeros(BV, H * W, C, dtype=emb.dtype, device=emb.device)
        dmap = dmap.scatter_add(1, cell[..., None].expand(-1, -1, C), emb)
        dmap = dmap.transpose(1, 2).reshape(BV, C, H, W)
        return features + self.fuse(torch.cat([features, dmap], dim=1))


class MultiScaleDragEmbedding(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.levels = nn.ModuleDict({str(i): DragLevel(c, cfg) for i, (c, on) in
                                     enumerate(zip(cfg.down_channels, cfg.drag_levels)) if on})

    def modulator(self, drags: torch.Tensor, mask: torch.Tensor):
        """A callback for :class:`AsymmetricUNet` applying the embedding at each enabled level."""
        flat_d, flat_m = drags.flatten(0, 1), mask.flatten(0, 1)

        def modulate(level: int, features: torch.Tensor) -> torch.Tensor:
            key = str(level)
            return self.levels[key](features, flat_d, flat_m) if key in self.levels else features

        return modulate


