"""One constructor for both network layouts, so checkpoints and training never branch on the layout."""

from __future__ import annotations

import torch.nn as nn

from partrm_gym.model.config import ModelConfig


def build_network(cfg: ModelConfig) -> nn.Module:
    """The network of ``cfg``: :class:`~partrm_gym.model.partrm.PartRM` (layout ``partrm``) or
    :class:`~partrm_gym.model.lgm_network.LGMPartRM` (layout ``lgm``), with freshly initialised weights."""
    if cfg.layout == "lgm":
        from partrm_gym.model.lgm_network import LGMPartRM

        return LGMPartRM(cfg)
    from partrm_gym.model.partrm import PartRM

    return PartRM(cfg)
