"""PartNet-Mobility folders (``mobility.urdf``, ``meta.json``, ``semantics.txt``, ``textured_objs/``).

The folder is checked before PyBullet sees it, because PyBullet's own errors on a bad
URDF are a bare "Cannot load URDF file". Every problem found names the file, the XML
element and what is wrong, so a user can fix the asset rather than guess.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from partrm_gym.assets.procedural import Part

MOVABLE_TYPES = ("revolute", "prismatic", "continuous")


class AssetError(ValueError):
    """An asset file is missing or malformed; the message names file, element and problem."""


@dataclass
class PartNetObject:
    folder: Path
    urdf_path: Path
    category: str
    model_id: str
    parts: list[Part] = field(default_factory=list)


def _float(value: str | None, file: Path, element: str, attribute: str) -> float:
    if value is None:
        raise AssetError(f"{file}: {element} has no '{attribute}' attribute")
    try:
        x = float(value)
    except ValueError:
        raise AssetError(f"{file}: {element} {attribute}={value!r} is not a number") from None
    if not math.isfinite(x):
        raise AssetError(f"{file}: {element} {attribute}={value!r} is not finite")
    return x


def _read_semantics(path: Path) -> dict[str, tuple[str, str]]:
    """``link_name joint_kind semantic`` per line -> {link: (joint_kind, semantic)}."""
    out: dict[str, tuple[str, str]] = {}
    if not path.is_file():
        return out
    for n, line in enumerate(path.read_text().splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if len(words) != 3:
            raise AssetError(f"{path}:{n}: expected 'link_name joint_type semantic', got {line!r}")
        out[words[0]] = (words[1], words[2])
    return out


def validate_urdf(urdf_path: Path, mesh_root: Path | None = None) -> list[tuple[str, str, str]]:
    """Check a URDF's joints and mesh references; returns (joint, child link, type) of movable joints."""
    mesh_root = mesh_root or urdf_path.parent
    try:
        root = ET.parse(urdf_path).getroot()
    except ET.ParseError as e:
        raise AssetError(f"{urdf_path}: not well-formed XML ({e})") from None
    if root.tag != "robot":
        raise AssetError(f"{urdf_path}: root element is <{root.tag}>, expected <robot>")
    links = {link.get("name") for link in root.iter("link")}
    for link in root.iter("link"):
        for mesh in link.iter("mesh"):
            filename = mesh.get("filename")
            where = f"<link name='{link.get('name')}'> <mesh>"
            if not filename:
                raise AssetError(f"{urdf_path}: {where} has no filename")
            if not (mesh_root / filename.removeprefix("package://")).is_file():
                raise AssetError(f"{urdf_path}: {where} refers to missing file {filename!r} "
                                 f"(looked in {mesh_root})")
    movable = []
    for joint in root.iter("joint"):
        name, jtype = joint.get("name"), joint.get("type")
        where = f"<joint name='{name}'>"
        child = joint.find("child")
        child_link = child.get("link") if child is not None else None
        if child_link not in links:
            raise AssetError(f"{urdf_path}: {where} has child link {child_link!r}, which is not defined")
        for tag in ("origin", "axis"):
            el = joint.find(tag)
            if el is not None:
                for attr in ("xyz", "rpy"):
                    if el.get(attr) is not None:
                        for v in el.get(attr, "").split():
                            _float(v, urdf_path, f"{where} <{tag}>", attr)
        if jtype not in MOVABLE_TYPES:
            continue
        if jtype != "continuous":
            limit = joint.find("limit")
            if limit is None:
                raise AssetError(f"{urdf_path}: {where} of type {jtype} has no <limit> element")
            lower = _float(limit.get("lower"), urdf_path, f"{where} <limit>", "lower")
            upper = _float(limit.get("upper"), urdf_path, f"{where} <limit>", "upper")
            if upper < lower:
                raise AssetError(f"{urdf_path}: {where} <limit> has upper {upper} < lower {lower}")
        movable.append((name or "", child_link or "", jtype))
    if not movable:
        raise AssetError(f"{urdf_path}: no movable joint (revolute, prismatic or continuous); "
                         "nothing for a drag to move")
    return movable


def load_partnet_folder(folder: str | Path) -> PartNetObject:
    """Validate a PartNet-Mobility folder and describe its movable parts."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AssetError(f"{folder}: not a folder (expected a PartNet-Mobility object folder)")
    urdf = folder / "mobility.urdf"
    if not urdf.is_file():
        raise AssetError(f"{folder}: no mobility.urdf (is this a PartNet-Mobility object folder?)")
    category, model_id = "", folder.name
    meta = folder / "meta.json"
    if meta.is_file():
        try:
            data = json.loads(meta.read_text())
        except json.JSONDecodeError as e:
            raise AssetError(f"{meta}: not valid JSON ({e})") from None
        category = str(data.get("model_cat", ""))
        model_id = str(data.get("anno_id", data.get("model_id", model_id)))
    semantics = _read_semantics(folder / "semantics.txt")
    parts = [Part(joint, link, semantics.get(link, ("", jtype))[1]) for joint, link, jtype in validate_urdf(urdf)]
    return PartNetObject(folder, urdf, category, model_id, parts)
