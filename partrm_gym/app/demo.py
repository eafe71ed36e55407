"""``partrm-gym demo``: one image, one drag, the imagined next state beside the simulated truth.

A held-out object (the test category, an instance no split trains on) is put in the
PyBullet scene; a drag on one part is read off the simulator (where a point of the part
goes when the joint moves from A to B), drawn on the input image, propagated over the part
and transferred into the model's 4 views. The bundled model predicts the next state as
Gaussians, which are rendered from the 8 evaluation cameras beside the simulator's renders
of state B, scored against the two baselines of ``partrm-gym eval`` (nothing moves / the GT
splatter of B), orbited into a GIF and exported as ``.ply``.

Then a short closed-loop rollout on a held-out task of the same category: the PyBullet twin and
the world-model env (articulated transition, the same model) are reset with the same seed, the
scripted policy reads the twin's observation and each drag is applied in both. ``rollout.gif``
shows simulated | imagined | imagined part labels per step and ``rollout.csv`` the true and
imagined joint fractions with the PSNR between the two observations. A model without an
articulation head skips the rollout (a note in ``metrics.md``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from partrm_gym.app.paired_rollout import paired_rollout
from partrm_gym.assets import HELD_OUT_CATEGORY
from partrm_gym.cameras import Camera, canonical_rig, evaluation_rig, orbit_camera
from partrm_gym.drags import drags_between_states, to_pixels
from partrm_gym.envs.sim_env import PartRMSimEnv
from partrm_gym.envs.task import TaskConfig, observation_camera
from partrm_gym.envs.world_model_env import PartRMEnv
from partrm_gym.errors import UsageError
from partrm_gym.gaussians import Gaussians, save_ply
from partrm_gym.gt_splatter import gt_splatter
from partrm_gym.io import atomic_write_gif, atomic_write_image, atomic_write_text
from partrm_gym.metrics import chamfer_distance, psnr, ssim
from partrm_gym.model.drag_propagation import drags_for_model
from partrm_gym.model.segmenters import ClassicalSegmenter, SimLinkSegmenter
from partrm_gym.model.world_model import WorldModel
from partrm_gym.plotting import image_grid, to_uint8_image
from partrm_gym.policies.episodes import policy_seed
from partrm_gym.policies.scripted import ScriptedPolicy
from partrm_gym.rendering import render_images
from partrm_gym.scene import Scene
from partrm_gym.train.evaluate import simulator_points, splatter_points

DEMO_SEED = 2_000_100  # a held-out-category instance outside data/default's test objects
ARROW_COLOUR = (220, 30, 30)
# imagined part labels: nothing, static body, the task part, then the other parts in turn
LABEL_NONE, LABEL_STATIC, LABEL_TASK = (255, 255, 255), (170, 170, 170), (230, 40, 40)
LABEL_PARTS = ((40, 110, 230), (40, 170, 70), (240, 170, 30), (150, 60, 200), (30, 180, 190))


@dataclass(frozen=True)
class DemoConfig:
    category: str = HELD_OUT_CATEGORY
    seed: int = DEMO_SEED
    joint: int | None = None  # which movable joint the drag moves (None: the object's first door, drawer or lid)
    partnet: str | None = None  # a real PartNet-Mobility object's folder instead of procedural category #seed
    start_fraction: float = 0.1  # of the joint range: state A (the input)
    end_fraction: float = 0.8  # state B (where the drag says the part goes)
    resolution: int = 128  # of the figures and of the 8 evaluation views
    orbit_frames: int = 36
    segmenter: str = "sim"  # "sim" (exact link mask) or "classical" (OpenCV, as on a real photo)
    rollout_steps: int = 4  # drags of the closed-loop rollout (0: no rollout)


def _draw_drag(image: np.ndarray, drag: np.ndarray, camera: Camera) -> np.ndarray:
    scale = 4  # draw on an upsampled copy so the arrow stays thin and smooth
    big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    (x0, y0), (x1, y1) = (to_pixels(drag[:2], camera) * scale).astype(int), (to_pixels(drag[2:], camera) * scale
                                                                             ).astype(int)
    cv2.arrowedLine(big, (int(x0), int(y0)), (int(x1), int(y1)), ARROW_COLOUR, scale, tipLength=0.2)
    cv2.circle(big, (int(x0), int(y0)), 2 * scale, ARROW_COLOUR, -1)
    return big


def colour_part_labels(labels: np.ndarray, task_part: int | None) -> np.ndarray:
    """(H, W) part labels (-2 nothing, -1 static body, k part k) -> (H, W, 3) uint8: white, grey, the task part
    red, other parts from a small fixed palette (by part index, so a part keeps its colour over a rollout)."""
    out = np.empty((*labels.shape, 3), np.uint8)
    out[:] = LABEL_NONE
    out[labels == -1] = LABEL_STATIC
    for k in np.unique(labels[labels >= 0]):
        out[labels == k] = LABEL_TASK if k == task_part else LABEL_PARTS[int(k) % len(LABEL_PARTS)]
    return out


def _rollout_frame(panels: list[np.ndarray], step: int, steps: int) -> np.ndarray:
    """simulated | imagined | imagined parts, under a header with the titles (if they fit) and the step."""
    grid = image_grid([panels])
    header = np.full((14, grid.shape[1], 3), 255, np.uint8)
    w = panels[0].shape[1]
    titles = [f"simulated, step {step}/{steps}", "imagined", "imagined parts"] if w >= 96 else [f"{step}/{steps}"]
    for j, title in enumerate(titles):
        cv2.putText(header, title, (2 + j * (w + 2), 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([header, grid])


def run_rollout(out: str | Path, model: WorldModel, cfg: DemoConfig) -> tuple[dict[str, Path], list[str]]:
    """The closed-loop rollout: ``cfg.rollout_steps`` scripted drags read off the twin's observation and applied
    to the twin and to the world-model env (articulated transition, ``model``) on the same held-out task.
    Writes ``rollout.gif`` and ``rollout.csv`` (one row per step, step 0 = after reset) into ``out``; returns
    their paths and Markdown lines for the metrics text (a one-line note, and no files, without a head)."""
    if cfg.rollout_steps <= 0:
        return {}, []
    if not model.has_articulation:
        return {}, ["", "Rollout skipped: this model has no articulation head (its config.yaml lacks "
                        "`articulation_head: true`), so it has no articulated transition."]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task = {"category": "any" if cfg.partnet else cfg.category, "split": "test", "resolution": cfg.resolution,
            "max_steps": max(cfg.rollout_steps, 1), "control_mode": ScriptedPolicy.control_mode,
            "partnet_root": cfg.partnet}
    sim, imagined = PartRMSimEnv(**task), PartRMEnv(world_model=model, transition="articulated", **task)
    policy = ScriptedPolicy(policy_seed(cfg.seed))
    frames, rows = [], []
    try:
        for s in paired_rollout(sim, imagined, policy, cfg.seed, cfg.rollout_steps):
            labels = imagined.part_labels()[0]
            frames.append(_rollout_frame([s.twin_obs["image"], s.imagined_obs["image"],
                                          colour_part_labels(labels, imagined.task_part)], s.step, cfg.rollout_steps))
            score = psnr(torch.from_numpy(s.imagined_obs["image"]).float() / 255.0,
                         torch.from_numpy(s.twin_obs["image"]).float() / 255.0)
            rows.append((s.step, s.twin_info["joint_fraction"], s.imagined_info["joint_fraction"],
                         s.twin_info["goal_fraction"], float(score)))
        category, object_seed, joint = sim.task.category, sim.task.seed, sim.task.joint
        part = sim.scene.joints[joint]
        task_part = imagined.task_part
    finally:
        sim.close()
        imagined.close()

    files = {"rollout_gif": out / "rollout.gif", "rollout_csv": out / "rollout.csv"}
    atomic_write_gif(files["rollout_gif"], np.stack(frames), frame_ms=600)
    csv = ["step,true_joint_fraction,imagined_joint_fraction,goal_fraction,psnr_imagined_vs_simulated_db"]
    csv += [f"{s},{t:.4f},{i:.4f},{g:.4f},{p:.2f}" for s, t, i, g, p in rows]
    atomic_write_text(files["rollout_csv"], "\n".join(csv) + "\n")
    found = f"imagined part {task_part}" if task_part is not None else "no imagined part found"
    task_name = f"{category} #{object_seed}" + (" (the same object" if cfg.partnet else " (held-out task")
    lines = ["", f"## Closed-loop rollout: {task_name}, reset seed {cfg.seed}), "
                 f"{part.semantic or part.type} joint '{part.name}' ({found})", "",
             f"{cfg.rollout_steps} scripted drags read off the simulator's observation, each replayed in "
             "imagination (articulated transition); step 0 is the state after reset.", "",
             "| step | true joint fraction | imagined joint fraction | goal fraction | PSNR imagined vs simulated |",
             "|---|---|---|---|---|"]
    lines += [f"| {s} | {t:.3f} | {i:.3f} | {g:.3f} | {p:.2f} |" for s, t, i, g, p in rows]
    return files, lines


def run_demo(out: str | Path, model_path: str | None = None, cfg: DemoConfig | None = None,
             world_model: WorldModel | None = None) -> dict[str, Path]:
    """Write the demo files into ``out``; returns their paths by name."""
    cfg = cfg or DemoConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = world_model or WorldModel.from_pretrained(model_path)
    rng = np.random.default_rng(cfg.seed)
    camera = observation_camera(TaskConfig(resolution=cfg.resolution))
    eval_cams = evaluation_rig(cfg.resolution)
    splat_cams = canonical_rig(model.network.cfg.output_size, model.rig)
    scene = Scene.from_partnet(cfg.partnet) if cfg.partnet else Scene.procedural(cfg.category, cfg.seed)
    what = f"PartNet-Mobility {Path(cfg.partnet).name}" if cfg.partnet else f"{cfg.category} #{cfg.seed}"
    with scene:
        joint = scene.task_joints()[0] if cfg.joint is None else cfg.joint
        if not 0 <= joint < len(scene.joints):
            raise UsageError(f"--joint {joint} does not exist: {what} has {len(scene.joints)} movable joints")
        closed = np.array([j.lower for j in scene.joints])
        span = np.array([j.range for j in scene.joints])
        state_a, state_b = closed.copy(), closed.copy()
        state_a[joint] += cfg.start_fraction * span[joint]
        state_b[joint] += cfg.end_fraction * span[joint]
        scene.set_joint_states(state_a)
        frame = scene.render(camera)
        drag = drags_between_states(scene, joint, state_a, state_b, camera, max_drags=1, rng=rng, frame_a=frame)
        if len(drag) == 0:
            raise UsageError(f"the part of joint {joint} is not visible from the observation camera; "
                               "choose another --joint or --seed")
        drag = drag[0]
        inputs = scene.render_views(model.input_cameras)
        segmenter = SimLinkSegmenter(frame, scene.joints) if cfg.segmenter == "sim" else ClassicalSegmenter()
        drags, mask = drags_for_model(drag, frame.rgb, camera, frame.depth, segmenter, model.input_cameras,
                                      [f.depth for f in inputs], model.max_drags, rng)
        static_splat = gt_splatter(scene, splat_cams, fit_cameras=model.input_cameras)
        scene.set_joint_states(state_b)
        truth = scene.render_views(eval_cams)
        truth_splat = gt_splatter(scene, splat_cams, fit_cameras=model.input_cameras)
        part = scene.joint(joint)

    t0 = time.perf_counter()
    predicted = model.predict_splatter(np.stack([f.rgb for f in inputs])[None], drags[None], mask[None])
    predict_ms = 1000 * (time.perf_counter() - t0)
    target = torch.from_numpy(np.stack([f.rgb for f in truth])).float() / 255.0
    truth_pts = simulator_points(np.stack([f.depth for f in truth]), eval_cams, rng)
    methods = {"model (PartRM)": predicted[0].cpu(), "static (nothing moves)": torch.from_numpy(static_splat),
               "GT splatter of B (upper bound)": torch.from_numpy(truth_splat)}
    renders, rows = {}, []
    for name, splat in methods.items():
        rgb = torch.from_numpy(render_images(Gaussians.from_splatter(splat[None]), eval_cams).rgb).float() / 255.0
        renders[name] = rgb
        pts, w = splatter_points(splat, rng)
        rows.append((name, float(psnr(rgb, target)), float(np.mean([ssim(rgb[v], target[v])
                                                                        for v in range(len(eval_cams))])),
                     float(chamfer_distance(pts, truth_pts, weights_a=w)) if len(pts) else float("nan")))

    files = {"input": out / "input_drag.png", "grid": out / "imagined_vs_simulated.png", "orbit": out / "orbit.gif",
             "ply": out / "imagined_next_state.ply", "metrics": out / "metrics.md"}
    atomic_write_image(files["input"], _draw_drag(frame.rgb, drag, camera))
    imagined_views = [to_uint8_image(renders["model (PartRM)"][v].permute(2, 0, 1)) for v in range(len(eval_cams))]
    atomic_write_image(files["grid"], image_grid([[f.rgb for f in truth], imagined_views]))
    imagined = Gaussians.from_splatter(predicted.cpu())
    orbit = [orbit_camera(360.0 * k / cfg.orbit_frames, 20.0, model.rig.radius, model.rig.fov_deg, cfg.resolution)
             for k in range(cfg.orbit_frames)]
    frames = render_images(imagined, orbit).rgb
    atomic_write_gif(files["orbit"], frames, frame_ms=80)
    save_ply(files["ply"], imagined)
    lines = [f"# PartRM-Gym demo: {what}{'' if cfg.partnet else ' (held-out)'}, {part.semantic or part.type} joint "
             f"'{part.name}' from {cfg.start_fraction:.0%} to {cfg.end_fraction:.0%} of its range", "",
             f"Drag (normalised x0, y0, x1, y1 in the observation view): {np.round(drag, 3).tolist()}; "
             f"{int(mask.sum())} propagated drags in the 4 input views; model call {predict_ms:.0f} ms.", "",
             f"Scored in the 8 evaluation views at {cfg.resolution}² against the simulator's state B:", "",
             "| prediction of state B | PSNR ↑ | SSIM ↑ | Chamfer (m) ↓ |", "|---|---|---|---|"]
    lines += [f"| {n} | {p:.2f} | {s:.4f} | {c:.4f} |" for n, p, s, c in rows]
    rollout_files, rollout_lines = run_rollout(out, model, cfg)
    files.update(rollout_files)
    lines += rollout_lines
    atomic_write_text(files["metrics"], "\n".join(lines) + "\n")
    return files


def main(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    given = {"category": args.category, "seed": args.seed, "joint": args.joint, "segmenter": args.segmenter,
             "rollout_steps": args.rollout_steps, "partnet": args.partnet}
    cfg = DemoConfig(**{k: v for k, v in given.items() if v is not None})
    files = run_demo(args.out, args.model, cfg)
    print(Path(files["metrics"]).read_text())
    width = max(map(len, files))
    for name, path in files.items():
        print(f"{name:>{width}}: {path}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0
