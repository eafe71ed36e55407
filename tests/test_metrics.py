import math

import numpy as np
import pytest
import torch

from partrm_gym.metrics import chamfer_distance, load_lpips, lpips_available, psnr, ssim


def test_psnr_known_values():
    a = torch.full((3, 8, 8), 0.5)
    assert math.isinf(float(psnr(a, a)))
    assert float(psnr(a + 0.1, a)) == pytest.approx(20.0, abs=1e-4)  # mse 0.01
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[:, :4] = True
    b = a.clone()
    b[:, 4:] += 0.5  # only outside the mask
    assert math.isinf(float(psnr(b, a, mask)))
    with pytest.raises(ValueError, match="no pixel"):
        psnr(a, a, torch.zeros(1, 8, 8, dtype=torch.bool))


def test_ssim_identity_and_degradation():
    rng = np.random.default_rng(0)
    img = rng.random((16, 16, 3))
    assert ssim(img, img) == pytest.approx(1.0)
    noisy = np.clip(img + rng.normal(0, 0.2, img.shape), 0, 1)
    assert ssim(noisy, img) < 0.9
    assert ssim(torch.from_numpy(img).permute(2, 0, 1), torch.from_numpy(img).permute(2, 0, 1)) == pytest.approx(1.0)


def test_lpips_reports_unavailable_without_weights(tmp_path, capsys):
    ok, reason = lpips_available(None)
    assert not ok and "no local LPIPS weights" in reason
    assert load_lpips(None) is None
    assert "LPIPS unavailable" in capsys.readouterr().out
    ok, reason = lpips_available(tmp_path / "missing.pth")
    assert not ok and "does not exist" in reason


def test_chamfer_known_values():
    a = np.array([[0.0, 0, 0], [1, 0, 0]])
    assert chamfer_distance(a, a) == 0.0
    b = a + np.array([0, 0.5, 0])
    assert chamfer_distance(a, b) == pytest.approx(0.5)
    big_a = np.random.default_rng(0).random((9000, 3))
    assert chamfer_distance(big_a, big_a + 1e-3) == pytest.approx(np.sqrt(3) * 1e-3, rel=1e-2)
    # weights: a far-away point with weight 0 does not count in the a->b term
    c = np.array([[0.0, 0, 0], [10, 0, 0]])
    assert chamfer_distance(c, a[:1]) == pytest.approx(2.5)  # (mean(0, 10) + 0) / 2
    assert chamfer_distance(c, a[:1], weights_a=np.array([1.0, 0.0])) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="empty"):
        chamfer_distance(np.zeros((0, 3)), a)
