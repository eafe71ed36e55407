"""Model sizes as YAML-backed dataclasses (configs/model/{tiny,base,paper,lgm_big,lgm_big_released}.yaml).

Two network layouts share this config: ``partrm`` (the project's own UNet and pixel-aligned Gaussian head, the
bundled model's) and ``lgm`` (LGM's UNet and output head exactly, so LGM's and PartRM's released weights load by
name; docs/lgm.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from partrm_gym.cameras import RigConfig
from partrm_gym.drags import DEFAULT_MAX_DRAGS
from partrm_gym.gaussians import FOOTPRINT_SIGMA


@dataclass(frozen=True)
class ModelConfig:
    name: str = "tiny"
    layout: Literal["partrm", "lgm"] = "partrm"
    input_size: int = 64  # input views are input_size² (4 views + Plücker rays = 9 channels each)
    views: int = 4
    # Asymmetric UNet (LGM): a downsampling after every down level but the last, an upsampling
    # after every up level but the last; fewer up levels than down levels = lower output resolution.
    down_channels: tuple[int, ...] = (32, 64, 128, 128)
    down_attention: tuple[bool, ...] = (False, False, True, True)
    mid_attention: bool = True
    up_channels: tuple[int, ...] = (128, 64, 32)
    up_attention: tuple[bool, ...] = (True, False, False)
    layers_per_block: int = 1
    attention_heads: int = 4
    # drag embedding (the seed's code: 8 Fourier frequencies, MLP 32 -> 128 -> 256 -> C/2 per point and level)
    max_drags: int = DEFAULT_MAX_DRAGS
    drag_frequencies: int = 8
    drag_hidden: tuple[int, int] = (128, 256)
    drag_levels: tuple[bool, ...] = (True, True, True, True)  # inject at these down levels
    # lgm layout: "paper" adds the residual zero-initialised embedding above on the down blocks' outputs (a loaded
    # LGM starts out unchanged); "released" is PartRM's released drag modules, by their key names (docs/lgm.md).
    drag_embedding: Literal["paper", "released"] = "paper"
    # The input rig (the 4 canonical views the model reads): radius and elevation in the project's world (metres,
    # z up). The lgm layout takes LGM's rig: elevation 0.
    rig_radius: float = 1.5
    input_elevation_deg: float = 20.0
    # lgm layout: the camera radius of LGM's frame (1.5 in LGM; PartRM's options use 2.4). The project world maps
    # to LGM's by a rotation and the scale lgm_cam_radius / rig_radius (model/lgm_frame.py).
    lgm_cam_radius: float = 1.5
    # partrm layout's Gaussian head: position = ray origin + depth · ray direction (+ a small offset)
    depth_range: float = 0.7  # depth along the ray in rig_radius ± depth_range
    max_offset: float = 0.05
    # scales = softplus(raw) · scale_unit (world units); None: chosen so an untrained head (raw = 0) makes
    # Gaussians as wide as the GT splatter's (half an output pixel's footprint at the rig radius). Much
    # smaller ones are nearly transparent under antialiased rendering, so nothing would be seen to train on.
    scale_unit: float | None = None
    min_scale: float = 1e-4
    # Articulation head (partrm_gym.articulation): per splatter pixel, is it on a movable part, that part's
    # joint type, axis, a point on its axis and the part's centre; predicted once per episode at reset.
    articulation_head: bool = False
    max_pivot_offset: float = 1.0  # world units; the object fits a sphere of radius 0.5
    max_centre_offset: float = 0.5

    def __post_init__(self) -> None:
        n = len(self.down_channels)
        if len(self.down_attention) != n or len(self.drag_levels) != n:
            raise ValueError("down_channels, down_attention and drag_levels need one entry per down level")
        if len(self.up_attention) != len(self.up_channels):
            raise ValueError("up_channels and up_attention need one entry per up level")
        if len(self.up_channels) >= n:
            raise ValueError("the UNet must have fewer up levels than down levels (asymmetric, as LGM)")
        if self.input_size % 2 ** (n - 1):
            raise ValueError(f"input_size {self.input_size} must be divisible by {2 ** (n - 1)}")
        if any(c % 8 for c in (*self.down_channels, *self.up_channels)):
            raise ValueError("channel counts must be multiples of 8 (GroupNorm)")
        if self.rig_radius <= 0 or self.lgm_cam_radius <= 0:
            raise ValueError("rig_radius and lgm_cam_radius must be > 0")
        if not -90 < self.input_elevation_deg < 90:
            raise ValueError(f"input_elevation_deg must be in (-90, 90), got {self.input_elevation_deg}")
        if self.layout == "lgm":
            self._check_lgm()
        elif self.drag_embedding != "paper":
            raise ValueError("drag_embedding: released needs layout: lgm (PartRM's released modules sit in LGM's UNet)")

    def _check_lgm(self) -> None:
        """What LGM's UNet needs: GroupNorm of 32 groups everywhere, and enough skips for its up blocks."""
        from partrm_gym.model.lgm_unet import GROUPS, skip_channels

        if any(c % GROUPS for c in (*self.down_channels, *self.up_channels)):
            raise ValueError(f"layout lgm: channel counts must be multiples of {GROUPS} (GroupNorm of {GROUPS} groups)")
        if any(c % self.attention_heads for c in (*self.down_channels, *self.up_channels)):
            raise ValueError(f"layout lgm: channel counts must be multiples of attention_heads {self.attention_heads}")
        needed = len(self.up_channels) * (self.layers_per_block + 1)
        if needed > len(skip_channels(self.down_channels, self.layers_per_block)):
            raise ValueError(f"layout lgm: the up blocks take {needed} skips, the down blocks make fewer")
        if self.drag_embedding == "released":
            from partrm_gym.model.lgm_released_drag import check_released_sizes

            check_released_sizes(self.input_size, len(self.down_channels))

    @property
    def input_rig(self) -> RigConfig:
        """The rig of the 4 input views (WorldModel renders and the dataset must use it)."""
        return RigConfig(radius=self.rig_radius, canonical_elevation_deg=self.input_elevation_deg)

    @property
    def resolved_scale_unit(self) -> float:
        if self.scale_unit is not None:
            return self.scale_unit
        fov = math.radians(RigConfig().fov_deg)  # the canonical rig's, as PartRM's ray buffers use
        footprint = 2 * self.rig_radius * math.tan(fov / 2) / self.output_size
        return FOOTPRINT_SIGMA * footprint / math.log(2.0)  # softplus(0) = ln 2

    @property
    def output_size(self) -> int:
        """Side of the splatter images."""
        bottom = self.input_size // 2 ** (len(self.down_channels) - 1)
        return bottom * 2 ** (len(self.up_channels) - 1)
