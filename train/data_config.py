"""What a PartDrag-4D-style dataset contains, and which objects go to which split.

Splits follow the paper: one category never seen in training (``test``) and held-out
instances of the training categories (``val``). The object list is a pure function of the
config, so every shard, on any machine, agrees on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from partrm_gym.assets import CATEGORIES, HELD_OUT_CATEGORY, canonical_category
from partrm_gym.cameras import RigConfig
from partrm_gym.drags import DEFAULT_MAX_DRAGS
from partrm_gym.gt_splatter import SplatterFit

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")
# Seed blocks keep instances of different splits disjoint however many objects a config asks for.
SPLIT_SEED_BASE = {"train": 0, "val": 1_000_000, "test": 2_000_000}


@dataclass(frozen=True)
class DataConfig:
    name: str = "default"
    seed: int = 0
    categories: tuple[str, ...] = tuple(c for c in CATEGORIES if c != HELD_OUT_CATEGORY)
    test_category: str = HELD_OUT_CATEGORY
    train_objects_per_category: int = 24
    val_objects_per_category: int = 2
    test_objects: int = 12
    max_parts_per_object: int = 2  # parts beyond this are left at random states, not animated
    states_per_part: int = 6  # evenly spaced between the joint limits, as PartDrag-4D
    max_drags: int = DEFAULT_MAX_DRAGS
    input_resolution: int = 128  # the model's 4 input views
    splatter_resolution: int = 64  # GT splatter images (= the model's output resolution)
    view_resolution: int = 128  # the 12 dataset views used as targets and for evaluation
    rig: RigConfig = field(default_factory=RigConfig)
    splatter_fit: SplatterFit = field(default_factory=SplatterFit)  # GT splatter fitted to the input views

    def __post_init__(self) -> None:
        for c in (*self.categories, self.test_category):
            canonical_category(c)
        if self.test_category in self.categories:
            raise ValueError(f"test_category {self.test_category!r} must not be a training category")
        if self.states_per_part < 2:
            raise ValueError("states_per_part must be at least 2 (a pair needs two states)")
        for name in ("input_resolution", "splatter_resolution", "view_resolution", "max_drags",
                     "max_parts_per_object"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


@dataclass(frozen=True)
class ObjectSpec:
    category: str
    seed: int
    split: Split

    @property
    def object_id(self) -> str:
        return f"{self.category}_{self.seed:07d}"


def plan_objects(cfg: DataConfig) -> list[ObjectSpec]:
    """Every object of the dataset, in a fixed order (shards take every N-th)."""
    specs = []
    for split, cats, count in (("train", cfg.categories, cfg.train_objects_per_category),
                               ("val", cfg.categories, cfg.val_objects_per_category),
                               ("test", (cfg.test_category,), cfg.test_objects)):
        for cat in cats:
            base = SPLIT_SEED_BASE[split] + cfg.seed * 10_000
            specs += [ObjectSpec(canonical_category(cat), base + i, split) for i in range(count)]  # type: ignore[arg-type]
    return specs


def shard_objects(specs: list[ObjectSpec], shard: int, num_shards: int) -> list[ObjectSpec]:
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} of {num_shards} is not valid (need 0 <= shard < num_shards)")
    return specs[shard::num_shards]
