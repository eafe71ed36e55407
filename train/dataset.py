"""Reading a generated dataset as training pairs (state i, drags) -> state j.

One item is one ordered pair of states of one part. States are shared by many pairs, so
decoded states are kept in a per-process LRU cache (``cache_states``), which makes PNG
decoding a one-off cost per state rather than per pair: loading stays off the critical
path of CPU training. Cameras and Plücker maps are computed once per dataset.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from partrm_gym.cameras import canonical_rig, dataset_rig, plucker_rays, stack_cameras
from partrm_gym.config import from_dict
from partrm_gym.gaussians import XYZ
from partrm_gym.io import path_kind
from partrm_gym.train.data_config import SPLITS, DataConfig
from partrm_gym.train.data_format import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    NUM_INPUT_VIEWS,
    OBJECT_FILE,
    PAIR_ARRAY_KEYS,
    PAIRS_FILE,
    STATE_ARRAY_KEYS,
    STATE_ARRAYS,
    DatasetError,
    DatasetShapes,
    check_arrays,
    check_object_meta,
    check_pairs,
    input_png,
    object_dir,
    read_json,
    read_npz,
    read_png,
    state_dir,
    view_png,
)
from partrm_gym.train.losses import articulation_targets


@dataclass(frozen=True)
class PairIndex:
    object_id: str
    pair: int
    src: str  # state names
    dst: str


def load_manifest(root: Path) -> tuple[dict, DataConfig]:
    if not Path(root).is_dir():
        raise DatasetError(f"{root} is {path_kind(root)}, not a dataset folder; give the --out folder of "
                           "`partrm-gym datagen`")
    manifest = read_json(root / MANIFEST_FILE)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise DatasetError(f"{root}: dataset format version {version}, this package reads version {FORMAT_VERSION} "
                           f"(see docs/dataset.md); generate it again with `partrm-gym datagen CONFIG --out {root}` "
                           "into an empty folder")
    return manifest, from_dict(DataConfig, manifest["config"])


class PartDragDataset(Dataset):
    """Items (dict of tensors):

    ``input_rgb`` (4, 3, H, W) in [0, 1] and ``plucker`` (4, 6, H, W) of the source state;
    ``input_rgb_dst`` (4, 3, H, W) the destination state's input views (what stage 1's teacher reconstructs);
    ``drags`` (4, max_drags, 4) in [0, 1] with ``drag_mask`` (4, max_drags);
    ``splatter_src`` / ``splatter_dst`` (4, 14, h, w) GT splatter images of both states;
    ``target_rgb`` (12, 3, Hd, Wd) and ``target_mask`` (12, 1, Hd, Wd) of the destination
    state with ``viewmats`` (12, 4, 4) and ``Ks`` (12, 3, 3) of the dataset rig; ``source_rgb`` /
    ``source_mask`` the same views of the source state (stage 0 and the static baseline);
    ``part_src`` (4, h, w) the source state's part per splatter pixel (-1 background, 0 static, k + 1
    joint k) and ``articulation_src`` (4, 11, h, w) the articulation head's targets in its own channel layout
    (:func:`partrm_gym.train.losses.articulation_targets`);
    ``depth_dst`` (12, Hd, Wd) metric depth of the destination state (``inf`` off the object).
    """

    def __init__(self, root: str | Path, split: str = "train", cache_states: int = 512,
                 categories: list[str] | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        manifest, self.config = load_manifest(self.root)
        if manifest.get("missing_shards"):
            raise DatasetError(f"{self.root}: shards {manifest['missing_shards']} have not been generated yet")
        cfg = self.config
        self.input_cameras = canonical_rig(cfg.input_resolution, cfg.rig)
        self.shapes = DatasetShapes.of(cfg)  # what every file must hold; checked as it is read
        self.splatter_shape = self.shapes.splatter
        self.view_cameras = dataset_rig(cfg.view_resolution, cfg.rig)
        self.plucker = torch.stack([plucker_rays(c) for c in self.input_cameras])
        self.viewmats, self.Ks = stack_cameras(self.view_cameras)
        self.objects = {o["object_id"]: o for o in manifest["objects"] if o["split"] == split
                        and (categories is None or o["category"] in categories)}
        self.items: list[PairIndex] = []
        self._pairs: dict[str, dict[str, np.ndarray]] = {}
        self._joints: dict[str, list[dict]] = {}
        for oid in sorted(self.objects):
            meta_path, pairs_path = (object_dir(self.root, oid) / f for f in (OBJECT_FILE, PAIRS_FILE))
            meta = read_json(meta_path)
            names = check_object_meta(meta_path, meta)
            pairs = read_npz(pairs_path, PAIR_ARRAY_KEYS)
            check_pairs(pairs_path, pairs, self.shapes, len(names), meta["num_pairs"])
            self._pairs[oid] = pairs
            self._joints[oid] = meta["joints"]
            self.items += [PairIndex(oid, k, names[s], names[d])
                           for k, (s, d) in enumerate(zip(pairs["src"].tolist(), pairs["dst"].tolist()))]
        self._cache: OrderedDict[tuple[str, str], dict[str, torch.Tensor]] = OrderedDict()
        self._cache_size = cache_states

    def __len__(self) -> int:
        return len(self.items)

    def category(self, index: int) -> str:
        return self.objects[self.items[index].object_id]["category"]

    def state(self, object_id: str, name: str) -> dict[str, torch.Tensor]:
        """Decoded tensors of one state (cached)."""
        key = (object_id, name)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        sdir = state_dir(self.root, object_id, name)
        joints = self._joints[object_id]
        arrays = read_npz(sdir / STATE_ARRAYS, STATE_ARRAY_KEYS)
        check_arrays(sdir / STATE_ARRAYS, arrays, self.shapes.state_arrays(len(joints)))
        inputs = np.stack([read_png(sdir / input_png(v), self.shapes.input_resolution)
                           for v in range(NUM_INPUT_VIEWS)])
        views = np.stack([read_png(sdir / view_png(v), self.shapes.view_resolution)
                          for v in range(self.shapes.num_views)])
        out = {
            "input_rgb": torch.from_numpy(inputs).permute(0, 3, 1, 2).float() / 255.0,
            "splatter": torch.from_numpy(arrays["splatter"]),
            "target_rgb": torch.from_numpy(views).permute(0, 3, 1, 2).float() / 255.0,
            "target_mask": torch.from_numpy(arrays["seg"] >= 0).unsqueeze(1).float(),
            "depth": torch.from_numpy(arrays["depth"].astype(np.float32)),
            "part": torch.from_numpy(arrays["part"].astype(np.int64)),
            "joint_revolute": torch.tensor([j["type"] == "revolute" for j in joints], dtype=torch.bool),
            "joint_axis": torch.from_numpy(arrays["joint_axis"]),
            "joint_pivot": torch.from_numpy(arrays["joint_pivot"]),
        }
        out["articulation"] = articulation_targets(out["splatter"][:, XYZ], out["part"], out["joint_revolute"],
                                                   out["joint_axis"], out["joint_pivot"])
        self._cache[key] = out
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.items[index]
        src, dst = self.state(item.object_id, item.src), self.state(item.object_id, item.dst)
        pairs = self._pairs[item.object_id]
        return {
            "input_rgb": src["input_rgb"],
            "input_rgb_dst": dst["input_rgb"],
            "plucker": self.plucker,
            "drags": torch.from_numpy(pairs["drags"][item.pair]),
            "drag_mask": torch.from_numpy(pairs["mask"][item.pair]),
            "splatter_src": src["splatter"],
            "part_src": src["part"],
            "articulation_src": src["articulation"],
            "splatter_dst": dst["splatter"],
            "target_rgb": dst["target_rgb"],
            "target_mask": dst["target_mask"],
            "source_rgb": src["target_rgb"],
            "source_mask": src["target_mask"],
            "depth_dst": dst["depth"],
            "viewmats": self.viewmats,
            "Ks": self.Ks,
        }


class MixedPartDragDataset(ConcatDataset):
    """The training pairs of several datasets as one (``TrainConfig.extra_data``): for example procedural objects
    beside real PartNet-Mobility ones, each generated (and resumable) on its own. Items, states and cameras are
    those of :class:`PartDragDataset` (``ConcatDataset`` routes an index to its dataset); the datasets must share
    their rig and resolutions (so one Plücker map and one set of view cameras fit every item) and no object id."""

    def __init__(self, datasets: list[PartDragDataset]) -> None:
        if not datasets:
            raise ValueError("MixedPartDragDataset needs at least one dataset")
        first = datasets[0]
        owner: dict[str, PartDragDataset] = {}
        for d in datasets:
            if d.shapes != first.shapes or not all(torch.equal(a, b) for a, b in (
                    (d.plucker, first.plucker), (d.viewmats, first.viewmats), (d.Ks, first.Ks))):
                raise DatasetError(f"{d.root}: its rig or resolutions differ from {first.root}'s; datasets trained "
                                   "together must be generated with the same `rig` and resolutions")
            if not len(d):
                raise DatasetError(f"{d.root}: no pairs in this split; drop it from the datasets trained together")
            for oid in d.objects:
                if oid in owner:
                    raise DatasetError(f"object {oid!r} is in both {owner[oid].root} and {d.root}; datasets trained "
                                       "together must not share objects")
                owner[oid] = d
        super().__init__(datasets)
        self._owner = owner
        self.config, self.input_cameras, self.shapes = first.config, first.input_cameras, first.shapes
        self.plucker, self.viewmats, self.Ks = first.plucker, first.viewmats, first.Ks
        self.objects = {oid: d.objects[oid] for oid, d in owner.items()}
        self.items = [item for d in datasets for item in d.items]

    def category(self, index: int) -> str:
        return self.objects[self.items[index].object_id]["category"]

    def state(self, object_id: str, name: str) -> dict[str, torch.Tensor]:
        return self._owner[object_id].state(object_id, name)


def training_pairs(roots: list[str | Path], split: str = "train") -> PartDragDataset | MixedPartDragDataset:
    """The ``split`` pairs of one dataset folder, or of several trained together."""
    datasets = [PartDragDataset(root, split) for root in roots]
    return datasets[0] if len(datasets) == 1 else MixedPartDragDataset(datasets)
