"""3D Gaussians, their 14-channel splatter-image layout (LGM's), and standard 3DGS ``.ply`` files.

A splatter image holds one Gaussian per pixel per view, shape (B, V, 14, h, w), channels
in this fixed order (activated values):

    xyz (3) | opacity (1) in [0, 1] | scale (3) > 0, world units | rotation wxyz (4), unit | RGB (3) in [0, 1]

Bad values are handled in one documented place, :meth:`Gaussians.sanitize`: Gaussians with
any non-finite parameter get opacity 0 (and finite placeholders), scales are clamped to
``MIN_SCALE``, quaternions are normalised (a zero quaternion becomes the identity), and
opacity / colour are clamped to [0, 1]. :meth:`Gaussians.validate` raises instead.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from partrm_gym.io import atomic_write_bytes

SPLATTER_CHANNELS = 14
XYZ = slice(0, 3)
OPACITY = slice(3, 4)
SCALE = slice(4, 7)
ROTATION = slice(7, 11)
RGB = slice(11, 14)
# A pixel-aligned Gaussian's std as a fraction of its pixel's footprint (GT splatter discs, and
# the size an untrained PartRM head starts at). With antialiased rendering a Gaussian much
# smaller than the 0.3 px² dilation fades, so it must be about a pixel wide to close a surface;
# swept 0.3-0.8 on all categories (bench gt-splatter): 0.5 gives the best evaluation-view PSNR
# (0.4 leaves holes, 0.6 and up blur).
FOOTPRINT_SIGMA = 0.5

MIN_SCALE = 1e-6  # world units; smaller scales are clamped by sanitize()
SH_C0 = 0.28209479177387814  # degree-0 spherical harmonic: colour = 0.5 + SH_C0 * f_dc
PLY_PROPERTIES = ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                  "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
OPACITY_EPS = 1e-6  # keeps the logit finite on export


@dataclass
class Gaussians:
    """A batch of B scenes of N Gaussians each (activated values, see the module docstring)."""

    means: torch.Tensor  # (B, N, 3)
    opacities: torch.Tensor  # (B, N)
    scales: torch.Tensor  # (B, N, 3)
    quats: torch.Tensor  # (B, N, 4) wxyz
    colors: torch.Tensor  # (B, N, 3)

    def __post_init__(self) -> None:
        B, N = self.means.shape[:2]
        expected = {"means": (B, N, 3), "opacities": (B, N), "scales": (B, N, 3), "quats": (B, N, 4),
                    "colors": (B, N, 3)}
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"Gaussians.{name} must have shape {shape}, got {tuple(getattr(self, name).shape)}")

    @property
    def batch_size(self) -> int:
        return self.means.shape[0]

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[1]

    def __getitem__(self, index: int | slice) -> Gaussians:
        """Select scenes of the batch (an int keeps the batch dimension)."""
        sl = slice(index, index + 1) if isinstance(index, int) else index
        return Gaussians(*(getattr(self, f.name)[sl] for f in fields(self)))

    def to(self, device: torch.device | str) -> Gaussians:
        return Gaussians(*(getattr(self, f.name).to(device) for f in fields(self)))

    def detach(self) -> Gaussians:
        return Gaussians(*(getattr(self, f.name).detach() for f in fields(self)))

    @staticmethod
    def cat(items: list[Gaussians]) -> Gaussians:
        """Concatenate along the batch dimension."""
        return Gaussians(*(torch.cat([getattr(g, f.name) for g in items]) for f in fields(Gaussians)))

    # -- splatter images --------------------------------------------------------------------------------
    @classmethod
    def from_splatter(cls, splatter: torch.Tensor) -> Gaussians:
        """(B, V, 14, h, w) splatter images -> B scenes of V·h·w Gaussians (view-major, then row-major)."""
        if splatter.ndim != 5 or splatter.shape[2] != SPLATTER_CHANNELS:
            raise ValueError(f"splatter images must be (B, V, 14, h, w), got {tuple(splatter.shape)}")
        flat = splatter.permute(0, 1, 3, 4, 2).reshape(splatter.shape[0], -1, SPLATTER_CHANNELS)
        return cls(flat[..., XYZ], flat[..., OPACITY][..., 0], flat[..., SCALE], flat[..., ROTATION], flat[..., RGB])

    def to_splatter(self, views: int, height: int, width: int) -> torch.Tensor:
        """Inverse of :meth:`from_splatter`; N must equal views·height·width."""
        if self.num_gaussians != views * height * width:
            raise ValueError(f"{self.num_gaussians} Gaussians do not fill {views}x{height}x{width} splatter images")
        flat = torch.cat([self.means, self.opacities[..., None], self.scales, self.quats, self.colors], dim=-1)
        return flat.reshape(self.batch_size, views, height, width, SPLATTER_CHANNELS).permute(0, 1, 4, 2, 3)

    # -- bad values -------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming the first problem (non-finite values, scales <= 0, quats far from unit)."""
        for f in fields(self):
            t = getattr(self, f.name)
            if not torch.isfinite(t).all():
                raise ValueError(f"Gaussians.{f.name} contains NaN or inf; call sanitize() to zero those Gaussians")
        if (self.scales <= 0).any():
            raise ValueError("Gaussians.scales must be positive; call sanitize() to clamp them")
        if ((self.quats.norm(dim=-1) - 1).abs() > 1e-3).any():
            raise ValueError("Gaussians.quats are not unit quaternions; call sanitize() to normalise them")
        if (self.opacities < 0).any() or (self.opacities > 1).any():
            raise ValueError("Gaussians.opacities must lie in [0, 1]; call sanitize() to clamp them")

    def sanitize(self) -> Gaussians:
        """A copy with the documented repairs applied (differentiable where values were already valid)."""
        finite = (torch.isfinite(self.means).all(-1) & torch.isfinite(self.scales).all(-1)
                  & torch.isfinite(self.quats).all(-1) & torch.isfinite(self.colors).all(-1)
                  & torch.isfinite(self.opacities))
        means = torch.where(finite[..., None], self.means, torch.zeros_like(self.means))
        scales = torch.where(finite[..., None], self.scales, torch.ones_like(self.scales)).clamp_min(MIN_SCALE)
        identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=self.quats.dtype, device=self.quats.device)
        quats = torch.where(finite[..., None], self.quats, identity)
        norm = quats.norm(dim=-1, keepdim=True)
        quats = torch.where(norm > 1e-12, quats / norm.clamp_min(1e-12), identity)
        colors = torch.where(finite[..., None], self.colors, torch.zeros_like(self.colors)).clamp(0, 1)
        opacities = torch.where(finite, self.opacities, torch.zeros_like(self.opacities)).clamp(0, 1)
        return Gaussians(means, opacities, scales, quats, colors)


