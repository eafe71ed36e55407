"""Articulated objects: procedural PartDrag-4D-style categories and real PartNet-Mobility folders."""

from partrm_gym.assets.procedural import (
    CATEGORIES,
    HELD_OUT_CATEGORY,
    TRAIN_CATEGORIES,
    ProceduralObject,
    canonical_category,
    generate,
)

__all__ = ["CATEGORIES", "HELD_OUT_CATEGORY", "TRAIN_CATEGORIES", "ProceduralObject", "canonical_category",
           "generate"]
