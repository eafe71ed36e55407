"""``partrm-gym compare``: the same drags in the world-model env and in its PyBullet twin.

Both envs are reset with the same seed (so the same object and task) and driven by the same
actions, chosen by the policy from the *twin's* observation. Each step the imagined Gaussians
and the simulator are rendered from the observation camera and two evaluation views, scored
(PSNR, SSIM, Chamfer between Gaussian centres and simulator points), and drawn side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from partrm_gym.app.paired_rollout import paired_rollout
from partrm_gym.cameras import evaluation_rig
from partrm_gym.envs.sim_env import PartRMSimEnv
from partrm_gym.envs.world_model_env import PartRMEnv
from partrm_gym.errors import UsageError
from partrm_gym.io import atomic_write_csv, atomic_write_gif
from partrm_gym.metrics import chamfer_distance, psnr, ssim
from partrm_gym.plotting import image_grid, save_figure, subplots
from partrm_gym.policies.episodes import policy_seed
from partrm_gym.policies.scripted import make_policy
from partrm_gym.registration import ENV_CATEGORIES
from partrm_gym.train.evaluate import simulator_points, visible_points

EXTRA_VIEWS = (1, 4)  # evaluation views (azimuth 60° and 210°) drawn beside the observation camera


def compare(env_name: str, policy_name: str, steps: int, seed: int, out: Path, model_path: str | None = None,
            world_model=None, resolution: int = 64, partnet_root: str | None = None) -> list[dict]:
    if steps < 1:
        raise UsageError(f"steps={steps}: compare at least 1 step")
    if env_name not in ENV_CATEGORIES:
        raise UsageError(f"env {env_name!r} is not one of {sorted(ENV_CATEGORIES)}")
    category = ENV_CATEGORIES[env_name]
    task = {"category": category, "resolution": resolution, "max_steps": steps, "control_mode": "pixel_drag",
            "partnet_root": partnet_root}
    imagined = PartRMEnv(model_path=model_path, world_model=world_model, **task)
    twin = PartRMSimEnv(**task)
    policy = make_policy(policy_name, policy_seed(seed))
    cams = [imagined.camera] + [evaluation_rig(resolution)[i] for i in EXTRA_VIEWS]
    rows, frames = [], []
    rng = np.random.default_rng(seed)
    try:
        for s in paired_rollout(twin, imagined, policy, seed, steps):
            im_rgb, _ = imagined.render_camera(cams)
            sim_frames = [twin.scene.render(c) for c in cams]
            sim_rgb = np.stack([f.rgb for f in sim_frames])
            a, b = im_rgb.astype(np.float32) / 255, sim_rgb.astype(np.float32) / 255
            g = imagined.gaussians
            centres, weights = visible_points(g.means[0].cpu().numpy(), g.opacities[0].cpu().numpy(), rng)
            sim_pts = simulator_points(np.stack([f.depth for f in sim_frames]), cams, rng)
            rows.append({"step": s.step, "psnr": float(psnr(_t(a), _t(b))),
                         "ssim": float(np.mean([ssim(a[i], b[i]) for i in range(len(cams))])),
                         "chamfer": (chamfer_distance(centres, sim_pts, weights_a=weights) if len(centres)
                                     else float("nan")),
                         "joint_error": twin.evaluate()["joint_error"]})
            frames.append(image_grid([list(im_rgb), list(sim_rgb)]))
    finally:
        imagined.close()
        twin.close()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_gif(out / "compare.gif", np.stack(frames))
    atomic_write_csv(out / "compare.csv", rows)
    _plot(rows, out / "compare.png")
    return rows


def _t(x: np.ndarray):
    import torch

    return torch.from_numpy(x)


def _plot(rows: list[dict], path: Path) -> None:
    fig, ax = subplots(1, 2, figsize=(8, 3))
    steps = [r["step"] for r in rows]
    ax[0].plot(steps, [r["psnr"] for r in rows], marker="o")
    ax[0].set_title("imagined vs simulated PSNR (dB)")
    ax[1].plot(steps, [r["chamfer"] for r in rows], marker="o")
    ax[1].set_title("Chamfer (m)")
    for a in ax:
        a.set_xlabel("step")
    save_figure(fig, path)


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    rows = compare(args.env, args.policy, args.steps, args.seed, out, args.model, partnet_root=args.partnet)
    print("step  PSNR   SSIM   Chamfer  joint error (twin)")
    for r in rows:
        print(f"{r['step']:4d}  {r['psnr']:5.2f}  {r['ssim']:.3f}  {r['chamfer']:.4f}   {r['joint_error']:.3f}")
    print(f"wrote {out}/compare.gif, compare.csv, compare.png")
    return 0
