"""Image and geometry metrics: PSNR, SSIM (scikit-image), LPIPS (local weights only), Chamfer.

LPIPS needs pretrained backbone weights. None are downloaded: :func:`load_lpips` takes a
local file and otherwise reports the metric as unavailable (``None`` plus a reason) — a
number is never invented.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

CHAMFER_CHUNK = 4096  # rows of the distance matrix computed at once


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, max_value: float = 1.0
         ) -> torch.Tensor:
    """PSNR in dB over all elements (or those where ``mask`` is true, broadcast to the images). inf if equal."""
    err = (pred.float() - target.float()) ** 2
    if mask is not None:
        m = mask.expand_as(err).bool()
        if not m.any():
            raise ValueError("psnr: the mask selects no pixel")
        mse = err[m].mean()
    else:
        mse = err.mean()
    return 10 * torch.log10(max_value ** 2 / mse) if mse > 0 else torch.tensor(float("inf"))


def ssim(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> float:
    """SSIM of one image pair, (3, H, W) or (H, W, 3) in [0, 1], with scikit-image's Gaussian-weighted SSIM."""
    a, b = (np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
            for x in (pred, target))
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ {a.shape} vs {b.shape}")
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[-1] != 3:
        a, b = a.transpose(1, 2, 0), b.transpose(1, 2, 0)
    return float(structural_similarity(a, b, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def load_lpips(weights: str | Path | None, device: str | torch.device = "cpu"):
    """An LPIPS(VGG) callable from a local file, or None with a printed reason when unavailable.

    ``weights`` is a safetensors or ``torch.save`` state dict of ``lpips.LPIPS(net='vgg')``
    (backbone and linear layers together), made once on a machine with internet.
    """
    available, reason = lpips_available(weights)
    if not available:
        print(f"LPIPS unavailable: {reason}")
        return None
    import lpips  # type: ignore[import-not-found]

    model = lpips.LPIPS(net="vgg", pretrained=False, pnet_rand=True, verbose=False)
    path = Path(weights)  # type: ignore[arg-type]
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()


def lpips_available(weights: str | Path | None) -> tuple[bool, str]:
    if weights is None:
        return False, "no local LPIPS weights given (pass a file; nothing is downloaded)"
    if not Path(weights).is_file():
        return False, f"LPIPS weights file {weights} does not exist"
    try:
        import lpips  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False, "the `lpips` package is not installed (pip install lpips)"
    return True, ""


def chamfer_distance(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor,
                     weights_a: np.ndarray | torch.Tensor | None = None) -> float:
    """Symmetric Chamfer distance (mean of nearest-neighbour distances both ways, metres).

    ``weights_a`` (e.g. Gaussian opacities) weight the a->b term and each a point's share of
    the b->a term is unaffected (nearest neighbours are searched among all of a).
    """
    A = torch.as_tensor(np.asarray(a), dtype=torch.float32)
    Bp = torch.as_tensor(np.asarray(b), dtype=torch.float32)
    if A.ndim != 2 or Bp.ndim != 2 or A.shape[1] != 3 or Bp.shape[1] != 3:
        raise ValueError(f"chamfer_distance takes (N, 3) and (M, 3) point sets, "
                         f"got {tuple(A.shape)}, {tuple(Bp.shape)}")
    if len(A) == 0 or len(Bp) == 0:
        raise ValueError("chamfer_distance of an empty point set is undefined")
    w = torch.ones(len(A)) if weights_a is None else torch.as_tensor(np.asarray(weights_a), dtype=torch.float32)
    if w.sum() <= 0:
        raise ValueError("chamfer_distance: weights sum to zero")

    def nearest(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.cdist(p[i:i + CHAMFER_CHUNK], q).min(dim=1).values
                          for i in range(0, len(p), CHAMFER_CHUNK)])

    a_to_b = (nearest(A, Bp) * w).sum() / w.sum()
    b_to_a = nearest(Bp, A).mean()
    return float(a_to_b + b_to_a) / 2
