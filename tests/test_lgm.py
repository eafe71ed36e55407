"""The lgm layout: LGM's network reproduced from the fixtures alone, LGM-format weights placed by name (with clear
errors), LGM's conventions mapped to the project's, the paper's zero-initialised drags, checkpoints and WorldModel."""

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from partrm_gym.cameras import RigConfig, canonical_rig, plucker_rays
from partrm_gym.model.checkpoint import load_checkpoint, save_checkpoint
from partrm_gym.model.config import ModelConfig
from partrm_gym.model.lgm_frame import (
    LGM_TO_PROJECT_QUAT,
    PROJECT_TO_LGM,
    frame_scale,
    lgm_plucker_rays,
    plucker_to_lgm,
    points_from_lgm,
    points_to_lgm,
    quats_from_lgm,
    quats_to_lgm,
    splatter_from_lgm,
    splatter_to_lgm,
)
from partrm_gym.model.lgm_network import LGMPartRM, lgm_gaussians
from partrm_gym.model.lgm_weights import (
    LGMWeightsError,
    check_lgm_keys,
    lgm_config,
    lgm_shapes,
    load_lgm_weights,
    save_lgm_file,
)
from partrm_gym.model.networks import build_network
from partrm_gym.model.world_model import WorldModel

FIXTURES = Path(__file__).parent / "fixtures" / "lgm"
SMALL = FIXTURES / "small"
TOLERANCE = 1e-4  # absolute, float32 from the fp16 weights


def small_config(**overrides) -> ModelConfig:
    return lgm_config(json.loads((SMALL / "config.json").read_text()), **overrides)


def small_model(**overrides) -> LGMPartRM:
    torch.manual_seed(0)
    model = LGMPartRM(small_config(**overrides))
    load_lgm_weights(model, SMALL / "model.safetensors", progress=False)
    return model.eval()


def fixture_inputs(cfg: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixture's RGB [1, 4, 3, H, W] and the project's own Plücker rays of the model's input rig."""
    rgb = torch.from_numpy(np.load(SMALL / "input_rgb.npy")).permute(0, 3, 1, 2)[None]
    plucker = torch.stack([plucker_rays(c) for c in canonical_rig(cfg.input_size, cfg.input_rig)])[None]
    return rgb, plucker


def rotation_matrix(q: torch.Tensor) -> torch.Tensor:
    """wxyz unit quaternions (..., 4) -> rotation matrices (..., 3, 3)."""
    w, x, y, z = q.unbind(-1)
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(*q.shape[:-1],
                                                                                                     3, 3)


# -- the fixture, from the RGB alone -------------------------------------------------------------------------------

def test_small_fixture_reproduced_from_rgb_with_the_projects_cameras():
    model = small_model()
    rgb, plucker = fixture_inputs(model.cfg)
    with torch.no_grad():
        raw = model.forward_raw(rgb, plucker)
    raw_error = (raw[0] - torch.from_numpy(np.load(SMALL / "expected_raw.npy"))).abs().max().item()
    gaussians = lgm_gaussians(raw)[0]
    gauss_error = (gaussians - torch.from_numpy(np.load(SMALL / "expected_gaussians.npy"))).abs().max().item()
    assert raw_error < TOLERANCE and gauss_error < TOLERANCE, (raw_error, gauss_error)
    # what the project sees: the same Gaussians in its own frame
    with torch.no_grad():
        project = model(rgb, plucker)
    lgm_frame = gaussians.reshape(1, 4, 32, 32, 14).permute(0, 1, 4, 2, 3)
    torch.testing.assert_close(project, splatter_from_lgm(lgm_frame, model.scale), rtol=0, atol=1e-6)


@pytest.mark.parametrize("rig_radius", [1.5, 2.0])
def test_lgm_rays_are_the_projects_cameras_mapped(rig_radius):
    """LGM's ray channels of the fixture equal the project's input cameras' rays mapped to LGM's frame, at any
    project rig radius (the scale lgm_cam_radius / rig_radius puts the cameras where LGM's are)."""
    cfg = small_config(rig_radius=rig_radius)
    expected = torch.from_numpy(np.load(SMALL / "input_rays_plucker.npy"))
    cams = canonical_rig(cfg.input_size, cfg.input_rig)
    scale = frame_scale(cfg.rig_radius, cfg.lgm_cam_radius)
    mapped = plucker_to_lgm(torch.stack([plucker_rays(c) for c in cams]), scale)
    direct = torch.stack([lgm_plucker_rays(c, scale) for c in cams])
    assert (mapped - expected).abs().max() < 1e-5 and (direct - expected).abs().max() < 1e-5
    # LGM's view 0 looks from +z (the project's +x, azimuth 0), view 1 from +x (the project's +y, azimuth 90)
    centres = points_to_lgm(torch.tensor(np.stack([c.center for c in cams[:2]])), scale)
    torch.testing.assert_close(centres, torch.tensor([[0, 0, 1.5], [1.5, 0, 0]], dtype=centres.dtype),
                               rtol=0, atol=1e-9)


# -- LGM-format weights --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("manifest, variant, tensors, millions", [("lgm_big_keys.json", "paper", 376, 415.0),
                                                                  ("partrm_big_keys.json", "released", 425, 440.7)])
