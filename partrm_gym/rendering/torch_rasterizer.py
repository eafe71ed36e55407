"""A differentiable 3D Gaussian rasterizer in plain PyTorch, fast enough for 2 CPU cores.

It follows the 3DGS rules gsplat implements (EWA projection with the 1.3×fov clamp of the
Jacobian, 0.3 px² dilation, a 3-sigma square extent, alpha = min(0.99, o·exp(-½ d^T Σ⁻¹ d)),
skip alpha < 1/255, stop once transmittance would fall below 1e-4, pixel centres at
i + 0.5), but it does not loop over tiles: every (Gaussian, pixel) pair inside a
Gaussian's 3-sigma box is one element of a flat tensor.

1. Gaussians are sorted by depth per camera; pairs are generated in that order.
2. A *stable* radix sort by pixel id then yields, per pixel, its Gaussians front to back
   (this is the per-tile depth sort of 3DGS, done once for all pixels).
3. Front-to-back compositing is a segmented scan: transmittance T_k = exp(Σ_{j<k} log(1-α_j))
   within each pixel's segment, from one float64 cumsum; colour, alpha and depth are segment
   sums read off a second cumsum at the segment ends.

Everything is autograd-differentiable w.r.t. means, scales, quaternions, opacities and
colours (the pair lists are constants, as tile lists are in 3DGS). Difference to gsplat:
gsplat evaluates every pixel of the 16×16 tiles a Gaussian's box touches; this evaluates
the box only, so pixels outside 3 sigma (alpha < ~1% of the opacity) are left out.
"""

from __future__ import annotations

import math

import torch

NEAR_PLANE = 0.01
FAR_PLANE = 1e10
EPS2D = 0.3  # px², added to the 2D covariance (gsplat eps2d, "classic" mode)
EXTENT_SIGMAS = 3.33  # gsplat's cap; below it the extent shrinks where alpha would drop under 1/255
ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4
FOV_MARGIN = 0.3  # the Jacobian is evaluated at x/z, y/z clamped to the image plus 0.3 × the half-fov tangent


