"""PartRM's drag modules as released (its UNetWithMSDrag), by their key names, so its weights load as trained.

Per down block i (its input: C_i channels at S_i², C = [C_0, down_channels[:-1]...], S_i = input_size / 2^i):

    start, end pixels (512² frame) -> Fourier features (8 frequencies 100^(k/8), sin/cos interleaved) -> one MLP
    per level, shared by start and end (32 -> 128 -> 256 -> C_i/2, SiLU) -> each summed into its own zero map
    [C_i/2, S_i, S_i] at cell (int(c0) // (512/S_i), int(c1) // (512/S_i)) indexing (row, col) -> both maps
    Gaussian-blurred (5×5, σ 1, reflected borders) -> D_i = [start map, end map]
    x <- conv_merges[i](cat[x, D_i])        (3×3 conv 2C_i -> C_i, replacing x: no residual, no zero init)

``alpha`` is a learned scalar of the released code that its forward never uses; it is kept for the keys.
The differences from the paper's form (model/drag_embedding.py) are listed in docs/lgm.md.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from partrm_gym.model.lgm_frame import RELEASED_DRAG_FRAME, released_drag_pixels
from partrm_gym.model.lgm_unet import Hook, LGMUNet

FREQUENCIES = 8
TEMPERATURE = 100.0
BLUR_SIZE, BLUR_SIGMA = 5, 1.0


def check_released_sizes(input_size: int, levels: int) -> None:
    """The released cell rule divides the 512² frame by each level's side: every side must divide 512, and the
    5×5 blur with reflected borders needs sides of at least 3."""
    sides = [input_size // 2**i for i in range(levels)]
    if any(RELEASED_DRAG_FRAME % s for s in sides) or sides[-1] < BLUR_SIZE // 2 + 1:
        raise ValueError(f"drag_embedding released: the levels' sides {sides} must divide {RELEASED_DRAG_FRAME} "
                         f"and be at least {BLUR_SIZE // 2 + 1}")


def fourier_features(points: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates (…, 2) -> (…, 4·FREQUENCIES): per frequency f_k = 100^(k/8), [sin(f·p), cos(f·p)]."""
    freqs = TEMPERATURE ** (torch.arange(FREQUENCIES, device=points.device, dtype=points.dtype) / FREQUENCIES)
    angles = points[..., None, :] * freqs[:, None]  # (…, F, 2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # (…, F·4): sin x, sin y, cos x, cos y, ...