def test_big_manifests_place_every_key_on_the_meta_device(manifest, variant, tensors, millions):
    data = json.loads((FIXTURES / manifest).read_text())
    cfg = lgm_config(data["config"], drag_embedding=variant)
    with torch.device("meta"):  # LGM-big without allocating its 1.7 GB
        model = LGMPartRM(cfg)
    placed = check_lgm_keys(model, data["keys"], manifest)
    assert len(placed) == len(data["keys"]) == tensors
    assert set(lgm_shapes(model)) == set(data["keys"])  # none left over on either side
    params = sum(math.prod(data["keys"][k]) for k in placed)
    assert round(params / 1e6, 1) == millions
    if variant == "paper":
        lgm_params = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("unet.", "conv.")))
        assert lgm_params == params


def test_weight_errors_name_the_file_and_the_key(tmp_path):
    model = small_model()
    good = save_lgm_file(model, tmp_path / "good.safetensors")
    from safetensors.torch import load_file, save_file

    state = load_file(str(good))
    key = "unet.down_blocks.1.nets.0.conv1.weight"
    save_file({**state, key: state[key][:, :8].contiguous()}, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(LGMWeightsError) as e:
        load_lgm_weights(LGMPartRM(model.cfg), tmp_path / "wrong.safetensors", progress=False)
    text = str(e.value)
    assert "\n" not in text and "wrong.safetensors" in text and key in text and "ashawkey/LGM" in text
    assert "expected shape [64, 32, 3, 3], found [64, 8, 3, 3]" in text
    with pytest.raises(LGMWeightsError, match=r"nope\.safetensors: no such LGM weights file.*ashawkey/LGM"):
        load_lgm_weights(model, tmp_path / "nope.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(LGMWeightsError, match=r"bad\.safetensors is not a readable safetensors file") as e:
        load_lgm_weights(model, tmp_path / "bad.safetensors")
    assert "\n" not in str(e.value)
    save_file({k: v for k, v in state.items() if k != "conv.bias"}, str(tmp_path / "short.safetensors"))
    with pytest.raises(LGMWeightsError, match=r"short\.safetensors: key conv\.bias .*is missing"):
        load_lgm_weights(model, tmp_path / "short.safetensors")
    save_file({**state, "unet.alpha": torch.zeros(())}, str(tmp_path / "released.safetensors"))
    with pytest.raises(LGMWeightsError, match="unet.alpha .*drag_embedding: released"):
        load_lgm_weights(model, tmp_path / "released.safetensors")


def test_loaded_lgm_with_zero_initialised_drags_is_lgm():
    """The paper's drag embedding starts at zero: with any drags the loaded network outputs LGM's reconstruction."""
    model = small_model()
    rgb, plucker = fixture_inputs(model.cfg)
    g = torch.Generator().manual_seed(0)
    drags = torch.rand(1, 4, model.cfg.max_drags, 4, generator=g)
    with torch.no_grad():
        assert torch.equal(model.forward_raw(rgb, plucker, drags), model.forward_raw(rgb, plucker))
        assert torch.equal(model(rgb, plucker, drags), model(rgb, plucker))


# -- the frame mapping ---------------------------------------------------------------------------------------------

def test_world_frame_round_trip_and_covariances():
    R = torch.tensor(PROJECT_TO_LGM)
    assert torch.allclose(R @ R.T, torch.eye(3, dtype=R.dtype)) and torch.linalg.det(R) == 1  # a proper rotation
    torch.testing.assert_close(rotation_matrix(torch.tensor(LGM_TO_PROJECT_QUAT, dtype=R.dtype)), R.T)
    g = torch.Generator().manual_seed(0)
    points = torch.randn(50, 3, generator=g, dtype=torch.float64)
    quats = torch.nn.functional.normalize(torch.randn(50, 4, generator=g, dtype=torch.float64), dim=-1)
    s = frame_scale(1.5, 2.4)
    torch.testing.assert_close(points_from_lgm(points_to_lgm(points, s), s), points)
    torch.testing.assert_close(quats_from_lgm(quats_to_lgm(quats)), quats)
    assert torch.allclose(points_to_lgm(torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64), 1.0),
                          torch.tensor([[2.0, 3.0, 1.0]], dtype=torch.float64))  # LGM (x, y, z) = project (y, z, x)
    # a Gaussian's covariance maps as the points do: Σ_project = Rᵀ Σ_lgm R / s²
    scales = torch.rand(50, 3, generator=g, dtype=torch.float64) + 0.1
    splat_lgm = torch.cat([points, torch.rand(50, 1, generator=g, dtype=torch.float64), scales, quats,
                           torch.rand(50, 3, generator=g, dtype=torch.float64)], -1).T.reshape(1, 1, 14, 5, 10)
    splat_project = splatter_from_lgm(splat_lgm, s)
    torch.testing.assert_close(splatter_to_lgm(splat_project, s), splat_lgm)

    def covariance(splat: torch.Tensor) -> torch.Tensor:
        flat = splat.reshape(14, 50).T
        M = rotation_matrix(flat[:, 7:11]) * flat[:, None, 4:7]
        return M @ M.transpose(1, 2)

    torch.testing.assert_close(covariance(splat_project), R.T @ covariance(splat_lgm) @ R / s**2)


# -- the lgm layout in the project: checkpoints, WorldModel, training pieces -------------------------------------------

def test_lgm_model_saves_loads_and_runs_in_world_model(tmp_path):
    model = small_model(articulation_head=True)
    save_checkpoint(model, model.cfg, tmp_path / "ckpt")
    loaded, cfg, _ = load_checkpoint(tmp_path / "ckpt")
    assert isinstance(loaded, LGMPartRM) and cfg == model.cfg
    rgb, plucker = fixture_inputs(cfg)
    with torch.no_grad():
        torch.testing.assert_close(loaded(rgb, plucker), model(rgb, plucker), rtol=0, atol=0)
    wm = WorldModel.from_pretrained(tmp_path / "ckpt")
    assert wm.rig.canonical_elevation_deg == 0.0 and all(abs(c.center[2]) < 1e-12 for c in wm.input_cameras)
    views = (rgb.permute(0, 1, 3, 4, 2) * 255).round().byte().numpy()
    drags = torch.rand(1, 4, cfg.max_drags, 4, generator=torch.Generator().manual_seed(1))
    g = wm.predict(views, drags)
    assert g.means.shape == (1, 4 * 32 * 32, 3)
    g.validate()
    assert wm.predict_splatter(views).shape == (1, 4, 14, 32, 32)
    (state,) = wm.predict_articulated(views)
    assert state.base.means.shape == g.means.shape


def test_an_lgm_model_runs_in_every_world_model_env(tmp_path):
    """The lgm layout (its own rig, elevation 0) behind both transitions, the vector env and an image-defined task
    exported in its rig: the envs read the model's rig and frame, nothing else."""
    import gymnasium as gym

    from partrm_gym.envs.image_env import PartRMImagesEnv
    from partrm_gym.envs.task_export import export_task
    from partrm_gym.envs.world_model_env import PartRMEnv

    network = small_model(articulation_head=True)
    wm = WorldModel(network, network.cfg)
    for transition in ("articulated", "regenerate"):
        env = PartRMEnv(world_model=wm, category="drawer", resolution=32, max_steps=2, transition=transition)
        obs, info = env.reset(seed=0)
        assert obs["image"].shape == (32, 32, 3) and env.gaussians.means.shape[1] == 4 * 32 * 32
        obs, reward, *_ = env.step(env.action_space.sample())
        assert np.isfinite(reward)
    venv = gym.make_vec("PartRM-Drawer-v0", num_envs=2, vectorization_mode="vector_entry_point", world_model=wm,
                        resolution=32)
    obs, _ = venv.reset(seed=0)
    venv.step(venv.action_space.sample())
    venv.close()
    folder = export_task("PartRMSim-Drawer-v0", 0, tmp_path / "task", wm.rig, wm.input_size, resolution=32)
    images = PartRMImagesEnv(task_dir=folder, world_model=wm)
    obs, info = images.reset(seed=0)
    assert "inferred_goal_value" in info
    images.step(images.action_space.sample())


def test_default_layout_keeps_the_projects_rig():
    """The partrm layout's configs keep elevation 20°, so WorldModel's input cameras are the ones it always had."""
    assert ModelConfig().input_rig == RigConfig() and ModelConfig().layout == "partrm"
    assert small_config().input_rig == RigConfig(canonical_elevation_deg=0.0)


def test_lgm_config_checks():
    with pytest.raises(ValueError, match="multiples of 32"):
        small_config(down_channels=(32, 48, 64))
    with pytest.raises(ValueError, match="released needs layout: lgm"):
        ModelConfig(drag_embedding="released")
    with pytest.raises(ValueError, match="must divide 512"):
        small_config(drag_embedding="released", input_size=48)


def test_activation_checkpointing_gives_the_same_gradients():
    model = small_model().train()
    rgb, plucker = fixture_inputs(model.cfg)
    grads = []
    for on in (False, True):
        model.zero_grad()
        model.unet.checkpointing = on
        model(rgb, plucker).square().mean().backward()
        grads.append([p.grad.clone() for p in model.unet.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_stage1_step_against_the_teacher_lowers_the_loss():
    """Stage 1 of the paper's recipe: the target is the loaded LGM's own reconstruction of the next state (a frozen
    copy, no drags); one AdamW step of the student (the same network + zero-initialised drags) lowers the loss."""
    from partrm_gym.train.train import compute_loss, trained_parameters
    from partrm_gym.train.train_config import TrainConfig

    student = small_model().train()
    teacher = copy.deepcopy(student).eval().requires_grad_(False)
    rgb, plucker = fixture_inputs(student.cfg)
    g = torch.Generator().manual_seed(0)
    next_rgb = rgb.roll(shifts=3, dims=-1)  # the next state: the object's pixels moved
    batch = {"input_rgb": rgb, "input_rgb_dst": next_rgb, "plucker": plucker,
             "drags": torch.rand(1, 4, student.cfg.max_drags, 4, generator=g),
             "drag_mask": torch.ones(1, 4, student.cfg.max_drags, dtype=torch.bool)}
    cfg = TrainConfig(stage=1, splatter_target="teacher", init_from="lgm:fixture", lr=1e-4)
    optimizer = torch.optim.AdamW(trained_parameters(student, 1), lr=cfg.lr)
    before, _ = compute_loss(student, batch, cfg, g, teacher=teacher)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after, _ = compute_loss(student, batch, cfg, g, teacher=teacher)
    assert after < before, (before.item(), after.item())
    print(f"stage-1 loss before {before.item():.6f} after one step {after.item():.6f}")


def test_build_network_picks_the_layout():
    from conftest import MINI

    from partrm_gym.model.partrm import PartRM

    assert type(build_network(MINI)) is PartRM
    assert type(build_network(small_config())) is LGMPartRM
