"""The colours of a PartNet-Mobility object: each visual mesh takes the diffuse colour of its MTL material.

Why: PyBullet's URDF loader applies an OBJ's texture (``map_Kd``) but colours every untextured mesh white
unless the URDF gives a ``<material>``, and PartNet-Mobility's URDFs give none: the colours live in the
MTL files (``Kd``). PyBullet holds one colour per visual mesh (its ``URDF_USE_MATERIAL_COLORS_FROM_MTL``
flag takes the *last* material of a multi-material OBJ, and ``changeVisualShape`` colours a whole link),
so a copy of the URDF is written in which each untextured visual carries the ``Kd`` of the material that
covers most of its mesh's faces. Visuals with a textured material keep PyBullet's texture, uncoloured.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

_USEMTL = re.compile(rb"^[ \t]*usemtl[ \t]+(\S+)", re.MULTILINE)
_MTLLIB = re.compile(rb"^[ \t]*mtllib[ \t]+(.+?)[ \t]*$", re.MULTILINE)
_FACE = re.compile(rb"^[ \t]*f[ \t]", re.MULTILINE)


def read_mtl(path: Path) -> dict[str, tuple[tuple[float, float, float] | None, bool]]:
    """{material: (Kd or None, has a texture)} of an MTL file; unreadable numbers give None."""
    out: dict[str, tuple[tuple[float, float, float] | None, bool]] = {}
    name = None
    kd: tuple[float, float, float] | None = None
    textured = False
    for line in path.read_text(errors="replace").splitlines() + ["newmtl"]:
        words = line.split()
        if not words:
            continue
        if words[0] == "newmtl":
            if name is not None:
                out[name] = (kd, textured)
            name, kd, textured = (words[1] if len(words) > 1 else None), None, False
        elif words[0] == "Kd" and len(words) >= 4:
            try:
                kd = (float(words[1]), float(words[2]), float(words[3]))
            except ValueError:
                kd = None
        elif words[0] == "map_Kd":
            textured = True
    return out


@lru_cache(maxsize=4096)
def dominant_diffuse(obj_path: str) -> tuple[float, float, float] | None:
    """The ``Kd`` of the material that covers most faces of an OBJ mesh, clipped to [0, 1]; None when any of its
    materials is textured, the dominant one has no ``Kd``, or the mesh names no readable material library."""
    try:
        data = Path(obj_path).read_bytes()
    except OSError:
        return None
    lib = _MTLLIB.search(data)
    if lib is None:
        return None
    mtl = Path(obj_path).parent / lib.group(1).decode(errors="replace")
    try:
        materials = read_mtl(mtl)
    except OSError:
        return None
    faces: dict[str, int] = {}
    marks = list(_USEMTL.finditer(data))
    for i, m in enumerate(marks):  # faces between this usemtl and the next belong to this material
        end = marks[i + 1].start() if i + 1 < len(marks) else len(data)
        name = m.group(1).decode(errors="replace")
        faces[name] = faces.get(name, 0) + len(_FACE.findall(data, m.end(), end))
    if not faces or any(materials.get(name, (None, False))[1] for name in faces):
        return None  # PyBullet textures the whole mesh with the texture it finds: no colour on top
    kd, _ = materials.get(max(faces, key=faces.get), (None, False))
    if kd is None:
        return None
    return tuple(min(max(c, 0.0), 1.0) for c in kd)  # type: ignore[return-value]


def write_coloured_urdf(urdf_path: Path, out_path: Path) -> Path:
    """A copy of ``urdf_path`` at ``out_path`` whose untextured visuals carry their mesh's MTL colour
    (:func:`dominant_diffuse`) and whose mesh filenames are absolute (the copy lives elsewhere)."""
    tree = ET.parse(urdf_path)
    base = urdf_path.parent
    for link in tree.getroot().iter("link"):
        for element in list(link.iter("visual")) + list(link.iter("collision")):
            mesh = element.find("geometry/mesh")
            if mesh is None or not mesh.get("filename"):
                continue
            path = os.path.join(str(base), mesh.get("filename", "").removeprefix("package://"))
            mesh.set("filename", path)
            if element.tag != "visual" or element.find("material") is not None:
                continue
            colour = dominant_diffuse(path)
            if colour is not None:
                material = ET.SubElement(element, "material", {"name": f"kd_{colour[0]:.4f}_{colour[1]:.4f}"
                                                                       f"_{colour[2]:.4f}"})
                ET.SubElement(material, "color", {"rgba": f"{colour[0]:.6g} {colour[1]:.6g} {colour[2]:.6g} 1"})
    tree.write(out_path)
    return out_path


__all__ = ["dominant_diffuse", "read_mtl", "write_coloured_urdf"]