# -- .ply ---------------------------------------------------------------------------------------------------
def save_ply(path: str | Path, gaussians: Gaussians) -> Path:
    """Write scene 0 of ``gaussians`` as a binary little-endian 3DGS .ply (opacity logit, log scales, SH DC)."""
    if gaussians.batch_size != 1:
        raise ValueError(f"save_ply writes one scene; got a batch of {gaussians.batch_size} (index it first)")
    g = gaussians.detach().to("cpu").sanitize()
    n = g.num_gaussians
    op = g.opacities[0].double().clamp(OPACITY_EPS, 1 - OPACITY_EPS)
    data = torch.cat([
        g.means[0].double(), torch.zeros(n, 3, dtype=torch.float64), ((g.colors[0].double() - 0.5) / SH_C0),
        torch.log(op / (1 - op))[:, None], torch.log(g.scales[0].double()), g.quats[0].double(),
    ], dim=1).numpy().astype("<f4")
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {n}\n" + "".join(
        f"property float {p}\n" for p in PLY_PROPERTIES) + "end_header\n"
    atomic_write_bytes(path, header.encode("ascii") + data.tobytes())
    return Path(path)


def load_ply(path: str | Path) -> Gaussians:
    """Read a 3DGS .ply (float properties incl. x y z, f_dc_*, opacity, scale_*, rot_*); higher SH bands are ignored."""
    raw = Path(path).read_bytes()
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply") or end < 0:
        raise ValueError(f"{path}: not a PLY file")
    header = raw[:end].decode("ascii", errors="replace").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise ValueError(f"{path}: only binary little-endian PLY is supported")
    n = next(int(h.split()[2]) for h in header if h.startswith("element vertex"))
    props = [h.split()[2] for h in header if h.startswith("property float")]
    if any(h.startswith("property") and not h.startswith("property float") for h in header):
        raise ValueError(f"{path}: all vertex properties must be float32")
    missing = [p for p in PLY_PROPERTIES if p not in props and not p.startswith("n")]
    if missing:
        raise ValueError(f"{path}: missing properties {missing}")
    body = raw[end + len(b"end_header\n"):]
    if len(body) < n * len(props) * 4:
        raise ValueError(f"{path}: truncated ({len(body)} bytes for {n} vertices x {len(props)} floats)")
    arr = np.frombuffer(body, dtype="<f4", count=n * len(props)).reshape(n, len(props)).astype(np.float32)
    col = {p: arr[:, i] for i, p in enumerate(props)}

    def stack(names: tuple[str, ...]) -> torch.Tensor:
        return torch.from_numpy(np.stack([col[k] for k in names], axis=1))[None]

    means = stack(("x", "y", "z"))
    colors = 0.5 + SH_C0 * stack(("f_dc_0", "f_dc_1", "f_dc_2"))
    opacities = torch.sigmoid(torch.from_numpy(col["opacity"].copy()))[None]
    scales = torch.exp(stack(("scale_0", "scale_1", "scale_2")))
    quats = stack(("rot_0", "rot_1", "rot_2", "rot_3"))
    quats = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return Gaussians(means, opacities, scales, quats, colors)