def gaussian_blur(maps: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> the same, blurred by a normalised 5×5 Gaussian of σ 1 with reflected borders."""
    x = torch.linspace(-(BLUR_SIZE - 1) / 2, (BLUR_SIZE - 1) / 2, BLUR_SIZE, device=maps.device, dtype=maps.dtype)
    k1 = torch.exp(-0.5 * (x / BLUR_SIGMA) ** 2)
    k1 = k1 / k1.sum()
    C = maps.shape[1]
    kernel = (k1[:, None] * k1[None, :]).expand(C, 1, BLUR_SIZE, BLUR_SIZE)
    pad = BLUR_SIZE // 2
    return F.conv2d(F.pad(maps, (pad, pad, pad, pad), mode="reflect"), kernel, groups=C)


def fill_cyclically(drags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[N, D, 4] drags with a [N, D] mask -> [N, D, 4] where the masked slots repeat the real drags in order.

    The released network always saw D real drags (its data resamples the moving points to fill them, its
    evaluation repeats one drag D times), summed into the maps; padding slots must not add a drag at pixel 0.
    A row with no real drag is left as it is and its embedding is zeroed by the caller."""
    count = mask.sum(dim=1, keepdim=True)  # [N, 1]
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # real drags first, in their order
    slot = torch.arange(drags.shape[1], device=drags.device)[None] % count.clamp(min=1)  # [N, D]
    return torch.gather(drags, 1, torch.gather(order, 1, slot)[..., None].expand(-1, -1, 4))


class ReleasedDragPositionNet(nn.Module):
    """PartRM's DragPositionNetMultiScale (key ``linears_drags.{i}.{0,2,4}``)."""

    def __init__(self, channels: list[int], sides: list[int], hidden: tuple[int, int]) -> None:
        super().__init__()
        self.channels, self.sides = channels, sides
        self.linears_drags = nn.ModuleList(
            nn.Sequential(nn.Linear(4 * FREQUENCIES, hidden[0]), nn.SiLU(), nn.Linear(hidden[0], hidden[1]), nn.SiLU(),
                          nn.Linear(hidden[1], c // 2)) for c in channels)

    def forward(self, pixels: torch.Tensor, real: torch.Tensor) -> list[torch.Tensor]:
        """pixels [N, D, 4] (start x, y, end x, y in the 512² frame), real [N] (does the row have a drag)
        -> per level the drag map [N, C_i, S_i, S_i] = [start map, end map]."""
        N, D, _ = pixels.shape
        start_end = pixels.reshape(N, D, 2, 2)  # [N, D, start/end, xy]
        features = fourier_features(start_end)  # [N, D, 2, 32]
        cells = start_end.long()  # int() of non-negative coordinates
        maps = []
        for mlp, C, S in zip(self.linears_drags, self.channels, self.sides):
            emb = mlp(features) * real[:, None, None, None].to(features.dtype)  # [N, D, 2, C/2]
            ratio = RELEASED_DRAG_FRAME // S
            cell = (cells[..., 0] // ratio) * S + cells[..., 1] // ratio  # [N, D, 2]: row from c0, col from c1
            flat = torch.zeros(N, 2, S * S, C // 2, dtype=emb.dtype, device=emb.device)
            index = cell.transpose(1, 2)[..., None].expand(-1, -1, -1, C // 2)  # [N, 2, D, C/2]
            flat = flat.scatter_add(2, index, emb.transpose(1, 2))
            m = flat.permute(0, 1, 3, 2).reshape(N, C, S, S)  # [start C/2 | end C/2]
            maps.append(gaussian_blur(m))
        return maps


class ReleasedDragUNet(LGMUNet):
    """LGMUNet with the released drag modules beside its layers (PartRM's UNetWithMSDrag): the keys
    ``unet.drag_position_net.*``, ``unet.conv_merges.*`` and ``unet.alpha`` of a released checkpoint."""

    def __init__(self, *args, input_size: int, hidden: tuple[int, int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        down_channels = [b.nets[0].conv1.out_channels for b in self.down_blocks]
        channels = [self.conv_in.out_channels, *down_channels[:-1]]  # each down block's input
        sides = [input_size // 2**i for i in range(len(down_channels))]
        self.drag_position_net = ReleasedDragPositionNet(channels, sides, hidden)
        self.conv_merges = nn.ModuleList(nn.Conv2d(2 * c, c, 3, padding=1) for c in channels)
        self.alpha = nn.Parameter(torch.tensor(0.0), requires_grad=False)  # unused by the released forward

    def merger(self, drags: torch.Tensor | None, mask: torch.Tensor | None) -> Hook:
        """The ``merge`` hook for drags [B, V, D, 4] normalised to [0, 1] of each view (None: no drags: zero maps,
        the merge convolutions still run, as the released network has no path without them).

        As released, every view gets view 0's drags: PartRM's data code projects the drags into the first camera
        only and hands those 2D points to all four views."""
        maps = None
        if drags is not None:
            m = mask if mask is not None else torch.ones(drags.shape[:-1], dtype=torch.bool, device=drags.device)
            first, first_mask = drags[:, 0], m[:, 0]  # [B, D, 4], [B, D]
            pixels = released_drag_pixels(fill_cyclically(first, first_mask))
            per_sample = self.drag_position_net(pixels, first_mask.any(dim=1))  # per level [B, C, S, S]
            maps = [t.repeat_interleave(drags.shape[1], dim=0) for t in per_sample]  # [B·V, C, S, S]

        def merge(level: int, x: torch.Tensor) -> torch.Tensor:
            d = maps[level].to(x.dtype) if maps is not None else torch.zeros_like(x)
            return self.conv_merges[level](torch.cat([x, d], dim=1))

        return merge
