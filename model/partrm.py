"""PartRM: 4 views + Plücker rays + drags -> splatter images of the next state.

The Gaussian head activates each channel group: position = ray origin + depth · ray
direction (depth = rig_radius + depth_range · tanh) plus a bounded offset — a pixel-aligned
parameterisation (as Splatter Image) that starts every Gaussian on its own pixel's ray —
opacity sigmoid, scale softplus · scale_unit, rotation normalised (identity at zero output),
RGB sigmoid.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from partrm_gym.articulation import ARTICULATION_CHANNELS, AXIS, CENTRE, MOVABLE, PIVOT, REVOLUTE
from partrm_gym.cameras import canonical_rig
from partrm_gym.gaussians import SPLATTER_CHANNELS
from partrm_gym.model.config import ModelConfig
from partrm_gym.model.drag_embedding import MultiScaleDragEmbedding
from partrm_gym.model.unet import AsymmetricUNet

IN_CHANNELS = 9  # RGB + Plücker (6)
RAW_CHANNELS = 1 + 3 + 1 + 3 + 4 + 3  # depth, offset, opacity, scale, rotation, RGB


class ArticulationHead(nn.Module):
    """Per splatter pixel: which kind of part it shows and that part's joint (see ARTICULATION_CHANNELS).

    Dilated convolutions (1, 2, 4, 8) give each pixel a receptive field of about half the splatter image
    at little cost: a pixel's vote for its part's centre and joint axis needs to see the whole part.
    """

    def __init__(self, channels: int, width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, width, 3, padding=1)]
        for dilation in (2, 4, 8):
            layers += [nn.SiLU(), nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)]
        layers += [nn.SiLU(), nn.Conv2d(width, ARTICULATION_CHANNELS, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class ArticulationReadout:
    """The articulation head's read-out, shared by both network layouts (PartRM, LGMPartRM): they provide
    ``cfg``, ``articulation`` (the head or None) and ``reconstruct_with_features``."""

    cfg: ModelConfig
    articulation: nn.Module | None

    def reconstruct_with_features(self, images: torch.Tensor,
                                  plucker: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward_articulated(self, images: torch.Tensor, plucker: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct the current state (no drags) and its articulation from one UNet pass:
        splatter images (B, V, 14, h, w) and articulation maps (B, V, 11, h, w), activated."""
        splatter, features = self.reconstruct_with_features(images, plucker)
        return splatter, self.articulation_maps(features)

    def articulation_maps(self, features: torch.Tensor) -> torch.Tensor:
        """UNet features (B, V, C, h, w) -> activated articulation maps (B, V, 11, h, w)."""
        if self.articulation is None:
            raise RuntimeError("this model has no articulation head (ModelConfig.articulation_head is false)")
        return self.activate_articulation(self.articulation(features.flatten(0, 1)).unflatten(0, features.shape[:2]))

    def activate_articulation(self, raw: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        return torch.cat([torch.sigmoid(raw[:, :, MOVABLE]), torch.sigmoid(raw[:, :, REVOLUTE]),
                          F.normalize(raw[:, :, AXIS], dim=2, eps=1e-6),
                          cfg.max_pivot_offset * torch.tanh(raw[:, :, PIVOT]),
                          cfg.max_centre_offset * torch.tanh(raw[:, :, CENTRE])], dim=2)


class PartRM(ArticulationReadout, nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.unet = AsymmetricUNet(cfg, IN_CHANNELS, RAW_CHANNELS)
        self.drag_embedding = MultiScaleDragEmbedding(cfg)
        self.articulation = ArticulationHead(cfg.up_channels[-1]) if cfg.articulation_head else None
        cams = canonical_rig(cfg.output_size, cfg.input_rig)
        origins, dirs = zip(*(c.rays() for c in cams))
        self.register_buffer("ray_o", torch.from_numpy(np.stack(origins)).float().permute(0, 3, 1, 2),
                             persistent=False)
        self.register_buffer("ray_d", torch.from_numpy(np.stack(dirs)).float().permute(0, 3, 1, 2),
                             persistent=False)

    def forward(self, images: torch.Tensor, plucker: torch.Tensor, drags: torch.Tensor | None = None,
                drag_mask: torch.Tensor | None = None) -> torch.Tensor:
        """images (B, V, 3, H, W) in [0, 1], plucker (B, V, 6, H, W), drags (B, V, D, 4), mask (B, V, D)
        -> splatter images (B, V, 14, h, w). ``drags=None`` reconstructs the current state."""
        B, V = images.shape[:2]
        x = self._unet_input(images, plucker)
        modulate = None
        if drags is not None:
            mask = drag_mask if drag_mask is not None else torch.ones(drags.shape[:-1], dtype=torch.bool,
                                                                      device=drags.device)
            modulate = self.drag_embedding.modulator(drags, mask)
        raw = self.unet(x, modulate).unflatten(0, (B, V))
        return self.activate(raw)

    @staticmethod
    def _unet_input(images: torch.Tensor, plucker: torch.Tensor) -> torch.Tensor:
        """Views in [-1, 1] beside their Plücker rays, one batch entry per view: (B·V, 9, H, W)."""
        return torch.cat([images * 2 - 1, plucker], dim=2).flatten(0, 1)

    def reconstruct_with_features(self, images: torch.Tensor,
                                  plucker: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The current state's splatter images (B, V, 14, h, w) and the UNet features the articulation head
        reads (B, V, up_channels[-1], h, w). Stage 3 computes these once per state: the backbone is frozen."""
        B = images.shape[0]
        features = self.unet.features(self._unet_input(images, plucker))
        splatter = self.activate(self.unet.head(features).unflatten(0, (B, -1)))
        return splatter, features.unflatten(0, (B, -1))

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        depth = cfg.rig_radius + cfg.depth_range * torch.tanh(raw[:, :, 0:1])
        offset = cfg.max_offset * torch.tanh(raw[:, :, 1:4])
        xyz = self.ray_o + depth * self.ray_d + offset
        opacity = torch.sigmoid(raw[:, :, 4:5])
        scale = F.softplus(raw[:, :, 5:8]) * cfg.resolved_scale_unit + cfg.min_scale
        rot = raw[:, :, 8:12] + torch.tensor([1.0, 0, 0, 0], device=raw.device, dtype=raw.dtype)[:, None, None]
        rot = F.normalize(rot, dim=2)
        rgb = torch.sigmoid(raw[:, :, 12:15])
        out = torch.cat([xyz, opacity, scale, rot, rgb], dim=2)
        assert out.shape[2] == SPLATTER_CHANNELS
        return out