def quat_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """(…, 4) wxyz unit quaternions -> (…, 3, 3) rotation matrices."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(*q.shape[:-1], 3, 3)


def project(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, viewmats: torch.Tensor,
            Ks: torch.Tensor, width: int, height: int) -> dict[str, torch.Tensor]:
    """EWA projection of (B, N) Gaussians into (B, C) cameras: 2D means, conics, radii, depths."""
    R = viewmats[..., :3, :3]  # (B, C, 3, 3)
    t = viewmats[..., :3, 3]
    p = torch.einsum("bcij,bnj->bcni", R, means) + t[:, :, None]  # (B, C, N, 3)
    x, y, z = p.unbind(-1)
    Rq = quat_to_rotmat(quats)  # (B, N, 3, 3)
    M = Rq * scales[..., None, :]
    cov3 = M @ M.transpose(-1, -2)  # (B, N, 3, 3)
    cov_cam = R[:, :, None] @ cov3[:, None] @ R[:, :, None].transpose(-1, -2)  # (B, C, N, 3, 3)
    fx, fy = Ks[..., 0, 0][..., None], Ks[..., 1, 1][..., None]
    cx, cy = Ks[..., 0, 2][..., None], Ks[..., 1, 2][..., None]
    zs = z.clamp_min(NEAR_PLANE)
    margin_x, margin_y = FOV_MARGIN * 0.5 * width / fx, FOV_MARGIN * 0.5 * height / fy
    tx = zs * torch.minimum((width - cx) / fx + margin_x, torch.maximum(-(cx / fx + margin_x), x / zs))
    ty = zs * torch.minimum((height - cy) / fy + margin_y, torch.maximum(-(cy / fy + margin_y), y / zs))
    zero = torch.zeros_like(zs)
    J = torch.stack([fx / zs, zero, -fx * tx / zs ** 2, zero, fy / zs, -fy * ty / zs ** 2], dim=-1)
    J = J.reshape(*zs.shape, 2, 3)
    cov2 = J @ cov_cam @ J.transpose(-1, -2)
    a = cov2[..., 0, 0] + EPS2D
    b = cov2[..., 0, 1]
    c = cov2[..., 1, 1] + EPS2D
    det = a * c - b * b
    det_safe = det.clamp_min(1e-12)
    conic = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)  # (A, B, C) of Σ⁻¹
    u = fx * x / zs + cx
    v = fy * y / zs + cy
    valid = (z > NEAR_PLANE) & (z < FAR_PLANE) & (det > 0) & torch.isfinite(u) & torch.isfinite(v)
    return {"u": u, "v": v, "conic": conic, "cov_xx": a, "cov_yy": c, "depth": z, "valid": valid}


def _box_sizes(max_side: int) -> list[int]:
    """Odd square box sides used as buckets: every odd side up to 15, coarser steps above."""
    sizes, side = [], 3
    while side < max_side:
        sizes.append(side)
        side += 2 if side < 15 else 2 * (side // 8)
    return sizes + [max(max_side, 3) | 1]


def _bucketed_alpha(table: torch.Tensor, half: torch.Tensor, width: int, height: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (Gaussian, pixel) pair that passes the 3DGS tests, with its (differentiable) alpha.

    Gaussians are grouped by the side of a square box centred on them that holds their
    extent (``half`` = half side), so each group is one broadcast (n, S, S) computation
    instead of a gather per pair. The box is a superset of the set {alpha >= 1/255}, which
    alone (with power <= 0 and the image bounds) decides which pairs are kept — the same set
    gsplat's tiles keep. Returns (Gaussian row in ``table``, pixel x, pixel y, alpha).
    """
    side = 2 * half + 1
    sizes = _box_sizes(int(side.max()))
    bucket = torch.bucketize(side, torch.tensor(sizes))
    out_g, out_x, out_y, out_a = [], [], [], []
    for k, S in enumerate(sizes):
        idx = torch.nonzero(bucket == k).squeeze(1)
        if idx.numel() == 0:
            continue
        rows = table.index_select(0, idx)
        u, v, A, B, C, op = (rows[:, i] for i in range(6))
        offs = torch.arange(S) - S // 2
        x = u.detach().floor().long()[:, None] + offs  # (n, S)
        y = v.detach().floor().long()[:, None] + offs
        dx = (x + 0.5 - u[:, None])[:, None, :]  # (n, 1, S)
        dy = (y + 0.5 - v[:, None])[:, :, None]  # (n, S, 1)
        power = -0.5 * (A[:, None, None] * dx * dx + C[:, None, None] * dy * dy) - B[:, None, None] * dx * dy
        alpha = torch.clamp(op[:, None, None] * torch.exp(power), max=ALPHA_MAX)
        inside = ((x >= 0) & (x < width))[:, None, :] & ((y >= 0) & (y < height))[:, :, None]
        keep = torch.nonzero(((power <= 0) & (alpha >= ALPHA_MIN) & inside).reshape(-1)).squeeze(1)
        i = torch.div(keep, S * S, rounding_mode="floor")
        rem = keep - i * S * S
        sy = torch.div(rem, S, rounding_mode="floor")
        out_g.append(idx.index_select(0, i))
        out_x.append(x.reshape(-1).index_select(0, i * S + rem - sy * S))
        out_y.append(y.reshape(-1).index_select(0, i * S + sy))
        out_a.append(alpha.reshape(-1).index_select(0, keep))
    return torch.cat(out_g), torch.cat(out_x), torch.cat(out_y), torch.cat(out_a)


