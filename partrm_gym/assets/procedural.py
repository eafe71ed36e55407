"""Procedural articulated objects shaped like PartDrag-4D's categories.

Each generator draws proportions, part counts, handle shapes and colours from a seeded
``numpy.random.Generator`` and builds the object from boxes and cylinders in metres, in
the object frame of docs/conventions.md: z up, the front (where parts open) facing +x, the body
spanning x in [-D/2, D/2], y in [-W/2, W/2], z in [0, H]. The scene normalises scale.
One category (:data:`HELD_OUT_CATEGORY`) is reserved for testing, as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from partrm_gym.assets.urdf import RGBA, ArticulatedObject, Box, Cylinder, Joint, Link, Shape, Vec3
from partrm_gym.errors import UsageError
from partrm_gym.io import atomic_write_json, atomic_write_text

PANEL = 0.015  # wall thickness of shells and doors, metres
GAP = 0.004  # clearance around doors and drawer fronts, metres
HALF_PI = math.pi / 2

BODY_COLOURS: tuple[RGBA, ...] = (
    (0.92, 0.92, 0.90, 1.0), (0.75, 0.76, 0.78, 1.0), (0.55, 0.38, 0.24, 1.0), (0.80, 0.68, 0.50, 1.0),
    (0.20, 0.22, 0.25, 1.0), (0.62, 0.70, 0.62, 1.0), (0.45, 0.55, 0.70, 1.0), (0.70, 0.30, 0.28, 1.0),
)
HANDLE_COLOURS: tuple[RGBA, ...] = ((0.85, 0.85, 0.88, 1.0), (0.10, 0.10, 0.10, 1.0), (0.80, 0.65, 0.25, 1.0))
INTERIOR: RGBA = (0.30, 0.28, 0.26, 1.0)
GLASS: RGBA = (0.08, 0.10, 0.12, 1.0)


@dataclass
class Part:
    """A movable part: the joint that moves it, its link and a semantic label."""

    joint: str
    link: str
    semantic: str


@dataclass
class ProceduralObject:
    category: str
    seed: int
    articulation: ArticulatedObject
    parts: list[Part] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.category}_{self.seed:06d}"

    def urdf(self) -> str:
        return self.articulation.to_urdf()

    def metadata(self) -> dict:
        return {"category": self.category, "seed": self.seed, "parts": [p.__dict__ for p in self.parts]}

    def write(self, folder: str | Path) -> Path:
        """Write ``<name>.urdf`` and ``<name>.json`` (parts, category, seed); returns the URDF path."""
        folder = Path(folder)
        path = folder / f"{self.name}.urdf"
        atomic_write_text(path, self.urdf())
        atomic_write_json(folder / f"{self.name}.json", self.metadata())
        return path


class _Builder:
    """Accumulates links/joints of one object; helpers place shells, panels and handles."""

    def __init__(self, name: str, rng: np.random.Generator) -> None:
        self.rng = rng
        self.obj = ArticulatedObject(name, links=[Link("base", mass=0.0)])
        self.parts: list[Part] = []

    @property
    def base(self) -> Link:
        return self.obj.links[0]

    def colour(self, palette: tuple[RGBA, ...], jitter: float = 0.04) -> RGBA:
        r, g, b, a = palette[int(self.rng.integers(len(palette)))]
        d = self.rng.uniform(-jitter, jitter, 3)
        return (*(float(np.clip(c + e, 0.0, 1.0)) for c, e in zip((r, g, b), d)), a)  # type: ignore[return-value]

    def shell(self, W: float, D: float, H: float, z0: float, colour: RGBA, top: bool = True,
              front_frame: float = 0.0) -> None:
        """An open-front box (back, sides, bottom, optional top) with a dark interior panel."""
        t = PANEL
        shapes = [
            Box((t, W, H), (-D / 2 + t / 2, 0, z0 + H / 2), colour),
            Box((D, t, H), (0, -W / 2 + t / 2, z0 + H / 2), colour),
            Box((D, t, H), (0, W / 2 - t / 2, z0 + H / 2), colour),
            Box((D, W, t), (0, 0, z0 + t / 2), colour),
            Box((t / 3, W - 2 * t, H - 2 * t), (-D / 2 + t + t / 6, 0, z0 + H / 2), INTERIOR),
        ]
        if top:
            shapes.append(Box((D, W, t), (0, 0, z0 + H - t / 2), colour))
        self.base.shapes.extend(shapes)

    def handle(self, kind: str, at: Vec3, length: float, vertical: bool, colour: RGBA,
               outward: Vec3 = (1.0, 0.0, 0.0)) -> list[Shape]:
        """A bar (with two standoffs) or a knob sticking out along ``outward`` from point ``at``."""
        x, y, z = at
        ox, oy, oz = outward
        stand = 0.025
        if kind == "knob":
            r = 0.012 + 0.01 * self.rng.random()
            rpy = (0.0, HALF_PI, 0.0) if abs(ox) > 0.5 else (0.0, 0.0, 0.0)
            return [Cylinder(r, stand, (x + ox * stand / 2, y + oy * stand / 2, z + oz * stand / 2), colour, rpy)]
        bar = 0.012
        if vertical:
            ends = [(x, y, z - length / 2 + bar), (x, y, z + length / 2 - bar)]
            bar_size = (bar, bar, length)
        elif abs(ox) > 0.5:
            ends = [(x, y - length / 2 + bar, z), (x, y + length / 2 - bar, z)]
            bar_size = (bar, length, bar)
        else:  # a lid whose outward direction is +z: the bar runs along y
            ends = [(x, y - length / 2 + bar, z), (x, y + length / 2 - bar, z)]
            bar_size = (bar, length, bar)
        shapes: list[Shape] = [Box(bar_size, (x + ox * stand, y + oy * stand, z + oz * stand), colour)]
        standoff = tuple(stand if abs(o) > 0.5 else bar * 0.8 for o in outward)
        for ex, ey, ez in ends:
            shapes.append(Box(standoff, (ex + ox * stand / 2, ey + oy * stand / 2, ez + oz * stand / 2), colour))  # type: ignore[arg-type]
        return shapes

    def part(self, name: str, semantic: str, joint_type: str, origin: Vec3, axis: Vec3,
             lower: float, upper: float, shapes: list[Shape], mass: float = 1.0) -> None:
        link = f"{name}_link"
        self.obj.links.append(Link(link, shapes, mass))
        self.obj.joints.append(Joint(f"{name}_joint", joint_type, "base", link, origin, axis,  # type: ignore[arg-type]
                                     lower=lower, upper=upper))
        self.parts.append(Part(f"{name}_joint", link, semantic))

    def hinged_panel(self, name: str, semantic: str, hinge: str, W: float, H: float, front_x: float,
                     y0: float, z0: float, colour: RGBA, upper: float, handle: str | None,
                     handle_colour: RGBA, window: bool = False) -> None:
        """A door of width W (along y) and height H hinged on its 'left' (-y), 'right' (+y) or 'bottom' edge."""
        t = PANEL
        if hinge in ("left", "right"):
            sign = 1.0 if hinge == "left" else -1.0
            hinge_y = y0 - W / 2 if hinge == "left" else y0 + W / 2
            origin = (front_x, hinge_y, z0)
            centre = (t / 2, sign * W / 2, H / 2)
            shapes: list[Shape] = [Box((t, W - GAP, H - GAP), centre, colour)]
            if window:
                shapes.append(Box((t / 4, 0.65 * W, 0.6 * H), (t + t / 8, sign * W * 0.45, H / 2), GLASS))
            if handle:
                shapes += self.handle(handle, (t, sign * (W - 0.05), H / 2), min(0.3, 0.5 * H), True,
                                      handle_colour)
            axis = (0.0, 0.0, -1.0) if hinge == "left" else (0.0, 0.0, 1.0)
        else:  # bottom hinge: the door falls open towards +x
            origin = (front_x, y0, z0)
            shapes = [Box((t, W - GAP, H - GAP), (t / 2, 0, H / 2), colour)]
            if window:
                shapes.append(Box((t / 4, 0.7 * W, 0.45 * H), (t + t / 8, 0, H * 0.55), GLASS))
            if handle:
                shapes += self.handle(handle, (t, 0, H - 0.05), min(0.5, 0.7 * W), False, handle_colour)
            axis = (0.0, 1.0, 0.0)
        self.part(name, semantic, "revolute", origin, axis, 0.0, upper, shapes)

    def lid(self, name: str, D: float, W: float, hinge_x: float, top_z: float, thickness: float,
            colour: RGBA, upper: float, inset: RGBA | None = None, handle: str | None = None,
            handle_colour: RGBA = HANDLE_COLOURS[0]) -> None:
        """A lid lying on top, hinged along its back edge (at x = hinge_x), opening upwards."""
        shapes: list[Shape] = [Box((D, W, thickness), (D / 2, 0, thickness / 2), colour)]
        if inset is not None:  # e.g. a laptop screen on the underside
            shapes.append(Box((0.8 * D, 0.85 * W, 0.002), (D / 2, 0, -0.001), inset))
        if handle:
            shapes += self.handle(handle, (D - 0.04, 0, thickness), min(0.25, 0.4 * W), False, handle_colour,
                                  outward=(0.0, 0.0, 1.0))
        self.part(name, "lid", "revolute", (hinge_x, 0, top_z), (0.0, -1.0, 0.0), 0.0, upper, shapes, mass=0.5)

    def build(self, category: str, seed: int) -> ProceduralObject:
        return ProceduralObject(category, seed, self.obj, self.parts)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _handle_kind(rng: np.random.Generator, allow_none: bool = False) -> str | None:
    kinds = ["bar", "knob"] + (["none"] if allow_none else [])
    k = kinds[int(rng.integers(len(kinds)))]
    return None if k == "none" else k


def storage_drawer(b: _Builder) -> None:
    rng = b.rng
    W, D, H = _u(rng, 0.5, 1.0), _u(rng, 0.4, 0.6), _u(rng, 0.45, 1.1)
    legs = _u(rng, 0.0, 0.08)
    body, handle_c = b.colour(BODY_COLOURS), b.colour(HANDLE_COLOURS)
    b.shell(W, D, H, legs, body)
    if legs > 0.01:
        for sx in (-1, 1):
            for sy in (-1, 1):
                b.base.shapes.append(Box((0.03, 0.03, legs), (sx * (D / 2 - 0.03), sy * (W / 2 - 0.03), legs / 2),
                                         body))
    rows = int(rng.integers(1, 5))
    cols = 2 if W > 0.8 and rng.random() < 0.5 else 1
    front_c = b.colour(BODY_COLOURS) if rng.random() < 0.3 else body
    handle = _handle_kind(rng) or "bar"
    inner_w, inner_h = W - 2 * PANEL, H - 2 * PANEL
    cell_w, cell_h = inner_w / cols, inner_h / rows
    depth = D - 2 * PANEL
    for r in range(rows):
        for c in range(cols):
            zc = legs + PANEL + (r + 0.5) * cell_h
            yc = -inner_w / 2 + (c + 0.5) * cell_w
            fw, fh = cell_w - GAP, cell_h - GAP
            tray_h = 0.7 * fh
            shapes: list[Shape] = [
                Box((PANEL, fw, fh), (-PANEL / 2, 0, 0), front_c),
                Box((depth, fw - 0.02, PANEL), (-depth / 2, 0, -fh / 2 + 0.01), INTERIOR),
                Box((depth, PANEL, tray_h), (-depth / 2, -(fw - 0.02) / 2, -fh / 2 + tray_h / 2), front_c),
                Box((depth, PANEL, tray_h), (-depth / 2, (fw - 0.02) / 2, -fh / 2 + tray_h / 2), front_c),
                Box((PANEL, fw - 0.02, tray_h), (-depth + PANEL / 2, 0, -fh / 2 + tray_h / 2), front_c),
            ]
            shapes += b.handle(handle, (0.0, 0.0, fh * 0.15 if rows > 1 else 0.0), min(0.25, 0.5 * fw), False,
                               handle_c)
            b.part(f"drawer{r * cols + c}", "drawer", "prismatic", (D / 2, yc, zc), (1.0, 0.0, 0.0),
                   0.0, float(0.8 * depth), shapes, mass=0.5)


def storage_door(b: _Builder) -> None:
    rng = b.rng
    W, D, H = _u(rng, 0.45, 1.0), _u(rng, 0.35, 0.6), _u(rng, 0.5, 1.6)
    body, handle_c = b.colour(BODY_COLOURS), b.colour(HANDLE_COLOURS)
    b.shell(W, D, H, 0.0, body)
    shelves = int(rng.integers(0, 3))
    for k in range(shelves):
        b.base.shapes.append(Box((D - 2 * PANEL, W - 2 * PANEL, PANEL),
                                 (0, 0, (k + 1) * H / (shelves + 1)), body))
    handle = _handle_kind(rng) or "knob"
    door_c = b.colour(BODY_COLOURS) if rng.random() < 0.3 else body
    if W > 0.6 and rng.random() < 0.7:
        for name, hinge, yc in (("door0", "left", -W / 4), ("door1", "right", W / 4)):
            b.hinged_panel(name, "door", hinge, W / 2 - PANEL / 2, H, D / 2, yc, 0.0, door_c,
                           _u(rng, 1.4, 2.0), handle, handle_c)
    else:
        hinge = "left" if rng.random() < 0.5 else "right"
        b.hinged_panel("door0", "door", hinge, W, H, D / 2, 0.0, 0.0, door_c, _u(rng, 1.4, 2.0), handle, handle_c)


def microwave(b: _Builder) -> None:
    rng = b.rng
    W, D, H = _u(rng, 0.45, 0.65), _u(rng, 0.32, 0.45), _u(rng, 0.26, 0.38)
    body, handle_c = b.colour(BODY_COLOURS[:2] + BODY_COLOURS[4:5]), b.colour(HANDLE_COLOURS)
    b.shell(W, D, H, 0.0, body)
    panel_w = _u(rng, 0.22, 0.3) * W
    b.base.shapes.append(Box((PANEL, panel_w, H), (D / 2 - PANEL / 2, W / 2 - panel_w / 2, H / 2), GLASS
                             if rng.random() < 0.5 else body))
    for k in range(int(rng.integers(2, 5))):
        b.base.shapes.append(Cylinder(0.012, 0.01, (D / 2 + 0.005, W / 2 - panel_w / 2, H * (0.8 - 0.18 * k)),
                                      HANDLE_COLOURS[0], (0.0, HALF_PI, 0.0)))
    door_w = W - panel_w
    b.hinged_panel("door", "door", "left", door_w, H, D / 2, -W / 2 + door_w / 2, 0.0, body,
                   _u(rng, 1.4, 1.9), _handle_kind(rng, allow_none=True), handle_c, window=True)


def oven(b: _Builder) -> None:
    rng = b.rng
    W, D, H = _u(rng, 0.55, 0.76), _u(rng, 0.55, 0.65), _u(rng, 0.8, 0.95)
    body, handle_c = b.colour(BODY_COLOURS[:2] + BODY_COLOURS[4:5]), b.colour(HANDLE_COLOURS)
    strip = _u(rng, 0.1, 0.16)
    b.shell(W, D, H, 0.0, body)
    b.base.shapes.append(Box((PANEL, W, strip), (D / 2 - PANEL / 2, 0, H - strip / 2), body))
    for k in range(int(rng.integers(2, 6))):
        y = -W / 2 + (k + 1) * W / 6
        b.base.shapes.append(Cylinder(0.018, 0.02, (D / 2 + 0.01, y, H - strip / 2), GLASS, (0.0, HALF_PI, 0.0)))
    door_h = H - strip - 0.02
    b.hinged_panel("door", "door", "bottom", W, door_h, D / 2, 0.0, 0.02, body, _u(rng, 1.3, HALF_PI),
                   "bar", handle_c, window=rng.random() < 0.7)


def refrigerator(b: _Builder) -> None:
    rng = b.rng
    W, D, H = _u(rng, 0.55, 0.9), _u(rng, 0.55, 0.75), _u(rng, 1.4, 1.9)
    body, handle_c = b.colour(BODY_COLOURS[:2] + BODY_COLOURS[4:]), b.colour(HANDLE_COLOURS)
    b.shell(W, D, H, 0.0, body)
    hinge = "left" if rng.random() < 0.5 else "right"
    if rng.random() < 0.6:
        split = _u(rng, 0.3, 0.4) * H
        b.base.shapes.append(Box((D - 2 * PANEL, W - 2 * PANEL, PANEL), (0, 0, split), INTERIOR))
        b.hinged_panel("freezer_door", "door", hinge, W, H - split, D / 2, 0.0, split, body,
                       _u(rng, 1.4, 2.0), "bar", handle_c)
        b.hinged_panel("fridge_door", "door", hinge, W, split, D / 2, 0.0, 0.0, body,
                       _u(rng, 1.4, 2.0), "bar", handle_c)
    else:
        b.hinged_panel("door", "door", hinge, W, H, D / 2, 0.0, 0.0, body, _u(rng, 1.4, 2.0), "bar", handle_c)


def dishwasher(b: _Builder) -> None:
    rng = b.rng
    W, D, H = _u(rng, 0.45, 0.62), _u(rng, 0.55, 0.65), _u(rng, 0.8, 0.88)
    body, handle_c = b.colour(BODY_COLOURS[:2] + BODY_COLOURS[4:5]), b.colour(HANDLE_COLOURS)
    strip = _u(rng, 0.06, 0.1)
    b.shell(W, D, H, 0.0, body)
    b.base.shapes.append(Box((PANEL, W, strip), (D / 2 - PANEL / 2, 0, H - strip / 2), GLASS))
    for k in range(int(rng.integers(1, 3))):  # racks
        b.base.shapes.append(Box((D - 0.08, W - 0.08, 0.01), (0, 0, 0.15 + k * 0.3), HANDLE_COLOURS[0]))
    b.hinged_panel("door", "door", "bottom", W, H - strip - 0.02, D / 2, 0.0, 0.02, body, _u(rng, 1.3, HALF_PI),
                   "bar", handle_c)


def laptop(b: _Builder) -> None:
    rng = b.rng
    W, D, T = _u(rng, 0.3, 0.4), _u(rng, 0.21, 0.28), _u(rng, 0.012, 0.022)
    body = b.colour(BODY_COLOURS[:2] + BODY_COLOURS[4:5])
    b.base.shapes.append(Box((D, W, T), (0, 0, T / 2), body))
    b.base.shapes.append(Box((0.55 * D, 0.85 * W, 0.002), (-0.05 * D, 0, T + 0.001), GLASS))  # keyboard
    b.base.shapes.append(Box((0.2 * D, 0.3 * W, 0.002), (0.33 * D, 0, T + 0.001),
                             (0.4, 0.4, 0.42, 1.0)))  # touchpad
    b.lid("lid", D, W, -D / 2, T + 0.002, 0.7 * T, body, _u(rng, 1.8, 2.2), inset=GLASS)


def trashcan(b: _Builder) -> None:
    rng = b.rng
    W, D, H = _u(rng, 0.25, 0.5), _u(rng, 0.25, 0.5), _u(rng, 0.3, 0.7)
    body = b.colour(BODY_COLOURS)
    b.shell(W, D, H, 0.0, body, top=False)
    b.base.shapes.append(Box((PANEL, W, H), (D / 2 - PANEL / 2, 0, H / 2), body))  # closed front
    lid_c = b.colour(BODY_COLOURS) if rng.random() < 0.5 else body
    b.lid("lid", D, W, -D / 2, H, PANEL * 1.5, lid_c, _u(rng, 1.4, 2.0),
          handle=_handle_kind(rng, allow_none=True), handle_colour=b.colour(HANDLE_COLOURS))


GENERATORS: dict[str, Callable[[_Builder], None]] = {
    "storage_drawer": storage_drawer,
    "storage_door": storage_door,
    "microwave": microwave,
    "oven": oven,
    "refrigerator": refrigerator,
    "dishwasher": dishwasher,
    "laptop": laptop,
    "trashcan": trashcan,
}
CATEGORIES: tuple[str, ...] = tuple(GENERATORS)
HELD_OUT_CATEGORY = "dishwasher"
TRAIN_CATEGORIES: tuple[str, ...] = tuple(c for c in CATEGORIES if c != HELD_OUT_CATEGORY)

# Short names used by the CLI and the environments.
ALIASES = {"drawer": "storage_drawer", "door": "storage_door", "cabinet": "storage_door", "fridge": "refrigerator",
           "box": "trashcan", "lid": "trashcan"}


def canonical_category(name: str) -> str:
    key = ALIASES.get(name, name)
    if key not in GENERATORS:
        raise UsageError(f"unknown category {name!r}; choose one of {sorted(CATEGORIES) + sorted(ALIASES)}")
    return key


def generate(category: str, seed: int) -> ProceduralObject:
    """A random instance of ``category``; the same (category, seed) always gives the same URDF."""
    category = canonical_category(category)
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    # Mix the category into the stream so seed 0 of two categories draws independent numbers.
    rng = np.random.default_rng([seed, CATEGORIES.index(category)])
    b = _Builder(f"{category}_{seed:06d}", rng)
    GENERATORS[category](b)
    return b.build(category, seed)

