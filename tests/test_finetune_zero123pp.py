"""Zero123++ fine-tuning runs one step on the CPU with tiny random components, and its pieces behave."""

import pytest
import torch

from partrm_gym.train.data_config import DataConfig
from partrm_gym.train.datagen import merge_manifest, run_shard
from partrm_gym.train.finetune_zero123pp import (
    FinetuneConfig,
    ReferenceAttention,
    Zero123ppParts,
    diffusion_loss,
    finetune,
    grid_batch,
    load_parts,
)

CONTEXT_DIM = 32


def tiny_parts(seed=0):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
                                layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=CONTEXT_DIM,
                                attention_head_dim=8, norm_num_groups=8)
    vae = AutoencoderKL(block_out_channels=(32,), down_block_types=("DownEncoderBlock2D",),
                        up_block_types=("UpDecoderBlock2D",), latent_channels=4, norm_num_groups=8)
    scheduler = DDPMScheduler(num_train_timesteps=100, prediction_type="v_prediction")
    project = torch.nn.Linear(3, CONTEXT_DIM)

    def encode_condition(images):  # stands in for CLIP: a global embedding as a 1-token context
        return project(images.mean(dim=(2, 3)))[:, None]

    return Zero123ppParts(unet, vae, scheduler, encode_condition, lambda n: torch.zeros(n, 1, CONTEXT_DIM))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("z123") / "data"
    run_shard(DataConfig(name="z", categories=("laptop",), test_category="microwave", train_objects_per_category=1,
                         val_objects_per_category=1, test_objects=1, max_parts_per_object=1, states_per_part=2,
                         max_drags=2, input_resolution=16, splatter_resolution=8, view_resolution=16), root,
              progress=False)
    merge_manifest(root)
    return root


def test_reference_attention_makes_the_prediction_depend_on_the_condition():
    parts = tiny_parts()
    refs = ReferenceAttention(parts.unet)
    g = torch.Generator().manual_seed(0)
    noisy, context = torch.randn(1, 4, 24, 16, generator=g), torch.randn(1, 1, CONTEXT_DIM, generator=g)
    t = torch.tensor([50])
    with torch.no_grad():
        a = refs.predict(parts.unet, noisy, torch.randn(1, 4, 8, 8, generator=g), t, context)
        b = refs.predict(parts.unet, noisy, torch.randn(1, 4, 8, 8, generator=g), t, context)
    assert a.shape == noisy.shape and not torch.allclose(a, b)  # the reference tokens are attended to
    assert refs.bank == {} and refs.mode == "off"


def test_grid_layout(data):
    from partrm_gym.train.dataset import PartDragDataset

    item = PartDragDataset(data, "train")[0]
    batch = {k: item[k][None] for k in ("input_rgb", "source_rgb")}
    cond, grid = grid_batch(batch, tile=8)
    assert cond.shape == (1, 3, 8, 8) and grid.shape == (1, 3, 24, 16)
    assert cond.min() >= -1 and grid.max() <= 1
    # tile (row 1, col 0) is dataset view 5 (azimuth 150)
    view5 = torch.nn.functional.interpolate(item["source_rgb"][5][None], size=8, mode="bilinear",
                                            align_corners=False, antialias=True) * 2 - 1
    torch.testing.assert_close(grid[:, :, 8:16, 0:8], view5)


def test_one_step_on_the_cpu_then_resume(data, tmp_path):
    parts = tiny_parts()
    before = {k: v.clone() for k, v in parts.unet.state_dict().items()}
    cfg = FinetuneConfig(data=str(data), out=str(tmp_path / "run"), steps=1, batch_size=2, tile=8, save_every=1,
                         device="cpu", lr=1e-3)
    final = finetune(cfg, parts, progress=False)
    weights = final / "unet" / "diffusion_pytorch_model.safetensors"
    assert weights.is_file() and not list(final.rglob("*.bin"))  # safetensors, no pickles
    after = parts.unet.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert (tmp_path / "run" / "checkpoints" / "step_0000001").is_dir()
    longer = FinetuneConfig(**{**cfg.__dict__, "steps": 2})
    finetune(longer, tiny_parts(), resume=True, progress=False)
    lines = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert lines[0] == "step,loss" and [line.split(",")[0] for line in lines[1:]] == ["1", "2"]  # appended
    assert (tmp_path / "run" / "checkpoints" / "step_0000002").is_dir()


def test_loss_is_finite_and_positive(data):
    from partrm_gym.train.dataset import PartDragDataset

    parts = tiny_parts()
    refs = ReferenceAttention(parts.unet)
    item = PartDragDataset(data, "train")[0]
    cond, grid = grid_batch({k: item[k][None] for k in ("input_rgb", "source_rgb")}, tile=8)
    loss = diffusion_loss(parts, refs, cond, grid, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and loss > 0
    dropped = diffusion_loss(parts, refs, cond, grid, torch.Generator().manual_seed(0), condition_dropout=1.0)
    assert torch.isfinite(dropped) and dropped != loss  # the unconditional branch sees a different input


def test_missing_weights_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="huggingface-cli download sudo-ai/zero123plus-v1.2"):
        load_parts(tmp_path / "nowhere", torch.device("cpu"))
