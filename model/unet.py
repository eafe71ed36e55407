"""LGM's asymmetric multi-view UNet: residual blocks, cross-view self-attention at low resolution.

Views are folded into the batch, (B·V, C, H, W), except in attention, which sees the tokens
of all V views of a sample at once — that is what lets one view's features inform another's.
Down levels can be modulated by a callback (the drag embedding) on their outputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from partrm_gym.model.config import ModelConfig


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4), channels, eps=1e-5)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = group_norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = group_norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class MultiViewAttention(nn.Module):
    """Self-attention over the tokens of all views of a sample."""

    def __init__(self, channels: int, heads: int, views: int) -> None:
        super().__init__()
        self.heads, self.views = heads, views
        self.norm = group_norm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        BV, C, H, W = x.shape
        B = BV // self.views
        t = self.norm(x).reshape(B, self.views, C, H * W).permute(0, 1, 3, 2).reshape(B, self.views * H * W, C)
        q, k, v = self.qkv(t).reshape(B, -1, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, -1, C)
        out = self.proj(out).reshape(B, self.views, H * W, C).permute(0, 1, 3, 2).reshape(BV, C, H, W)
        return x + out


class Level(nn.Module):
    """``layers`` residual blocks, each optionally followed by multi-view attention."""

    def __init__(self, cin: int, cout: int, layers: int, attention: bool, heads: int, views: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(ResBlock(cin if i == 0 else cout, cout) for i in range(layers))
        self.attns = nn.ModuleList(MultiViewAttention(cout, heads, views) if attention else nn.Identity()
                                   for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, attn in zip(self.blocks, self.attns):
            x = attn(block(x))
        return x


class AsymmetricUNet(nn.Module):
    def __init__(self, cfg: ModelConfig, in_channels: int, out_channels: int) -> None:
        super().__init__()
        L, heads, V = cfg.layers_per_block, cfg.attention_heads, cfg.views
        self.conv_in = nn.Conv2d(in_channels, cfg.down_channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = cfg.down_channels[0]
        for i, (cout, attn) in enumerate(zip(cfg.down_channels, cfg.down_attention)):
            self.down.append(Level(c, cout, L, attn, heads, V))
            last = i == len(cfg.down_channels) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(cout, cout, 3, stride=2, padding=1))
            c = cout
        self.mid = Level(c, c, 1, cfg.mid_attention, heads, V)
        skips = list(cfg.down_channels[::-1])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, (cout, attn) in enumerate(zip(cfg.up_channels, cfg.up_attention)):
            self.up.append(Level(c + skips[i], cout, L, attn, heads, V))
            last = i == len(cfg.up_channels) - 1
            self.upsample.append(nn.Identity() if last else nn.Conv2d(cout, cout, 3, padding=1))
            c = cout
        self.norm_out = group_norm(c)
        self.conv_out = nn.Conv2d(c, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor,
                modulate: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        return self.head(self.features(x, modulate))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """The output layer: features of the last up level -> raw output channels."""
        return self.conv_out(F.silu(self.norm_out(features)))

    def features(self, x: torch.Tensor,
                 modulate: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """The last up level's features (B·V, up_channels[-1], h, w), shared by every output head."""
        h = self.conv_in(x)
        skips = []
        for i, (level, down) in enumerate(zip(self.down, self.downsample)):
            h = level(h)
            if modulate is not None:
                h = modulate(i, h)
            skips.append(h)
            h = down(h)
        h = self.mid(h)
        for i, (level, up) in enumerate(zip(self.up, self.upsample)):
            h = level(torch.cat([h, skips[-1 - i]], dim=1))
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return h
