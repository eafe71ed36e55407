"""The PartRM network: shapes and activations, zero-initialised drag injection, cross-view attention, sizes."""

import pytest
import torch
from conftest import MINI, mini_inputs

from partrm_gym.config import load_config
from partrm_gym.model.config import ModelConfig
from partrm_gym.model.partrm import PartRM


def test_output_shape_and_activation_ranges():
    torch.manual_seed(0)
    model = PartRM(MINI)
    out = model(*mini_inputs())
    assert out.shape == (2, 4, 14, MINI.output_size, MINI.output_size) and MINI.output_size == 8
    assert ((out[:, :, 3] >= 0) & (out[:, :, 3] <= 1)).all()  # opacity
    assert (out[:, :, 4:7] > 0).all()  # scales
    torch.testing.assert_close(out[:, :, 7:11].norm(dim=2), torch.ones(2, 4, 8, 8))  # unit quaternions
    assert ((out[:, :, 11:14] >= 0) & (out[:, :, 11:14] <= 1)).all()  # RGB
    # positions start on their pixel's ray, near the rig sphere
    dist = (out[:, :, 0:3] - model.ray_o).norm(dim=2)
    assert ((dist > MINI.rig_radius - MINI.depth_range - 0.1) & (dist < MINI.rig_radius + MINI.depth_range + 0.1)).all()


def test_drags_do_not_change_output_at_initialisation():
    torch.manual_seed(0)
    model = PartRM(MINI)
    images, plucker, drags, mask = mini_inputs()
    static = model(images, plucker)
    assert torch.equal(model(images, plucker, drags, mask), static)


def test_after_one_step_on_a_drag_dependent_target_drags_matter():
    torch.manual_seed(0)
    model = PartRM(MINI)
    images, plucker, drags, mask = mini_inputs()
    target = model(images, plucker).detach() + drags[..., :1, :1, None].expand(-1, -1, 14, 8, 8)[..., :1].mean()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = ((model(images, plucker, drags, mask) - target) ** 2).mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        with_drags = model(images, plucker, drags, mask)
        other_drags = model(images, plucker, torch.rand_like(drags), mask)
    assert not torch.allclose(with_drags, other_drags)
    # masked-out drags are ignored
    with torch.no_grad():
        none_valid = model(images, plucker, drags, torch.zeros_like(mask))
        assert torch.allclose(none_valid, model(images, plucker, torch.rand_like(drags), torch.zeros_like(mask)))


def test_attention_mixes_views():
    torch.manual_seed(0)
    model = PartRM(MINI).eval()
    images, plucker, _, _ = mini_inputs(B=1)
    base = model(images, plucker)
    changed = images.clone()
    changed[:, 0] = torch.rand_like(changed[:, 0])
    out = model(changed, plucker)
    assert not torch.allclose(out[:, 2], base[:, 2])  # view 2's Gaussians depend on view 0's pixels


@pytest.mark.parametrize("name, lo, hi", [("tiny", 2e6, 5e6), ("base", 40e6, 80e6), ("paper", 300e6, 450e6)])
def test_shipped_sizes(name, lo, hi):
    cfg = load_config(ModelConfig, f"model/{name}")
    with torch.device("meta"):  # paper is LGM-big sized: count it without allocating memory
        model = PartRM(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert lo <= n <= hi, f"{name}: {n / 1e6:.1f}M parameters"


def test_bad_configs():
    with pytest.raises(ValueError, match="fewer up levels"):
        ModelConfig(down_channels=(8, 16), down_attention=(False, False), drag_levels=(True, True),
                    up_channels=(16, 8), up_attention=(False, False))
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(input_size=60)


def test_bench_model_times_each_config_and_batch(tmp_path, capsys):
    import argparse

    from partrm_gym.app.bench.model import bench_model
    from partrm_gym.config import save_config

    save_config(MINI, tmp_path / "mini.yaml")
    args = argparse.Namespace(configs=[str(tmp_path / "mini.yaml")], batches=[1, 2], repeats=1, device="cpu",
                              out=str(tmp_path / "model.md"))
    text = bench_model(args)
    rows = [line for line in text.splitlines() if line.startswith("| mini |")]
    assert len(rows) == 2 and all("16² → 8²" in r for r in rows)
    assert [r.split("|")[5].strip() for r in rows] == ["1", "2"]
    params = sum(p.numel() for p in PartRM(MINI).parameters())
    assert f"{params / 1e6:.2f} M" in rows[0]
    assert "bench model --configs" in (tmp_path / "model.md").read_text()
