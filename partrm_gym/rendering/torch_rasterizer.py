"""A differentiable 3D Gaussian rasterizer in plain PyTorch, fast enough for 2 CPU cores.

It implements the rules of gsplat's ``rasterization()`` (packed=False, rasterize_mode="classic",
render_mode="RGB+ED"): EWA projection with the Jacobian evaluated at x/z, y/z clamped to the
image plus 0.3 × the half-fov tangent; ``EPS2D`` px² added to the 2D covariance diagonal; an
opacity-aware extent of at most 3.33 sigma; alpha = min(``ALPHA_MAX``, o·exp(-½ dᵀΣ⁻¹d));
skip alpha < 1/255; stop *before* the Gaussian that would take the transmittance to 1e-4 or
below; cull centres in front of the near plane (z < 0.01); pixel centres at i + 0.5. gsplat
evaluates every pixel of the 16×16 tiles a Gaussian's box touches and this only the 4×4 tiles,
but outside the box alpha < 1/255, so both draw the same pairs. One deliberate difference:
``ALPHA_MAX`` is 0.99 (docs/conventions.md, the original 3DGS) where gsplat 1.5 uses 0.999.

``mode="antialiased"`` is gsplat's (Mip-Splatting's) variant: each Gaussian's opacity is
multiplied by sqrt(det Σ2D / det(Σ2D + dilation)), so a Gaussian much thinner than a pixel,
or a flat disc seen edge-on, fades instead of being widened to a 0.3 px² blob at full
opacity. Without it, a surface seen edge-on stacks dozens of such blobs on one silhouette
pixel (measured: alpha 0.92 one pixel outside a cabinet's outline in GT splatter renders).

Tiled and vectorised rather than looped:

1. Each visible Gaussian is binned to the ``TILE``×``TILE`` tiles its extent box touches.
   Gaussians are visited in (camera, depth) order, so a *stable* sort by tile id gives every
   tile its list front to back — the per-tile depth sort of 3DGS, for all cameras at once.
2. Each list is padded to a multiple of ``CHUNK`` with a transparent Gaussian, so the
   (Gaussian, pixel) pairs form one dense (chunks, CHUNK, TILE²) tensor. The exponent of
   alpha is a quadratic in the pixel offset, so it is a single matmul of per-slot
   coefficients with fixed monomials.
3. Transmittance is a running product along each chunk times a carry from the earlier chunks
   of the same tile (float64 log-space sums over the small (chunks, TILE²) totals, so
   precision does not degrade with list length); the early stop is an exact mask. Colour,
   alpha and depth are one batched matmul of the weights with the per-Gaussian features.

Gradients w.r.t. means, quaternions, scales, opacities and colours: autograd for projection
and coefficients, a hand-written backward (the 3DGS one) for compositing. Tile lists and
masks are constants, as in 3DGS. Runtime is bound by memory traffic: see ``allocator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

from partrm_gym.rendering.allocator import keep_freed_memory

RasterizeMode = Literal["classic", "antialiased"]
RASTERIZE_MODES: tuple[str, ...] = ("classic", "antialiased")
NEAR_PLANE = 0.01
FAR_PLANE = 1e10
EPS2D = 0.3  # px², added to the 2D covariance diagonal (gsplat eps2d, "classic" mode)
EXTENT_SIGMAS = 3.33  # gsplat's cap on the opacity-aware extent
ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4
FOV_MARGIN = 0.3  # Jacobian clamp: the image plus 0.3 × the half-fov tangent on each side
TILE = 4  # px, even; measured fastest for 1-3 px splats at 64²-128² (2 and 8 are slower)
CHUNK = 16  # per-tile lists are padded to a multiple of this many Gaussians
FEATURES = 5  # composited per pixel: R, G, B, alpha, depth
EMPTY_LOG_OPACITY = -1e4  # the padding Gaussian: far below the 1/255 cut, so its alpha is 0
# Underflowing exp() and denormal floats are 5-50x slower on x86 CPUs, so no step may produce
# them: exponents are floored just below the 1/255 cut (those alphas are then set to 0), the
# carried transmittance is floored at CARRY_FLOOR < T_MIN (a pixel under it is already done, so
# its mask stays right) and a chunk's own transmittance is >= (1 - ALPHA_MAX)^CHUNK.
LOG_ALPHA_FLOOR = math.log(ALPHA_MIN) - 1.0
CARRY_FLOOR = 0.1 * T_MIN
assert (1 - ALPHA_MAX) ** CHUNK * CARRY_FLOOR > torch.finfo(torch.float32).tiny
assert TILE % 2 == 0  # tile centres fall on integer pixel coordinates

# Columns of the per-Gaussian table the tiles gather from (one row per visible (camera, Gaussian)).
U, V, CONIC, DEPTH, LOG_OPACITY, RGB = 0, 1, slice(2, 5), 5, 6, slice(7, 10)
TABLE_COLUMNS = 10


def _rotation_entries(q: torch.Tensor) -> list[list[torch.Tensor]]:
    """(…, 4) wxyz quaternions (normalised here) -> the 3×3 rotation entries, each (…)."""
    w, x, y, z = (q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)).unbind(-1)
    return [[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]]


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


class Projection(NamedTuple):
    """Per (scene, camera, Gaussian), each (B, C, N) unless noted: what the tiles and the blending read."""

    u: torch.Tensor  # pixel x of the centre
    v: torch.Tensor  # pixel y of the centre
    conic: torch.Tensor  # (B, C, N, 3): (A, B, C) of the inverse 2D covariance
    cov_xx: torch.Tensor  # dilated 2D covariance, x diagonal (the footprint's extent)
    cov_yy: torch.Tensor  # dilated 2D covariance, y diagonal
    depth: torch.Tensor  # camera z
    valid: torch.Tensor  # bool: in front of the near plane, positive-definite footprint, finite
    compensation: torch.Tensor  # sqrt(det Σ2D / det(Σ2D + EPS2D·I)), the antialiased opacity factor


def project(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, viewmats: torch.Tensor,
            Ks: torch.Tensor, width: int, height: int) -> Projection:
    """EWA projection of (B, N) Gaussians into (B, C) cameras.

    Returns a :class:`Projection` of (B, C, N) tensors. Written on
    per-component (B, C, N) planes: 3×3 blocks as tensor dimensions would make every op a
    slow broadcast over a length-3 inner loop.
    """
    cam = [[viewmats[..., i, j, None] for j in range(4)] for i in range(4)]  # (B, C, 1) each
    m = [means[:, None, :, i] for i in range(3)]  # (B, 1, N) each
    x, y, z = (_dot(cam[i][:3], m) + cam[i][3] for i in range(3))  # camera coordinates (B, C, N)
    rot = _rotation_entries(quats)
    s = scales.unbind(-1)
    M = [[rot[i][j][:, None] * s[j][:, None] for j in range(3)] for i in range(3)]  # Σ = M Mᵀ, (B, 1, N)
    fx, fy = Ks[..., 0, 0, None], Ks[..., 1, 1, None]
    cx, cy = Ks[..., 0, 2, None], Ks[..., 1, 2, None]
    zs = z.clamp_min(NEAR_PLANE)
    margin_x, margin_y = FOV_MARGIN * 0.5 * width / fx, FOV_MARGIN * 0.5 * height / fy
    tx = torch.minimum((width - cx) / fx + margin_x, torch.maximum(-(cx / fx + margin_x), x / zs))
    ty = torch.minimum((height - cy) / fy + margin_y, torch.maximum(-(cy / fy + margin_y), y / zs))
    # rows of J·R with J = [[fx/z, 0, -fx·tx/z], [0, fy/z, -fy·ty/z]]; Σ2D = (J R M)(J R M)ᵀ
    jr_x = [fx / zs * (cam[0][j] - tx * cam[2][j]) for j in range(3)]
    jr_y = [fy / zs * (cam[1][j] - ty * cam[2][j]) for j in range(3)]
    gx = [_dot(jr_x, [M[0][j], M[1][j], M[2][j]]) for j in range(3)]
    gy = [_dot(jr_y, [M[0][j], M[1][j], M[2][j]]) for j in range(3)]
    a = _dot(gx, gx) + EPS2D
    b = _dot(gx, gy)
    c = _dot(gy, gy) + EPS2D
    det = a * c - b * b
    inv_det = 1 / det.clamp_min(1e-12)
    conic = torch.stack([c * inv_det, -b * inv_det, a * inv_det], dim=-1)
    u = fx * x / zs + cx
    v = fy * y / zs + cy
    valid = (z >= NEAR_PLANE) & (z <= FAR_PLANE) & (det > 0) & torch.isfinite(u) & torch.isfinite(v)
    ratio = ((a - EPS2D) * (c - EPS2D) - b * b) * inv_det
    # where() keeps sqrt's infinite slope at 0 out of the backward pass (0 · inf would be NaN)
    compensation = torch.where(ratio > 0, ratio.clamp_min(1e-30).sqrt(), torch.zeros_like(ratio))
    return Projection(u, v, conic, a, c, z, valid, compensation)


@dataclass
class TilePlan:
    """Which table row sits in which slot of which tile chunk (bookkeeping, no gradients)."""

    slots: torch.Tensor  # (K·CHUNK,) table row per slot; the padding row where a list ends
    chunk_center: torch.Tensor  # (K, 2) pixel coordinates (x, y) of the chunk's tile centre
    chunk_tile: torch.Tensor  # (K,) flat tile id (camera-major, then row-major) of each chunk
    chunk_first: torch.Tensor  # (K,) index of the first chunk of the same tile
    chunk_last: torch.Tensor  # (K,) index of the last chunk of the same tile
    tiles_x: int
    tiles_y: int
    num_tiles: int  # cameras × tiles_y × tiles_x

    @property
    def num_chunks(self) -> int:
        return self.chunk_tile.numel()


def _expand(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For counts (n,): the owner i of each of the Σ counts items and the item's index inside its owner."""
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    start = torch.cumsum(counts, 0) - counts
    return owner, torch.arange(owner.numel(), device=counts.device) - start.index_select(0, owner)


