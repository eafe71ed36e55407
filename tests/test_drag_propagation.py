"""Segmenters, drag propagation over the part mask, and transfer to the canonical views."""

import numpy as np
import pytest
import torch

from partrm_gym.cameras import canonical_rig, orbit_camera
from partrm_gym.drags import drags_between_states, to_pixels
from partrm_gym.model.drag_propagation import drags_for_model, propagate_drag, transfer_drags
from partrm_gym.model.segmenters import (
    ClassicalSegmenter,
    SamSegmenter,
    SegmenterUnavailable,
    SimLinkSegmenter,
    make_segmenter,
)
from partrm_gym.scene import Scene

OBS = orbit_camera(40, 25, 1.5, 49.1, 128)


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.fixture
def drawer_scene():
    with Scene.procedural("drawer", 5) as scene:
        scene.set_joint_fractions(np.zeros(len(scene.joints)))
        yield scene


def test_sim_segmenter_returns_the_grabbed_part(drawer_scene):
    frame = drawer_scene.render(OBS)
    part = frame.part_mask(drawer_scene.joints[0])
    rows, cols = np.nonzero(part)
    mask = SimLinkSegmenter(frame, drawer_scene.joints).segment(frame.rgb, (cols[0] + 0.5, rows[0] + 0.5))
    assert np.array_equal(mask, part)
    bg = SimLinkSegmenter(frame, drawer_scene.joints).segment(frame.rgb, (0.5, 0.5))
    assert not bg.any()


def test_classical_segmenter_follows_colour_regions():
    img = np.full((48, 48, 3), 200, np.uint8)
    img[10:30, 8:40] = (180, 60, 40)  # the "part"
    img[30:44, 8:40] = (60, 60, 200)  # a neighbour touching it
    truth = np.zeros((48, 48), bool)
    truth[10:30, 8:40] = True
    mask = ClassicalSegmenter().segment(img, (20.0, 20.0))
    assert _iou(mask, truth) > 0.85


def _tiny_sam():
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    dim, size, patch = 32, 64, 16
    return Sam(
        image_encoder=ImageEncoderViT(img_size=size, patch_size=patch, embed_dim=dim, depth=1, num_heads=2,
                                      out_chans=dim, global_attn_indexes=()),
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(size // patch,) * 2,
                                     input_image_size=(size, size), mask_in_chans=4),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer_dim=dim,
                                 transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
                                 iou_head_depth=1, iou_head_hidden_dim=16),
    )


def test_sam_segmenter_with_tiny_random_model():
    seg = SamSegmenter(sam=_tiny_sam())
    img = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    mask = seg.segment(img, (20.0, 10.0))
    assert mask.shape == (40, 56) and mask.dtype == bool


def test_sam_without_weights_says_what_to_do(tmp_path):
    with pytest.raises(SegmenterUnavailable, match="SAM checkpoint not found.*classical"):
        SamSegmenter(checkpoint=tmp_path / "missing.pth")
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(SegmenterUnavailable, match="cannot be read as a SAM checkpoint"):
        SamSegmenter(checkpoint=bad)
    with pytest.raises(ValueError, match="unknown segmenter"):
        make_segmenter("magic")


def test_propagation_keeps_displacement_and_stays_in_mask(rng):
    mask = np.zeros((32, 32), bool)
    mask[4:12, 10:20] = True
    drag = np.array([0.45, 0.25, 0.55, 0.30])
    out = propagate_drag(drag, mask, 10, rng)
    assert out.shape == (10, 4)
    np.testing.assert_allclose(out[0], drag)
    np.testing.assert_allclose(out[1:, 2:] - out[1:, :2], np.tile(drag[2:] - drag[:2], (9, 1)), atol=1e-12)
    px = (out[1:, :2] * 32).astype(int)
    assert mask[px[:, 1], px[:, 0]].all()


def test_transfer_puts_starts_on_the_part_in_canonical_views(drawer_scene, rng):
    scene = drawer_scene
    a = np.zeros(len(scene.joints))
    b = a.copy()
    b[0] = scene.joints[0].upper
    obs_frame = scene.render(OBS)
    drags = drags_between_states(scene, 0, a, b, OBS, max_drags=10, rng=rng)
    views = canonical_rig(128)
    frames = scene.render_views(views)
    d, m = transfer_drags(drags, OBS, obs_frame.depth, views, [f.depth for f in frames], max_drags=10)
    assert d.shape == (4, 10, 4) and m.shape == (4, 10)
    assert m.sum() > 0
    hits = total = 0
    for v, frame in enumerate(frames):
        uv = to_pixels(d[v][m[v], :2], views[v]).astype(int)
        part = frame.part_mask(scene.joints[0])
        hits += part[uv[:, 1], uv[:, 0]].sum()
        total += len(uv)
    assert hits / total >= 0.9
    assert not m[2].any()  # azimuth 180 looks at the back: the drawer front is occluded


def test_full_pipeline_with_sim_segmenter(drawer_scene, rng):
    frame = drawer_scene.render(OBS)
    rows, cols = np.nonzero(frame.part_mask(drawer_scene.joints[0]))
    start = np.array([(cols[0] + 0.5) / 128, (rows[0] + 0.5) / 128])
    drag = np.concatenate([start, start + [-0.1, 0.05]])
    views = canonical_rig(128)
    d, m = drags_for_model(drag, frame.rgb, OBS, frame.depth, SimLinkSegmenter(frame, drawer_scene.joints), views,
                           [f.depth for f in drawer_scene.render_views(views)], 10, rng)
    assert m.sum() >= 10  # propagated drags visible in at least the front views
