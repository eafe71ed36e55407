"""PartRM's released drag modules (drag_embedding: released): each released rule, and the variant's weights round
trip through an LGM-format file (docs/lgm.md lists how it differs from the paper's form)."""

import json
from pathlib import Path

import pytest
import torch

from partrm_gym.model.lgm_frame import released_drag_pixels
from partrm_gym.model.lgm_network import LGMPartRM
from partrm_gym.model.lgm_released_drag import (
    ReleasedDragPositionNet,
    fill_cyclically,
    fourier_features,
    gaussian_blur,
)
from partrm_gym.model.lgm_weights import lgm_config, load_lgm_weights, save_lgm_file

SMALL = Path(__file__).parent / "fixtures" / "lgm" / "small"


def released_config(**overrides):
    return lgm_config(json.loads((SMALL / "config.json").read_text()), drag_embedding="released", **overrides)


def test_blur_is_torchvisions_gaussian_blur():
    tf = pytest.importorskip("torchvision.transforms.functional")
    maps = torch.rand(2, 6, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(gaussian_blur(maps), tf.gaussian_blur(maps, [5, 5], [1.0, 1.0]))


def test_fourier_features_interleave_sin_and_cos_per_frequency():
    p = torch.tensor([[3.0, 7.0]])
    f = fourier_features(p)[0]
    assert f.shape == (32,)
    freq = 100 ** (torch.arange(8) / 8)
    expected = torch.stack([torch.sin(freq * 3), torch.sin(freq * 7), torch.cos(freq * 3), torch.cos(freq * 7)], 1)
    torch.testing.assert_close(f, expected.flatten())


def test_drag_pixels_and_the_released_cell_rule():
    """x (along the width) is the first coordinate and, as released, indexes the map's rows."""
    px = released_drag_pixels(torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.9, 0.1, 0.5, 0.5]]))
    torch.testing.assert_close(px, torch.tensor([[0.5, 0.5, 511.0, 511.0], [461.3, 51.7, 256.5, 256.5]]))
    net = ReleasedDragPositionNet([8], [8], (16, 16))
    with torch.no_grad():
        net.linears_drags[0][4].bias.fill_(1.0)  # every point embeds to a non-zero vector
        net.linears_drags[0][4].weight.zero_()
    (m,) = net(px[1:, None], torch.tensor([True]))  # one drag: start (x 0.9, y 0.1), end at the centre
    start = m[0, 0]  # blurred, peaked at the start's cell
    row, col = divmod(int(start.argmax()), 8)
    assert (row, col) == (7, 0)  # x = 0.9 -> row 7, y = 0.1 -> column 0
    assert divmod(int(m[0, 4].argmax()), 8) == (4, 4)  # the end's map, at the end's cell


def test_masked_slots_repeat_the_real_drags():
    drags = torch.arange(12.0).reshape(1, 3, 4)
    mask = torch.tensor([[False, True, True]])
    filled = fill_cyclically(drags, mask)
    torch.testing.assert_close(filled[0], torch.stack([drags[0, 1], drags[0, 2], drags[0, 1]]))


def test_released_variant_runs_round_trips_and_gives_every_view_view_0s_drags(tmp_path):
    torch.manual_seed(0)
    model = LGMPartRM(released_config()).eval()
    path = save_lgm_file(model, tmp_path / "partrm_small.safetensors", dtype=torch.float32)
    torch.manual_seed(1)
    copy = LGMPartRM(released_config()).eval()
    report = load_lgm_weights(copy, path, progress=False)
    assert report.tensors == len([k for k in model.state_dict() if k.startswith(("unet.", "conv."))])
    g = torch.Generator().manual_seed(0)
    rgb, plucker = torch.rand(1, 4, 3, 64, 64, generator=g), torch.rand(1, 4, 6, 64, 64, generator=g)
    drags = torch.rand(1, 4, 10, 4, generator=g)
    with torch.no_grad():
        out = model(rgb, plucker, drags)
        torch.testing.assert_close(copy(rgb, plucker, drags), out, rtol=0, atol=0)
        assert not torch.equal(out, model(rgb, plucker))  # the released merge is not zero-initialised
        other_views = drags.clone()
        other_views[:, 1:] = torch.rand(1, 3, 10, 4, generator=g)
        assert torch.equal(model(rgb, plucker, other_views), out)  # only view 0's drags are read
    assert model.unused_parameters() == [model.unet.alpha] and not model.unet.alpha.requires_grad