def plan_tiles(u: torch.Tensor, v: torch.Tensor, rx: torch.Tensor, ry: torch.Tensor, camera: torch.Tensor,
               num_cameras: int, width: int, height: int) -> TilePlan:
    """Bin table rows (sorted by camera, then depth) to tiles and lay each tile's list out in chunks.

    A Gaussian covers the pixels whose centres lie in its (rx, ry) box around (u, v); outside
    it alpha is below 1/255, so the box alone decides tile membership.
    """
    G = u.numel()
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    num_tiles = num_cameras * tiles_x * tiles_y
    x0 = torch.ceil(u - rx - 0.5).clamp_min(0).long()
    x1 = torch.floor(u + rx - 0.5).clamp_max(width - 1).long()
    y0 = torch.ceil(v - ry - 0.5).clamp_min(0).long()
    y1 = torch.floor(v + ry - 0.5).clamp_max(height - 1).long()
    tx0, ty0 = torch.div(x0, TILE, rounding_mode="floor"), torch.div(y0, TILE, rounding_mode="floor")
    nx = (torch.div(x1, TILE, rounding_mode="floor") - tx0 + 1).clamp_min(0) * (x1 >= x0)
    ny = (torch.div(y1, TILE, rounding_mode="floor") - ty0 + 1).clamp_min(0) * (y1 >= y0)
    # every (Gaussian, tile row) of the boxes, then every (Gaussian, tile): no integer division
    row_owner, dy = _expand(ny)
    row_start = (camera.index_select(0, row_owner) * tiles_y + ty0.index_select(0, row_owner) + dy) * tiles_x \
        + tx0.index_select(0, row_owner)
    pair_row, dx = _expand(nx.index_select(0, row_owner))
    tile = row_start.index_select(0, pair_row) + dx
    key_dtype = torch.int32 if num_tiles < 2**31 else torch.int64  # int32 sorts faster
    tile, perm = torch.sort(tile.to(key_dtype), stable=True)  # stable: each list stays front to back
    gaussian, tile = row_owner.index_select(0, pair_row.index_select(0, perm)), tile.long()

    per_tile = torch.bincount(tile, minlength=num_tiles)
    chunks = torch.div(per_tile + CHUNK - 1, CHUNK, rounding_mode="floor")
    chunk_start = torch.cumsum(chunks, 0) - chunks
    rank = torch.arange(tile.numel(), device=u.device) - (torch.cumsum(per_tile, 0) - per_tile).index_select(0, tile)
    slots = torch.full((int(chunks.sum()) * CHUNK,), G, dtype=torch.long, device=u.device)
    slots[chunk_start.index_select(0, tile) * CHUNK + rank] = gaussian
    chunk_tile = torch.repeat_interleave(torch.arange(num_tiles, device=u.device), chunks)
    in_image = chunk_tile % (tiles_x * tiles_y)
    center = torch.stack([in_image % tiles_x, torch.div(in_image, tiles_x, rounding_mode="floor")], 1) * TILE
    return TilePlan(slots=slots, chunk_center=center + TILE // 2, chunk_tile=chunk_tile,
                    chunk_first=chunk_start.index_select(0, chunk_tile),
                    chunk_last=(chunk_start + chunks - 1).index_select(0, chunk_tile),
                    tiles_x=tiles_x, tiles_y=tiles_y, num_tiles=num_tiles)


