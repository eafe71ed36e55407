"""A user's PartNet-Mobility folder: which objects it holds, their task categories and their split.

Users point the project at their own copy of PartNet-Mobility (as with ManiSkill or SAPIEN); nothing of
it is shipped. An object is a folder with a ``mobility.urdf`` one or two levels under the root (the
dataset's flat ``<id>/`` layout, or ``<Category>/<id>/``); its PartNet category is ``model_cat`` of its
``meta.json`` (else the parent folder's name), its id the folder's name (PartNet-Mobility's download id;
``meta.json``'s ``anno_id`` differs from it for some objects).

**Split.** Object ids listed in :data:`TEST_OBJECT_IDS` are the test split and every Dishwasher is test too,
so the category held out of training stays held out; ids in :data:`TRAIN_OBJECT_IDS` are train; any other
object is test when the first byte of the
SHA-256 of its id is below 52 (about 20%), train otherwise: a stable rule that needs no list for objects
this project has never seen.

**Task categories.** Each env category maps to PartNet categories and to the ``semantics.txt`` part names a
task of that category moves (:data:`REAL_CATEGORIES`); knobs and buttons are never task parts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from partrm_gym.assets.partnet import TASK_SEMANTICS, AssetError, read_semantics
from partrm_gym.errors import UsageError
from partrm_gym.io import path_kind

URDF_NAME = "mobility.urdf"
HELD_OUT_PARTNET_CATEGORY = "Dishwasher"  # every real dishwasher is in the test split
# The split of the 46 PartNet-Mobility objects this project was developed with. Test: the 4 dishwashers and, of
# the others, about a quarter, at least one per category (drawers and doors of furniture both); the rest train.
TEST_OBJECT_IDS = frozenset({"11622", "11700", "11826", "12553", "100426", "7263", "101808", "11299", "12249",
                             "45746", "46166", "46889", "30238"})
TRAIN_OBJECT_IDS = frozenset({"100129", "100162", "100189", "100194", "100676", "101773", "102044", "10797",
                              "11178", "11709", "11846", "12248", "12252", "26608", "26657", "35059", "41004",
                              "45166", "45261", "45526", "45594", "45633", "45963", "46108", "46197", "46427",
                              "46456", "46744", "49182", "7119", "7167", "7236", "7292"})
HASH_TEST_BELOW = 52  # of 256: the share of unlisted objects in the test split (~20%)

DOORS = ("door", "rotation_door")
LIDS = ("rotation_lid", "lid")
# env category -> (PartNet model_cat values, semantics.txt part names a task moves)
REAL_CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "storage_drawer": (("StorageFurniture", "Table"), ("drawer",)),
    "storage_door": (("StorageFurniture", "Table"), DOORS),
    "microwave": (("Microwave",), DOORS),
    "refrigerator": (("Refrigerator",), DOORS),
    "oven": (("Oven",), DOORS),
    "dishwasher": (("Dishwasher",), DOORS),
    "trashcan": (("Box", "TrashCan"), LIDS),
    "laptop": (("Laptop",), ("screen", "rotation_screen") + LIDS),
}


@dataclass(frozen=True)
class PartNetEntry:
    """One object folder under a PartNet-Mobility root."""

    folder: Path
    object_id: str
    partnet_category: str  # meta.json model_cat
    task_parts: tuple[str, ...]  # semantics.txt names of its task parts (doors, drawers, lids, screens)

    @property
    def split(self) -> str:
        return partnet_split(self.object_id, self.partnet_category)

    @property
    def seed(self) -> int:
        """The number that stands for the object where a seed is reported (``info["object_seed"]``, datasets):
        its id when the id is a number (PartNet-Mobility's are), else a stable hash of it."""
        if self.object_id.isdigit():
            return int(self.object_id)
        return int.from_bytes(hashlib.sha256(self.object_id.encode()).digest()[:6], "big")

    def parts_for(self, category: str) -> tuple[str, ...]:
        """Its task parts that a task of env ``category`` ("any": every category) moves."""
        if category == "any":
            return self.task_parts
        cats, names = REAL_CATEGORIES.get(category, ((), ()))
        return tuple(n for n in self.task_parts if n in names) if self.partnet_category in cats else ()


def partnet_split(object_id: str, partnet_category: str) -> str:
    """"test" or "train" (see the module docstring)."""
    if object_id in TEST_OBJECT_IDS or partnet_category == HELD_OUT_PARTNET_CATEGORY:
        return "test"
    if object_id in TRAIN_OBJECT_IDS:
        return "train"
    return "test" if hashlib.sha256(object_id.encode()).digest()[0] < HASH_TEST_BELOW else "train"


def real_category(entry: PartNetEntry, part: str) -> str:
    """The env category of ``entry``'s task part named ``part`` (e.g. a StorageFurniture drawer: storage_drawer);
    the PartNet category in lower case where no env category maps it."""
    for category, (cats, names) in REAL_CATEGORIES.items():
        if entry.partnet_category in cats and part in names:
            return category
    return entry.partnet_category.lower()


def _entry(folder: Path) -> PartNetEntry:
    category, object_id = folder.parent.name, folder.name
    meta = folder / "meta.json"
    if meta.is_file():
        try:
            data = json.loads(meta.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = {}  # loading the object names the problem; here the folder is only listed
        if isinstance(data, dict):
            category = str(data.get("model_cat", category))
    try:
        semantics = read_semantics(folder / "semantics.txt")
    except (AssetError, OSError, UnicodeDecodeError):  # loading the object names the problem
        semantics = {}
    parts = tuple(sorted({name for _, name in semantics.values() if name in TASK_SEMANTICS}))
    return PartNetEntry(folder, object_id, category, parts)


@lru_cache(maxsize=8)
def _scan(root: str) -> tuple[PartNetEntry, ...]:
    base = Path(root)
    folders = sorted({u.parent for pattern in (f"*/{URDF_NAME}", f"*/*/{URDF_NAME}") for u in base.glob(pattern)})
    return tuple(_entry(f) for f in folders)


def find_partnet_objects(root: str | Path) -> list[PartNetEntry]:
    """Every object folder under ``root`` (``mobility.urdf`` at depth 1 or 2), sorted by path; ``root`` may also be
    one object's folder.

    Raises a one-line :class:`UsageError` when ``root`` is not a folder or holds no object."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise UsageError(f"partnet_root {str(root)!r} is {path_kind(path)}, not a folder; give the folder that "
                         "holds your PartNet-Mobility objects (<id>/mobility.urdf or <Category>/<id>/mobility.urdf)")
    if (path / URDF_NAME).is_file():  # the folder of one object: that object
        return [_entry(path)]
    entries = list(_scan(str(path.resolve())))
    if not entries:
        raise UsageError(f"partnet_root {str(root)!r} holds no PartNet-Mobility object (no {URDF_NAME} one or two "
                         "levels down); give the folder that holds the object folders")
    return entries


def task_objects(root: str | Path, category: str, split: str) -> list[PartNetEntry]:
    """The objects under ``root`` of ``split`` with at least one task part of env ``category`` ("any": all). When
    ``root`` is one object's folder, that object whatever its split (the user chose it)."""
    single = (Path(root).expanduser() / URDF_NAME).is_file()
    objects = [e for e in find_partnet_objects(root) if (single or e.split == split) and e.parts_for(category)]
    if not objects:
        what = "a task part" if category == "any" else f"a {category} task part"
        raise UsageError(f"no PartNet-Mobility object under {str(root)!r} has {what} in the {split} split; choose "
                         f"another category or split (categories with real objects: {sorted(REAL_CATEGORIES)})")
    return objects


__all__ = ["REAL_CATEGORIES", "TEST_OBJECT_IDS", "TRAIN_OBJECT_IDS", "PartNetEntry", "find_partnet_objects",
           "partnet_split", "real_category", "task_objects"]
