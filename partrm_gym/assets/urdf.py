"""A minimal, deterministic URDF writer for articulated objects made of primitives.

Procedural objects are built from boxes and cylinders so they need no mesh files and the
same seed always yields a byte-identical URDF (numbers are printed with a fixed format).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from xml.sax.saxutils import quoteattr

Vec3 = tuple[float, float, float]
RGBA = tuple[float, float, float, float]


def _num(v: float) -> str:
    s = f"{v:.5f}".rstrip("0").rstrip(".")
    return "0" if s in ("", "-0", "0") else s


def _fmt(values: tuple[float, ...] | list[float]) -> str:
    return " ".join(_num(v) for v in values)


@dataclass(frozen=True)
class Box:
    size: Vec3
    xyz: Vec3 = (0.0, 0.0, 0.0)
    rgba: RGBA = (0.7, 0.7, 0.7, 1.0)
    rpy: Vec3 = (0.0, 0.0, 0.0)

    def geometry(self) -> str:
        return f"<box size={quoteattr(_fmt(self.size))}/>"


@dataclass(frozen=True)
class Cylinder:
    radius: float
    length: float
    xyz: Vec3 = (0.0, 0.0, 0.0)
    rgba: RGBA = (0.7, 0.7, 0.7, 1.0)
    rpy: Vec3 = (0.0, 0.0, 0.0)

    def geometry(self) -> str:
        return f'<cylinder radius="{_fmt([self.radius])}" length="{_fmt([self.length])}"/>'


Shape = Box | Cylinder


@dataclass
class Link:
    name: str
    shapes: list[Shape] = field(default_factory=list)
    mass: float = 1.0


@dataclass(frozen=True)
class Joint:
    name: str
    type: Literal["revolute", "prismatic", "fixed"]
    parent: str
    child: str
    origin: Vec3
    axis: Vec3 = (0.0, 0.0, 1.0)
    lower: float = 0.0
    upper: float = 0.0
    effort: float = 100.0
    velocity: float = 1.0


@dataclass
class ArticulatedObject:
    """An object as links and joints; :meth:`to_urdf` is deterministic."""

    name: str
    links: list[Link] = field(default_factory=list)
    joints: list[Joint] = field(default_factory=list)

    def to_urdf(self) -> str:
        out = ['<?xml version="1.0"?>', f"<robot name={quoteattr(self.name)}>"]
        materials: dict[RGBA, str] = {}
        for link in self.links:
            for s in link.shapes:
                materials.setdefault(s.rgba, f"mat{len(materials)}")
        for rgba, mname in materials.items():
            out.append(f'  <material name="{mname}"><color rgba="{_fmt(rgba)}"/></material>')
        for link in self.links:
            out.append(f"  <link name={quoteattr(link.name)}>")
            out.append(_inertial(link))
            for s in link.shapes:
                origin = f'<origin xyz="{_fmt(s.xyz)}" rpy="{_fmt(s.rpy)}"/>'
                geom = s.geometry()
                out.append(f'    <visual>{origin}<geometry>{geom}</geometry>'
                           f'<material name="{materials[s.rgba]}"/></visual>')
                out.append(f"    <collision>{origin}<geometry>{geom}</geometry></collision>")
            out.append("  </link>")
        for j in self.joints:
            out.append(f"  <joint name={quoteattr(j.name)} type=\"{j.type}\">")
            out.append(f'    <parent link={quoteattr(j.parent)}/><child link={quoteattr(j.child)}/>')
            out.append(f'    <origin xyz="{_fmt(j.origin)}" rpy="0 0 0"/>')
            if j.type != "fixed":
                out.append(f'    <axis xyz="{_fmt(j.axis)}"/>')
                out.append(f'    <limit lower="{_fmt([j.lower])}" upper="{_fmt([j.upper])}" '
                           f'effort="{_fmt([j.effort])}" velocity="{_fmt([j.velocity])}"/>')
                out.append('    <dynamics damping="1.0" friction="0.0"/>')
            out.append("  </joint>")
        out.append("</robot>")
        return "\n".join(out) + "\n"


def _inertial(link: Link) -> str:
    # A small diagonal inertia keeps PyBullet stable; exact values do not matter for kinematic use.
    i = max(link.mass * 0.01, 1e-4)
    return (f'    <inertial><origin xyz="0 0 0" rpy="0 0 0"/><mass value="{_fmt([link.mass])}"/>'
            f'<inertia ixx="{_fmt([i])}" ixy="0" ixz="0" iyy="{_fmt([i])}" iyz="0" izz="{_fmt([i])}"/></inertial>')
