"""The ``lgm`` layout: LGM's network (its UNet, the 1×1 ``conv``, its activations) inside the project's interface.

It takes what :class:`partrm_gym.model.partrm.PartRM` takes, the project's views in [0, 1] and Plücker rays, and
returns splatter images in the project's world frame, so WorldModel, the renderer, the articulation read-out and
the envs need no change. On the way in, RGB is ImageNet-normalised and the rays are mapped to LGM's frame; on the
way out, LGM's Gaussians are mapped back (model/lgm_frame.py). The raw LGM-frame outputs stay reachable
(:meth:`LGMPartRM.forward_raw`, :func:`lgm_activate`, :func:`lgm_gaussians`) for comparisons with LGM itself.

Drags enter in one of two forms (``ModelConfig.drag_embedding``): ``paper``, the project's residual
zero-initialised embedding on each down block's output (a loaded LGM with drags is LGM exactly), or ``released``,
PartRM's released modules (model/lgm_released_drag.py).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from partrm_gym.gaussians import SPLATTER_CHANNELS
from partrm_gym.model.config import ModelConfig
from partrm_gym.model.drag_embedding import MultiScaleDragEmbedding
from partrm_gym.model.lgm_frame import frame_scale, normalise_rgb, plucker_to_lgm, splatter_from_lgm
from partrm_gym.model.lgm_released_drag import ReleasedDragUNet
from partrm_gym.model.lgm_unet import Hook, LGMUNet
from partrm_gym.model.partrm import IN_CHANNELS, ArticulationHead, ArticulationReadout

LGM_CHANNELS = SPLATTER_CHANNELS  # LGM's raw output: position 3, opacity 1, scale 3, rotation 4, colour 3


def lgm_activate(raw: torch.Tensor, dim: int = 2) -> torch.Tensor:
    """LGM's activations of raw outputs (14 channels along ``dim``), in LGM's frame: position clamped to [-1, 1],
    opacity sigmoid, scale 0.1·softplus, rotation normalised (wxyz), colour 0.5·tanh + 0.5."""
    pos, opacity, scale, rot, rgb = raw.split([3, 1, 3, 4, 3], dim=dim)
    return torch.cat([pos.clamp(-1, 1), torch.sigmoid(opacity), 0.1 * F.softplus(scale), F.normalize(rot, dim=dim),
                      0.5 * torch.tanh(rgb) + 0.5], dim=dim)


def lgm_gaussians(raw: torch.Tensor) -> torch.Tensor:
    """Raw outputs [B, V, 14, h, w] -> LGM's activated Gaussians [B, V·h·w, 14] in LGM's order and frame."""
    B = raw.shape[0]
    return lgm_activate(raw.permute(0, 1, 3, 4, 2).reshape(B, -1, LGM_CHANNELS), dim=-1)


class LGMPartRM(ArticulationReadout, nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        if cfg.layout != "lgm":
            raise ValueError(f"LGMPartRM needs a config with layout: lgm, got {cfg.layout!r}")
        super().__init__()
        self.cfg = cfg
        args = (IN_CHANNELS, LGM_CHANNELS, cfg.down_channels, cfg.down_attention, cfg.mid_attention, cfg.up_channels,
                cfg.up_attention, cfg.layers_per_block, cfg.attention_heads, cfg.views)
        if cfg.drag_embedding == "released":
            self.unet: LGMUNet = ReleasedDragUNet(*args, input_size=cfg.input_size, hidden=cfg.drag_hidden)
            self.drag_embedding = None
        else:
            self.unet = LGMUNet(*args)
            self.drag_embedding = MultiScaleDragEmbedding(cfg)  # zero-initialised: LGM's output is unchanged
        self.conv = nn.Conv2d(LGM_CHANNELS, LGM_CHANNELS, 1)
        self.articulation = ArticulationHead(cfg.up_channels[-1]) if cfg.articulation_head else None
        self.scale = frame_scale(cfg.rig_radius, cfg.lgm_cam_radius)

    def unused_parameters(self) -> list[nn.Parameter]:
        """Parameters no forward pass reads (the released ``alpha``): never trained, so DDP does not wait on them."""
        return [self.unet.alpha] if isinstance(self.unet, ReleasedDragUNet) else []

    def _unet_input(self, images: torch.Tensor, plucker: torch.Tensor) -> torch.Tensor:
        """images [B, V, 3, H, W] in [0, 1], the project's plucker [B, V, 6, H, W] -> LGM's input [B·V, 9, H, W]."""
        x = torch.cat([normalise_rgb(images, dim=2), plucker_to_lgm(plucker, self.scale, dim=2)], dim=2)
        return x.flatten(0, 1)

    def _hooks(self, drags: torch.Tensor | None, mask: torch.Tensor | None) -> tuple[Hook | None, Hook | None]:
        """(merge, modulate) hooks of LGMUNet for these drags [B, V, D, 4] (None: reconstruct the current state)."""
        if isinstance(self.unet, ReleasedDragUNet):
            return self.unet.merger(drags, mask), None
        if drags is None:
            return None, None
        m = mask if mask is not None else torch.ones(drags.shape[:-1], dtype=torch.bool, device=drags.device)
        return None, self.drag_embedding.modulator(drags, m)

    def _features(self, images: torch.Tensor, plucker: torch.Tensor, drags: torch.Tensor | None,
                  mask: torch.Tensor | None) -> torch.Tensor:
        """The last up block's features [B·V, up_channels[-1], h, w]."""
        merge, modulate = self._hooks(drags, mask)
        return self.unet.features(self._unet_input(images, plucker), merge, modulate)

    def _raw(self, features: torch.Tensor, batch: int) -> torch.Tensor:
        """Features [B·V, C, h, w] -> raw LGM outputs [B, V, 14, h, w] (unet.conv_out, then the 1×1 conv)."""
        return self.conv(self.unet.head(features)).unflatten(0, (batch, -1))

    def forward_raw(self, images: torch.Tensor, plucker: torch.Tensor, drags: torch.Tensor | None = None,
                    drag_mask: torch.Tensor | None = None) -> torch.Tensor:
        """LGM's raw output [B, V, 14, h, w], in LGM's frame, before activations."""
        return self._raw(self._features(images, plucker, drags, drag_mask), images.shape[0])

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw outputs [B, V, 14, h, w] -> activated splatter images in the project's frame."""
        return splatter_from_lgm(lgm_activate(raw), self.scale)

    def forward(self, images: torch.Tensor, plucker: torch.Tensor, drags: torch.Tensor | None = None,
                drag_mask: torch.Tensor | None = None) -> torch.Tensor:
        """images [B, V, 3, H, W] in [0, 1], plucker [B, V, 6, H, W] (the project's rays), drags [B, V, D, 4],
        mask [B, V, D] -> splatter images [B, V, 14, h, w] in the project's frame; drags None reconstructs."""
        return self.activate(self.forward_raw(images, plucker, drags, drag_mask))

    def reconstruct_with_features(self, images: torch.Tensor,
                                  plucker: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The current state's splatter images [B, V, 14, h, w] and the features the articulation head reads
        [B, V, up_channels[-1], h, w], from one pass without drags."""
        B = images.shape[0]
        features = self._features(images, plucker, None, None)
        return self.activate(self._raw(features, B)), features.unflatten(0, (B, -1))