def rasterize_torch(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
                    colors: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int,
                    background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RGB (B, C, H, W, 3), alpha (B, C, H, W, 1), expected depth (B, C, H, W, 1) (0 where alpha is 0)."""
    B, N = means.shape[:2]
    C = viewmats.shape[1]
    dev, dtype = means.device, means.dtype
    n_pix = B * C * height * width
    out_shape = (B, C, height, width)
    if n_pix >= 2**31:
        raise ValueError("too many pixels in one call; render fewer cameras or scenes at once")
    if N == 0:
        return _empty(background, out_shape, dtype, dev)
    proj = project(means, quats, scales, viewmats, Ks, width, height)
    op = opacities[:, None].expand(B, C, N).detach()
    # gsplat's extent: min(3.33, opacity-aware) sigmas per axis; Gaussians below 1/255 opacity never draw
    extend = torch.sqrt(2.0 * torch.log((op / ALPHA_MIN).clamp_min(1.0))).clamp(max=EXTENT_SIGMAS)
    rx = torch.ceil(extend * torch.sqrt(proj["cov_xx"].detach()))
    ry = torch.ceil(extend * torch.sqrt(proj["cov_yy"].detach()))
    ud, vd = proj["u"].detach(), proj["v"].detach()
    valid = proj["valid"] & (op >= ALPHA_MIN) & (ud + rx > 0) & (ud - rx < width) & (vd + ry > 0) & (vd - ry < height)

    # 1. visible Gaussians sorted by (camera, depth); their parameters packed in that order
    cam = torch.arange(B * C, device=dev).repeat_interleave(N)
    vis = torch.nonzero(valid.reshape(-1)).squeeze(1)
    if vis.numel() == 0:
        return _empty(background, out_shape, dtype, dev)
    depth = proj["depth"].reshape(-1)
    by_depth = vis[torch.argsort(depth.detach()[vis], stable=True)]
    order = by_depth[torch.argsort(cam[by_depth], stable=True)]
    src = torch.div(order, C * N, rounding_mode="floor") * N + order % N  # the Gaussian's own parameters
    table = torch.cat([proj["u"].reshape(-1, 1)[order], proj["v"].reshape(-1, 1)[order],
                       proj["conic"].reshape(-1, 3)[order], opacities.reshape(-1, 1)[src],
                       depth.reshape(-1, 1)[order], colors.reshape(-1, 3)[src]], dim=1)
    half = torch.maximum(rx.reshape(-1)[order], ry.reshape(-1)[order]).long()

    # 2. pairs passing the alpha tests; per pixel front to back by a stable radix sort on the
    #    depth rank (= table row) followed by a stable one on the pixel
    g, px, py, alpha = _bucketed_alpha(table, half, width, height)
    with torch.no_grad():
        by_rank = torch.sort(g.to(torch.int32), stable=True)[1]
        pix = (cam[order].index_select(0, g) * (height * width) + py * width + px).to(torch.int32)
        pix, by_pix = torch.sort(pix.index_select(0, by_rank), stable=True)
        perm = by_rank.index_select(0, by_pix)
        g = g.index_select(0, perm)
    alpha = alpha.index_select(0, perm)
    rows = table[:, 6:10].index_select(0, g)  # depth, RGB

    # 3. segmented front-to-back compositing: T_k = prod_{j<k} (1 - alpha_j) within each pixel
    pix = pix.long()
    first = torch.ones(pix.numel(), dtype=torch.bool, device=dev)
    first[1:] = pix[1:] != pix[:-1]
    seg_start = torch.nonzero(first).squeeze(1)
    seg_id = torch.cumsum(first, 0) - 1
    log1m = torch.log1p(-alpha)
    excl = torch.cumsum(log1m.double(), 0) - log1m.double()  # float64: the running sum spans all pixels
    log_T = (excl - excl.index_select(0, seg_start).index_select(0, seg_id)).to(dtype)
    contributes = (log_T + log1m) >= math.log(T_MIN)  # 3DGS stops before T would drop below 1e-4
    weight = alpha * torch.exp(log_T) * contributes
    feats = torch.cat([rows[:, 1:4], torch.ones_like(alpha)[:, None], rows[:, 0:1]], dim=1)
    image = torch.zeros(n_pix, 5, dtype=dtype, device=dev).index_add(0, pix, weight[:, None] * feats)
    rgb_acc, a_acc, d_acc = image[:, :3], image[:, 3:4], image[:, 4:5]
    rgb = rgb_acc + (1 - a_acc) * background.to(dtype)
    exp_depth = torch.where(a_acc > 0, d_acc / a_acc.clamp_min(1e-12), torch.zeros_like(d_acc))
    return rgb.reshape(*out_shape, 3), a_acc.reshape(*out_shape, 1), exp_depth.reshape(*out_shape, 1)


def _empty(background: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype, dev: torch.device
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rgb = background.to(dtype=dtype, device=dev).expand(*shape, 3).clone()
    zeros = torch.zeros(*shape, 1, dtype=dtype, device=dev)
    return rgb, zeros, zeros.clone()