def _pixel_monomials(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(6, TILE²): 1, x, y, -½x², -½y², -xy of each pixel centre's offset from its tile centre."""
    o = torch.arange(TILE, dtype=dtype, device=device) + 0.5 - TILE / 2
    oy, ox = (t.reshape(-1) for t in torch.meshgrid(o, o, indexing="ij"))  # row-major inside the tile
    return torch.stack([torch.ones_like(ox), ox, oy, -0.5 * ox * ox, -0.5 * oy * oy, -ox * oy])


def _exponent_coefficients(rows: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """Per slot, the coefficients (K, CHUNK, 6) of log alpha in the monomials of ``_pixel_monomials``.

    ``rows`` (K, CHUNK, TABLE_COLUMNS) are the slots' table rows, ``center`` (K, 2) the tiles'
    centres. With (a, b) = Gaussian centre - tile centre and (x, y) = pixel offset from the
    tile centre, d = (x - a, y - b) and log alpha = log o - ½ dᵀΣ⁻¹d is a quadratic in (x, y).
    Offsets from the tile centre keep the coefficients small, so float32 loses nothing.
    """
    A, B, C = rows[..., CONIC].unbind(-1)
    a = rows[..., U] - center[:, :1]
    b = rows[..., V] - center[:, 1:]
    ca = A * a + B * b  # coefficient of x
    cb = C * b + B * a  # coefficient of y
    return torch.stack([rows[..., LOG_OPACITY] - 0.5 * (a * ca + b * cb), ca, cb, A, C, B], dim=-1)


def _earlier_in_segment(x: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """Per row, the sum of the earlier rows of its segment (the rows of a segment are consecutive)."""
    before = torch.cumsum(x, 0) - x
    return before - before.index_select(0, first)


def _later_in_segment(x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Per row, the sum of the later rows of its segment."""
    running = torch.cumsum(x, 0)
    return running.index_select(0, last) - running


def _running_(x: torch.Tensor, op: str) -> torch.Tensor:
    """In-place inclusive cumulative ``op`` ("mul_" or "add_") along dim 1 of (K, CHUNK, …).

    CHUNK slice updates: measured 2-3x faster than torch.cumprod / cumsum along a middle dim.
    """
    for k in range(1, x.shape[1]):
        getattr(x[:, k], op)(x[:, k - 1])
    return x


def _just_below(x: float, dtype: torch.dtype) -> float:
    """The largest ``dtype`` value below ``x`` (threshold() keeps values strictly above its cut)."""
    t = torch.tensor(x, dtype=dtype)
    return float(torch.nextafter(t, torch.full_like(t, -math.inf)))


class _Composite(torch.autograd.Function):
    """Front-to-back compositing of all chunks, with a hand-written backward.

    Forward: alpha = min(ALPHA_MAX, exp(coef @ monomials)), 0 below ALPHA_MIN; T_k = prod_{j<k}
    (1 - alpha_j) along the tile's list; weight w_k = alpha_k T_k while T_{k+1} > T_MIN; output
    = Σ_k w_k · features_k. Backward (as in 3DGS): with g_k = features_k · dL/doutput and
    S_k = Σ_{j>k} g_j w_j over the tile's list, dL/dlog-alpha_k = g_k w_k - S_k alpha_k / (1 - alpha_k)
    (0 where alpha was clamped). The runtime is memory traffic, so full-size (K, CHUNK, TILE²)
    tensors are few and updated in place: the forward keeps alpha and w, the backward allocates three.
    """

    @staticmethod
    def forward(ctx, coef: torch.Tensor, monomials: torch.Tensor, feats: torch.Tensor,
                first: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        alpha = torch.matmul(coef, monomials).clamp_min_(LOG_ALPHA_FLOOR).exp_().clamp_(max=ALPHA_MAX)
        torch.nn.functional.threshold(alpha, _just_below(ALPHA_MIN, alpha.dtype), 0.0, inplace=True)  # skip < 1/255
        after = _running_(1 - alpha, "mul_")  # transmittance after each slot, within the chunk
        log_carry = _earlier_in_segment(after[:, -1].double().log(), first).clamp_min(math.log(CARRY_FLOOR))
        carry = log_carry.exp().to(alpha.dtype)[:, None]  # (K, 1, TILE²): from the earlier chunks of the tile
        after.mul_(carry)  # T_{k+1}
        weight = torch.cat([carry, after[:, :-1]], dim=1)  # T_k
        weight.mul_(after.gt_(T_MIN)).mul_(alpha)  # stop before the Gaussian that takes T to T_MIN or below
        ctx.save_for_backward(monomials, feats, last, alpha, weight)
        return torch.bmm(feats.transpose(1, 2), weight)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        monomials, feats, last, alpha, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_feats = torch.bmm(weight, grad_out.transpose(1, 2))
        gw = torch.bmm(feats, grad_out).mul_(weight)  # g_k w_k
        behind = _running_(gw.clone(), "add_")  # prefix sums within the chunk
        total = behind[:, -1].clone()
        later = _later_in_segment(total.double(), last).to(alpha.dtype)
        behind.neg_().add_((total + later)[:, None])  # S_k
        odds = torch.div(alpha, 1 - alpha)
        grad = gw.sub_(behind.mul_(odds))
        grad.mul_(torch.neg(alpha, out=odds).add_(ALPHA_MAX).sign_())  # 0 where alpha was clamped
        return torch.matmul(grad, monomials.T), None, grad_feats, None, None


def composite(table: torch.Tensor, plan: TilePlan) -> torch.Tensor:
    """Front-to-back alpha compositing of every tile: (tiles, 5, TILE²) sums of R, G, B, alpha, depth."""
    rows = table.index_select(0, plan.slots).view(-1, CHUNK, TABLE_COLUMNS)
    coef = _exponent_coefficients(rows, plan.chunk_center.to(table.dtype))
    feats = torch.cat([rows[..., RGB], torch.ones_like(rows[..., :1]), rows[..., DEPTH, None]], -1)
    per_chunk = _Composite.apply(coef, _pixel_monomials(table.dtype, table.device), feats, plan.chunk_first,
                                 plan.chunk_last)  # (K, 5, TILE²)
    out = torch.zeros(plan.num_tiles, FEATURES, TILE * TILE, dtype=table.dtype, device=table.device)
    return out.index_add(0, plan.chunk_tile, per_chunk)


def draw_order(proj: Projection, view_opacities: torch.Tensor, width: int, height: int
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flat (B·C·N) indices of the Gaussians each camera draws, in (camera, depth) order, and
    their extents (rx, ry) in pixels, all (G,). ``view_opacities`` (B, C, N). No gradients."""
    N = proj.u.shape[-1]
    op = view_opacities
    # gsplat's opacity-aware extent: where alpha drops to 1/255, at most 3.33 sigma
    extend = torch.sqrt(2.0 * torch.log((op / ALPHA_MIN).clamp_min(1.0))).clamp(max=EXTENT_SIGMAS)
    rx = torch.ceil(extend * torch.sqrt(proj.cov_xx))
    ry = torch.ceil(extend * torch.sqrt(proj.cov_yy))
    u, v = proj.u, proj.v
    drawn = proj.valid & (op >= ALPHA_MIN) & (u + rx > 0) & (u - rx < width) & (v + ry > 0) & (v - ry < height)
    drawn = torch.nonzero(drawn.reshape(-1)).squeeze(1)
    # one integer sort on (camera, depth): drawn depths are positive, so the IEEE bits of their
    # float32 values sort like the depths (ties, as in gsplat, at float32 resolution)
    depth_bits = proj.depth.reshape(-1).index_select(0, drawn).float().view(torch.int32).long()
    key = torch.div(drawn, N, rounding_mode="floor") * 2**32 + depth_bits
    order = drawn.index_select(0, torch.sort(key, stable=True)[1])
    return order, rx.reshape(-1).index_select(0, order), ry.reshape(-1).index_select(0, order)


def gaussian_table(proj: Projection, view_opacities: torch.Tensor, colors: torch.Tensor,
                   order: torch.Tensor) -> torch.Tensor:
    """(G + 1, TABLE_COLUMNS): one row per drawn (camera, Gaussian) in ``order``, then the padding row."""
    B, C, N = proj.u.shape
    per_view = torch.cat([proj.u[..., None], proj.v[..., None], proj.conic, proj.depth[..., None],
                          view_opacities[..., None]], -1).reshape(-1, 7).index_select(0, order)
    own = torch.div(order, C * N, rounding_mode="floor") * N + order % N  # the Gaussian's own colour
    padding = torch.zeros(1, TABLE_COLUMNS, dtype=colors.dtype, device=colors.device)
    padding[0, LOG_OPACITY] = EMPTY_LOG_OPACITY
    rows = torch.cat([per_view[:, :6], per_view[:, 6:].log(),  # log after selecting: drawn opacities are >= 1/255
                      colors.reshape(-1, 3).index_select(0, own)], 1)
    return torch.cat([rows, padding])


def rasterize_torch(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
                    colors: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
                    background: torch.Tensor, mode: RasterizeMode = "antialiased"
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RGB (B, C, H, W, 3), alpha (B, C, H, W, 1), expected depth (B, C, H, W, 1) (0 where alpha is 0)."""
    if mode not in RASTERIZE_MODES:
        raise ValueError(f"unknown rasterize mode {mode!r}; choose one of {RASTERIZE_MODES}")
    B, N = means.shape[:2]
    C = viewmats.shape[1]
    out_shape = (B, C, height, width)
    if N == 0:
        return _empty(background, out_shape, means.dtype, means.device)
    if means.device.type == "cpu":
        keep_freed_memory()
    proj = project(means, quats, scales, viewmats, Ks, width, height)
    view_opacities = opacities[:, None] * proj.compensation if mode == "antialiased" else \
        opacities[:, None].expand(B, C, N)
    with torch.no_grad():
        order, rx, ry = draw_order(proj, view_opacities.detach(), width, height)
        if order.numel() == 0:
            return _empty(background, out_shape, means.dtype, means.device)
        plan = plan_tiles(proj.u.reshape(-1).index_select(0, order), proj.v.reshape(-1).index_select(0, order),
                          rx, ry, torch.div(order, N, rounding_mode="floor"), B * C, width, height)
    tiles = composite(gaussian_table(proj, view_opacities, colors, order), plan)
    image = (tiles.view(B, C, plan.tiles_y, plan.tiles_x, FEATURES, TILE, TILE).permute(0, 1, 2, 5, 3, 6, 4)
             .reshape(B, C, plan.tiles_y * TILE, plan.tiles_x * TILE, FEATURES)[:, :, :height, :width])
    rgb_acc, a_acc, d_acc = image[..., :3], image[..., 3:4], image[..., 4:5]
    rgb = rgb_acc + (1 - a_acc) * background.to(means.dtype)
    exp_depth = torch.where(a_acc > 0, d_acc / a_acc.clamp_min(1e-12), torch.zeros_like(d_acc))
    return rgb, a_acc, exp_depth


def _empty(background: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype, dev: torch.device
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rgb = background.to(dtype=dtype, device=dev).expand(*shape, 3).clone()
    zeros = torch.zeros(*shape, 1, dtype=dtype, device=dev)
    return rgb, zeros, zeros.clone()
