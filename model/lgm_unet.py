"""LGM's multi-view UNet, layer for layer, with LGM's parameter names (so its released weights load by name).

One idea per module:

* :class:`ResnetBlock`: GroupNorm-SiLU-conv twice, plus the input (1×1 conv where the width changes); the sum is
  scaled by √0.5, as is every residual sum here (``skip_scale``).
* :class:`MVAttention`: self-attention over the tokens of all 4 views of a sample (qkv without bias, proj with
  bias), added to its input and scaled.
* :class:`DownBlock`: ``layers_per_block`` residual layers (+ attention where set), a stride-2 3×3 conv after every
  block but the last. Every layer's output and the downsample's are kept as skips.
* :class:`MidBlock`: residual, attention, residual.
* :class:`UpBlock`: ``layers_per_block + 1`` layers, each concatenating one skip (the latest first), then nearest ×2
  and a 3×3 conv after every block but the last.
* :class:`LGMUNet`: conv_in, the blocks, norm_out + SiLU + conv_out. Two hooks let drags in without changing LGM:
  ``merge`` before each down block (PartRM's released form) and ``modulate`` on each down block's output (the
  paper's residual form). ``checkpointing`` recomputes each block in the backward pass (less activation memory).

Views are folded into the batch, (B·V, C, H, W); only attention unfolds them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

GROUPS = 32
EPS = 1e-5
SKIP_SCALE = math.sqrt(0.5)

Hook = Callable[[int, torch.Tensor], torch.Tensor]  # (down block index, features) -> features


def skip_channels(down_channels: Sequence[int], layers: int) -> list[int]:
    """Channels of the skips the down path keeps, in order: conv_in, then per block its layers and downsample."""
    out = [down_channels[0]]
    for i, c in enumerate(down_channels):
        out += [c] * layers + ([c] if i < len(down_channels) - 1 else [])
    return out


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(GROUPS, channels, eps=EPS)


class ResnetBlock(nn.Module):
    """(shortcut(x) + conv2(SiLU(norm2(conv1(SiLU(norm1(x))))))) · √0.5; the shortcut is a 1×1 conv where the width
    changes (LGM's names: norm1, conv1, norm2, conv2, shortcut)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        for i, (a, b) in enumerate(((cin, cout), (cout, cout)), start=1):
            self.add_module(f"norm{i}", group_norm(a))
            self.add_module(f"conv{i}", nn.Conv2d(a, b, 3, padding=1))
        self.shortcut = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B·V, cin, H, W] -> [B·V, cout, H, W]"""
        h = x
        for norm, conv in ((self.norm1, self.conv1), (self.norm2, self.conv2)):
            h = conv(F.silu(norm(h)))
        return (h + self.shortcut(x)) * SKIP_SCALE


class TokenAttention(nn.Module):
    """Multi-head self-attention over tokens [B, N, C]: qkv without bias, proj with bias (LGM's ``attn``)."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(channels, 3 * channels, bias=False)
        self.proj = nn.Linear(channels, channels)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        B, N, C = tokens.shape
        q, k, v = self.qkv(tokens).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)  # [B, h, N, c]
        out = F.scaled_dot_product_attention(q, k, v)  # [B, heads, N, C / heads]
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class MVAttention(nn.Module):
    def __init__(self, channels: int, heads: int, views: int) -> None:
        super().__init__()
        self.views = views
        self.norm = group_norm(channels)
        self.attn = TokenAttention(channels, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B·V, C, H, W]; the tokens of a sample's V views (view-major, then row-major) attend to each other."""
        BV, C, H, W = x.shape
        V = self.views
        tokens = self.norm(x).reshape(BV // V, V, C, H, W).permute(0, 1, 3, 4, 2).reshape(BV // V, V * H * W, C)
        out = self.attn(tokens).reshape(BV // V, V, H, W, C).permute(0, 1, 4, 2, 3).reshape(BV, C, H, W)
        return (out + x) * SKIP_SCALE


def _attention(on: bool, channels: int, heads: int, views: int) -> nn.Module:
    return MVAttention(channels, heads, views) if on else nn.Identity()  # Identity: no parameters, as LGM's None


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int, layers: int, attention: bool, heads: int, views: int,
                 downsample: bool) -> None:
        super().__init__()
        self.nets = nn.ModuleList(ResnetBlock(cin if j == 0 else cout, cout) for j in range(layers))
        self.attns = nn.ModuleList(_attention(attention, cout, heads, views) for _ in range(layers))
        self.downsample = nn.Conv2d(cout, cout, 3, stride=2, padding=1) if downsample else None

    def forward(self, x: torch.Tensor, modulate: Callable[[torch.Tensor], torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x [B·V, cin, H, W] -> (x [B·V, cout, H/2 or H, ...], skips). ``modulate`` rewrites the last layer's
        output (both the skip and what goes down)."""
        skips = []
        for j, (net, attn) in enumerate(zip(self.nets, self.attns)):
            x = attn(net(x))
            if modulate is not None and j == len(self.nets) - 1:
                x = modulate(x)
            skips.append(x)
        if self.downsample is not None:
            x = self.downsample(x)
            skips.append(x)
        return x, skips


class MidBlock(nn.Module):
    def __init__(self, channels: int, attention: bool, heads: int, views: int) -> None:
        super().__init__()
        self.nets = nn.ModuleList(ResnetBlock(channels, channels) for _ in range(2))
        self.attns = nn.ModuleList([_attention(attention, channels, heads, views)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nets[1](self.attns[0](self.nets[0](x)))


class UpBlock(nn.Module):
    def __init__(self, cin: int, skips: Sequence[int], cout: int, attention: bool, heads: int, views: int,
                 upsample: bool) -> None:
        """``skips``: the channels of the skips this block takes, in the order it takes them (latest first)."""
        super().__init__()
        self.nets = nn.ModuleList(ResnetBlock((cin if j == 0 else cout) + c, cout) for j, c in enumerate(skips))
        self.attns = nn.ModuleList(_attention(attention, cout, heads, views) for _ in skips)
        self.upsample = nn.Conv2d(cout, cout, 3, padding=1) if upsample else None

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """x [B·V, cin, H, W], skips (oldest first) -> [B·V, cout, 2H or H, ...]"""
        for net, attn, skip in zip(self.nets, self.attns, reversed(skips)):
            x = attn(net(torch.cat([x, skip], dim=1)))
        if self.upsample is not None:
            x = self.upsample(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return x


class LGMUNet(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, down_channels: Sequence[int],
                 down_attention: Sequence[bool], mid_attention: bool, up_channels: Sequence[int],
                 up_attention: Sequence[bool], layers_per_block: int, heads: int, views: int) -> None:
        super().__init__()
        L, n = layers_per_block, len(down_channels)
        self.checkpointing = False
        self.conv_in = nn.Conv2d(in_channels, down_channels[0], 3, padding=1)
        cins = [down_channels[0], *down_channels[:-1]]
        self.down_blocks = nn.ModuleList(
            DownBlock(cin, cout, L, attn, heads, views, downsample=i < n - 1)
            for i, (cin, cout, attn) in enumerate(zip(cins, down_channels, down_attention)))
        self.mid_block = MidBlock(down_channels[-1], mid_attention, heads, views)
        pending = skip_channels(down_channels, L)
        self.up_blocks = nn.ModuleList()
        cin = down_channels[-1]
        for i, (cout, attn) in enumerate(zip(up_channels, up_attention)):
            taken, pending = pending[-(L + 1):][::-1], pending[:-(L + 1)]
            self.up_blocks.append(UpBlock(cin, taken, cout, attn, heads, views, upsample=i < len(up_channels) - 1))
            cin = cout
        self.norm_out = group_norm(up_channels[-1])
        self.conv_out = nn.Conv2d(up_channels[-1], out_channels, 3, padding=1)

    def _run(self, block: nn.Module, *args):
        """A block, recomputed in the backward pass when ``checkpointing`` is on (and gradients are wanted)."""
        if self.checkpointing and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def features(self, x: torch.Tensor, merge: Hook | None = None, modulate: Hook | None = None) -> torch.Tensor:
        """x [B·V, 9, H, W] -> the last up block's features [B·V, up_channels[-1], h, w]."""
        x = self.conv_in(x)
        skips = [x]
        for i, block in enumerate(self.down_blocks):
            if merge is not None:
                x = merge(i, x)
            level_hook = (lambda h, i=i: modulate(i, h)) if modulate is not None else None
            x, xs = self._run(block, x, level_hook)
            skips += xs
        x = self._run(self.mid_block, x)
        for block in self.up_blocks:
            taken = len(block.nets)
            x = self._run(block, x, skips[-taken:])
            skips = skips[:-taken]
        return x

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """[B·V, up_channels[-1], h, w] -> [B·V, out_channels, h, w]"""
        return self.conv_out(F.silu(self.norm_out(features)))

    def forward(self, x: torch.Tensor, merge: Hook | None = None, modulate: Hook | None = None) -> torch.Tensor:
        return self.head(self.features(x, merge, modulate))
