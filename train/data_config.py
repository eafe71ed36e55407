"""What a PartDrag-4D-style dataset contains, and which objects go to which split.

Splits follow the paper: one category never seen in training (``test``) and held-out
instances of the training categories (``val``). The object list is a pure function of the
config, so every shard, on any machine, agrees on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from partrm_gym.assets import CATEGORIES, HELD_OUT_CATEGORY, canonical_category
from partrm_gym.cameras import RigConfig
from partrm_gym.config import ConfigError, load_config, resolve_config_path
from partrm_gym.drags import DEFAULT_MAX_DRAGS
from partrm_gym.errors import UsageError
from partrm_gym.gt_splatter import SplatterFit

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")
# Seed blocks keep instances of different splits disjoint however many objects a config asks for.
SPLIT_SEED_BASE = {"train": 0, "val": 1_000_000, "test": 2_000_000}
# Each config seed owns a block of instance seeds per split, so datasets of different seeds share no instance.
SEED_BLOCK = 10_000
MAX_OBJECTS = SEED_BLOCK  # per category and split (and test_objects): the objects of one seed block


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
    # Real objects: every PartNet-Mobility object under this folder with a door, drawer or lid joins the dataset
    # in its own split (train or test, docs/real_data.md); `partrm-gym datagen --partnet DIR` sets it.
    partnet_root: str | None = None
    procedural: bool = True  # false: real objects alone (needs partnet_root)

    def __post_init__(self) -> None:
        def out_of_range(name: str, allowed: str, why: str = "") -> ValueError:
            return ValueError(f"{name} = {getattr(self, name)!r} is out of range: it must be {allowed}{why}")

        if not self.categories:
            raise ValueError("categories is empty: list at least one training category, e.g. [laptop]")
        train = [canonical_category(c) for c in self.categories]
        test = canonical_category(self.test_category)
        repeated = sorted({c for c in train if train.count(c) > 1})
        if repeated:
            raise ValueError(f"categories names {repeated} more than once (aliases count as their category)")
        if test in train:
            raise ValueError(f"test_category {self.test_category!r} must not be a training category")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise out_of_range("seed", "an integer ≥ 0")
        for name in ("train_objects_per_category", "val_objects_per_category", "test_objects"):
            if not 0 <= getattr(self, name) <= MAX_OBJECTS:
                raise out_of_range(name, f"between 0 and {MAX_OBJECTS}")
        if self.num_objects == 0 and self.procedural:
            raise ValueError("train_objects_per_category, val_objects_per_category and test_objects are all 0: "
                             "the config would generate no objects; set at least one of them ≥ 1")
        if self.states_per_part < 2:
            raise out_of_range("states_per_part", "≥ 2", " (at least 2 states make a pair)")
        for name in ("input_resolution", "splatter_resolution", "view_resolution", "max_drags",
                     "max_parts_per_object"):
            if getattr(self, name) <= 0:
                raise out_of_range(name, "≥ 1")

    @property
    def num_objects(self) -> int:
        """How many procedural objects the config plans (all splits; real ones depend on the folder)."""
        if not self.procedural:
            return 0
        return ((self.train_objects_per_category + self.val_objects_per_category) * len(self.categories)
                + self.test_objects)


def load_data_config(path_or_name: str | Path) -> DataConfig:
    """A :class:`DataConfig` from a YAML file or a shipped name (``data/tiny``). Unlike
    :func:`partrm_gym.config.load_config`, an empty file is an error, not the defaults."""
    path = resolve_config_path(path_or_name)
    try:
        empty = yaml.safe_load(path.read_text()) is None
    except yaml.YAMLError:
        empty = False  # load_config names the YAML error
    if empty:
        raise ConfigError(f"config {path} is empty; copy a shipped one, e.g. configs/data/tiny.yaml, and edit it")
    try:
        return load_config(DataConfig, path)
    except ConfigError:
        raise
    except ValueError as e:  # out of range in DataConfig.__post_init__
        raise ConfigError(f"{path}: {e}") from None


@dataclass(frozen=True)
class ObjectSpec:
    category: str
    seed: int
    split: Split
    partnet_id: str = ""  # a real PartNet-Mobility object (its folder's name under the config's partnet_root)

    @property
    def object_id(self) -> str:
        return f"partnet_{self.partnet_id}" if self.partnet_id else f"{self.category}_{self.seed:07d}"


def plan_objects(cfg: DataConfig) -> list[ObjectSpec]:
    """Every object of the dataset, in a fixed order (shards take every N-th): the procedural ones, then the real
    ones under ``partnet_root`` sorted by folder."""
    if not cfg.procedural and cfg.partnet_root is None:
        raise UsageError("the config has procedural: false and no partnet_root: it would generate no objects; "
                         "give the PartNet-Mobility folder with --partnet DIR (or partnet_root in the config)")
    specs = []
    for split, cats, count in (("train", cfg.categories, cfg.train_objects_per_category),
                               ("val", cfg.categories, cfg.val_objects_per_category),
                               ("test", (cfg.test_category,), cfg.test_objects)):
        for cat in cats if cfg.procedural else ():
            base = SPLIT_SEED_BASE[split] + cfg.seed * 10_000
            specs += [ObjectSpec(canonical_category(cat), base + i, split) for i in range(count)]  # type: ignore[arg-type]
    if cfg.partnet_root is not None:
        from partrm_gym.assets.partnet_root import find_partnet_objects, real_category

        for entry in find_partnet_objects(cfg.partnet_root):
            if entry.task_parts:
                specs.append(ObjectSpec(real_category(entry, entry.task_parts[0]), entry.seed, entry.split,  # type: ignore[arg-type]
                                        partnet_id=entry.object_id))
    return specs


def check_shard(shard: int, num_shards: int, num_objects: int) -> None:
    """UsageError naming the flag unless 0 <= shard < num_shards <= num_objects."""
    if not 1 <= num_shards <= num_objects:
        raise UsageError(f"--num-shards {num_shards} is out of range: it must be between 1 and {num_objects} "
                         "(the number of objects the config plans; a shard with no objects is of no use)")
    if not 0 <= shard < num_shards:
        raise UsageError(f"--shard {shard} is out of range: with --num-shards {num_shards} it must be between 0 "
                         f"and {num_shards - 1}")


def shard_objects(specs: list[ObjectSpec], shard: int, num_shards: int) -> list[ObjectSpec]:
    """Objects ``shard, shard + num_shards, ...`` of the planned list; UsageError for an invalid shard."""
    check_shard(shard, num_shards, len(specs))
    return specs[shard::num_shards]
