"""PartNet-Mobility folders (``mobility.urdf``, ``meta.json``, ``semantics.txt``, ``textured_objs/``).

The folder is checked before PyBullet sees it, because PyBullet's own errors on a bad
URDF are a bare "Cannot load URDF file" (or, for an empty or corrupt mesh, a warning on
stdout and an object without that geometry). Every problem found names the file, the XML
element and what is wrong, so a user can fix the asset rather than guess.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from partrm_gym.assets.procedural import Part
from partrm_gym.errors import UserError
from partrm_gym.io import path_kind

MOVABLE_TYPES = ("revolute", "prismatic", "continuous")
MOVABLE_SEMANTIC_KINDS = ("hinge", "slider")  # semantics.txt joint kinds of parts that move
# semantics.txt part names a task may move (doors, drawers, lids; a laptop's screen). Knobs, buttons, shelves and
# trays move too but are not what a manipulation task on the object is about.
TASK_SEMANTICS = ("door", "rotation_door", "drawer", "rotation_lid", "lid", "screen", "rotation_screen")
AXIS_EPS = 1e-9  # an axis with every |component| below this has no direction


class AssetError(UserError, ValueError):
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


def read_semantics(path: Path) -> dict[str, tuple[str, str]]:
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


_OBJ_VERTEX = re.compile(rb"^[ \t]*v[ \t]", re.MULTILINE)
_OBJ_FACE = re.compile(rb"^[ \t]*f[ \t]", re.MULTILINE)
_OBJ_CHUNK = 1 << 16


def _has_line(data: bytes, keyword: bytes, pattern: re.Pattern[bytes]) -> bool:
    """Whether ``data`` has a line starting with ``keyword`` and a blank; a plain substring test first (fast)."""
    return (b"\n" + keyword + b" " in data or data.startswith(keyword + b" ")
            or pattern.search(data) is not None)


def _mesh_problem(path: str) -> str | None:
    """Why a mesh file cannot give geometry (None if it can): missing, empty, or an .obj without a vertex or face.

    PyBullet loads an empty or corrupt mesh with a warning and no geometry, so the link silently
    vanishes from renders and collisions. An .obj is scanned as bytes (so no encoding can fail) only
    until one ``v`` and one ``f`` line were seen; other formats (.stl, .dae) are checked to be non-empty.
    """
    try:
        fd = os.open(path, os.O_RDONLY)  # os-level: a buffered open() costs more than the scan on small files
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "missing"  # a folder or device is no mesh file
        if st.st_size == 0:
            return "is empty (0 bytes)"
        if not path.lower().endswith(".obj"):
            return None
        vertex = face = False
        carry = b""
        while True:
            chunk = os.read(fd, _OBJ_CHUNK)
            buf = carry + chunk
            cut = buf.rfind(b"\n") + 1 if chunk else len(buf)  # whole lines; a partial one waits for more
            lines, carry = buf[:cut], buf[cut:]
            vertex = vertex or _has_line(lines, b"v", _OBJ_VERTEX)
            face = face or _has_line(lines, b"f", _OBJ_FACE)
            if (vertex and face) or not chunk:
                break
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    finally:
        os.close(fd)
    if vertex and face:
        return None
    missing = " and ".join(w for w, seen in (("no vertex ('v') line", vertex), ("no face ('f') line", face))
                           if not seen)
    return f"is not a usable OBJ mesh ({missing})"


def _check_meshes(urdf_path: Path, root: ET.Element, mesh_root: Path) -> None:
    checked: set[str] = set()  # each distinct file is read once, however many links share it
    base = str(mesh_root)
    for link in root.iter("link"):
        for mesh in link.iter("mesh"):
            filename = mesh.get("filename")
            if filename in checked:
                continue
            where = f"<link name='{link.get('name')}'> <mesh>"
            if not filename:
                raise AssetError(f"{urdf_path}: {where} has no filename")
            path = os.path.join(base, filename.removeprefix("package://"))  # str, not Path: many files, cheap
            problem = _mesh_problem(path)
            if problem == "missing":
                raise AssetError(f"{urdf_path}: {where} refers to missing file {filename!r} "
                                 f"(looked in {mesh_root}); restore the file or fix the filename")
            if problem is not None:
                raise AssetError(f"{urdf_path}: {where} filename={filename!r}: mesh file {path} {problem}; "
                                 "re-export or replace the mesh")
            checked.add(filename)


def _check_axis(urdf_path: Path, where: str, joint: ET.Element) -> None:
    axis = joint.find("axis")
    if axis is None or axis.get("xyz") is None:
        return  # URDF's default axis is (1, 0, 0)
    words = axis.get("xyz", "").split()
    if len(words) != 3:
        raise AssetError(f"{urdf_path}: {where} <axis> xyz={axis.get('xyz')!r} must be 3 numbers, "
                         f"got {len(words)}")
    xyz = [_float(w, urdf_path, f"{where} <axis>", "xyz") for w in words]
    if all(abs(x) < AXIS_EPS for x in xyz):
        raise AssetError(f"{urdf_path}: {where} <axis> xyz={axis.get('xyz')!r} is the zero vector: the joint "
                         "has no direction to move along; give a unit axis such as '0 0 1'")


def validate_urdf(urdf_path: Path, mesh_root: Path | None = None,
                  semantics: dict[str, tuple[str, str]] | None = None) -> list[tuple[str, str, str]]:
    """Check a URDF's joints and mesh references; returns (joint, child link, type) of movable joints.

    Mesh files must exist and hold geometry (see :func:`_mesh_problem`; each distinct file is read
    once). A movable joint's axis must be 3 numbers, not the zero vector, and a revolute/prismatic
    joint's limits a non-empty range. ``semantics`` ({link: (joint kind, semantic)} from a
    PartNet-Mobility ``semantics.txt``) lets the error for a URDF without a movable joint say which
    parts were meant to move (and why they do not); where only some are missing, that is a warning.
    """
    mesh_root = mesh_root or urdf_path.parent
    try:
        parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))  # comments explain hidden parts
        root = ET.parse(urdf_path, parser).getroot()
    except ET.ParseError as e:
        raise AssetError(f"{urdf_path}: not well-formed XML ({e})") from None
    if root.tag != "robot":
        raise AssetError(f"{urdf_path}: root element is <{root.tag}>, expected <robot>")
    links = {link.get("name") for link in root.iter("link")}
    _check_meshes(urdf_path, root, mesh_root)
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
        _check_axis(urdf_path, where, joint)
        if jtype != "continuous":
            limit = joint.find("limit")
            if limit is None:
                raise AssetError(f"{urdf_path}: {where} of type {jtype} has no <limit> element")
            lower = _float(limit.get("lower"), urdf_path, f"{where} <limit>", "lower")
            upper = _float(limit.get("upper"), urdf_path, f"{where} <limit>", "upper")
            if upper < lower:
                raise AssetError(f"{urdf_path}: {where} <limit> has upper {upper} < lower {lower}")
            if upper == lower:
                raise AssetError(f"{urdf_path}: {where} <limit> has lower == upper == {lower}: a zero range, "
                                 "the joint cannot move; widen the limits or make the joint fixed")
        movable.append((name or "", child_link or "", jtype))
    unmatched = _unmatched_semantics(root, semantics or {}, {link for _, link, _ in movable})
    if not movable:
        if unmatched:
            raise AssetError(f"{urdf_path}: semantics.txt names movable part(s) {sorted(unmatched)} but "
                             f"{urdf_path.name} has no movable joint for them ({'; '.join(unmatched.values())}); "
                             "nothing for a drag to move: fix the URDF or choose another object")
        raise AssetError(f"{urdf_path}: no movable joint (revolute, prismatic or continuous); "
                         "nothing for a drag to move")
    if unmatched:
        warnings.warn(f"{urdf_path}: semantics.txt names movable part(s) {sorted(unmatched)} but {urdf_path.name} "
                      f"has no movable joint for them ({'; '.join(unmatched.values())}); only the other parts "
                      "can be dragged", stacklevel=2)
    return movable


def _unmatched_semantics(root: ET.Element, semantics: dict[str, tuple[str, str]],
                         moving: set[str]) -> dict[str, str]:
    """{link: why it does not move} for each hinge/slider part of semantics.txt without a movable joint."""
    out = {}
    joints = {}
    for joint in root.iter("joint"):
        child = joint.find("child")
        if child is not None:
            joints[child.get("link")] = joint
    links = {link.get("name") for link in root.iter("link")}
    comments = " ".join(el.text or "" for el in root.iter() if el.tag is ET.Comment)
    for link, (kind, semantic) in sorted(semantics.items()):
        if kind not in MOVABLE_SEMANTIC_KINDS or link in moving:
            continue
        if link in joints:
            why = f"its <joint name='{joints[link].get('name')}'> is of type {joints[link].get('type')!r}"
        elif link in links:
            why = "no joint has it as child"
        elif f'name="{link}"' in comments or f"name='{link}'" in comments:
            why = "it is defined only inside an XML comment"
        else:
            why = "no such <link> in the URDF"
        out[f"{link} ({kind} {semantic})"] = f"{link}: {why}"
    return out


def load_partnet_folder(folder: str | Path) -> PartNetObject:
    """Validate a PartNet-Mobility folder and describe its movable parts."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AssetError(f"{folder}: {path_kind(folder)}, not a folder (expected a PartNet-Mobility object folder)")
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
        if not isinstance(data, dict):
            raise AssetError(f"{meta}: expected a JSON object with model_cat, got a {type(data).__name__}")
        category = str(data.get("model_cat", ""))
        model_id = str(data.get("anno_id", data.get("model_id", model_id)))
    semantics = read_semantics(folder / "semantics.txt")
    parts = [Part(joint, link, semantics.get(link, ("", jtype))[1])
             for joint, link, jtype in validate_urdf(urdf, semantics=semantics)]
    return PartNetObject(folder, urdf, category, model_id, parts)
