import xml.etree.ElementTree as ET

import pytest

from partrm_gym.assets import CATEGORIES, HELD_OUT_CATEGORY, TRAIN_CATEGORIES, canonical_category, generate


def test_at_least_eight_categories_one_held_out():
    assert len(CATEGORIES) >= 8
    assert HELD_OUT_CATEGORY in CATEGORIES and HELD_OUT_CATEGORY not in TRAIN_CATEGORIES
    assert len(TRAIN_CATEGORIES) == len(CATEGORIES) - 1


@pytest.mark.parametrize("category", CATEGORIES)
def test_same_seed_gives_identical_urdf_and_seeds_differ(category):
    a, b = generate(category, 3).urdf(), generate(category, 3).urdf()
    assert a == b and a.encode() == b.encode()
    assert generate(category, 4).urdf() != a


@pytest.mark.parametrize("category", CATEGORIES)
def test_urdf_is_valid_with_limited_movable_joints(category):
    obj = generate(category, 11)
    root = ET.fromstring(obj.urdf())
    movable = [j for j in root.iter("joint") if j.get("type") in ("revolute", "prismatic")]
    assert movable and len(movable) == len(obj.parts)
    for j in movable:
        lim = j.find("limit")
        assert float(lim.get("upper")) > float(lim.get("lower"))
    assert {p.semantic for p in obj.parts} <= {"drawer", "door", "lid"}


def test_randomisation_varies_part_counts_and_joint_types():
    drawer_counts = {len(generate("storage_drawer", s).parts) for s in range(30)}
    assert len(drawer_counts) >= 3
    types = {ET.fromstring(generate(c, 0).urdf()).find("joint").get("type") for c in CATEGORIES}
    assert types == {"revolute", "prismatic"}


def test_aliases_and_bad_names():
    assert canonical_category("drawer") == "storage_drawer"
    with pytest.raises(ValueError, match="unknown category"):
        generate("spaceship", 0)
    with pytest.raises(ValueError, match="non-negative"):
        generate("laptop", -1)


def test_write_creates_urdf_and_metadata(tmp_path):
    obj = generate("microwave", 5)
    path = obj.write(tmp_path)
    assert path.read_text() == obj.urdf()
    assert (tmp_path / f"{obj.name}.json").is_file()
