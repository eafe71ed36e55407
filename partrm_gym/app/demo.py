"""``partrm-gym demo``: one image, one drag, the imagined next state beside the simulated truth.

Which example: by default the **representative** one, chosen by a stated rule rather than by hand. The demo runs
the first 4 drags of ``partrm-gym bench rollout``'s 40 episodes (scripted policy, articulated transition, test
split, reset seeds 100000-100039) and takes the episode whose imagined joint read-out after 4 drags has the median
error (the lower median). ``metrics.md`` says where that episode sits among the 40. ``--held-out`` shows a
held-out-category object instead (a dishwasher: no training split has the category), ``--category``/``--seed``
name a test-split task, ``--partnet`` a real object.

The one-step figure uses the example's object and task: the task part is put at its initial joint state A, a drag is
read off the simulator (where a point of the part goes when the joint moves from A to the goal state B), drawn on the
input image, propagated over the part and transferred into the model's 4 views. The model predicts the next state
as Gaussians, rendered from the 8 evaluation cameras beside the simulator's renders of state B, scored against the
two baselines of ``partrm-gym eval`` (nothing moves / the GT splatter of B), orbited into a GIF and exported as
``.ply``.

Then the example's closed-loop rollout: the PyBullet twin and the world-model env (articulated transition, the same
model) are reset with the example's seed, the scripted policy reads the twin's observation and each drag is applied
in both, exactly as ``bench rollout`` does. ``rollout.gif`` shows simulated | imagined | imagined part labels per
step and ``rollout.csv`` the true and imagined joint fractions with the PSNR between the two observations. A model
without an articulation head skips the rollout (a note in ``metrics.md``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from partrm_gym.app.bench.rollout import (
    RESOLUTION,
    SEED_BASE,
    episode_task,
    median_episode,
    rollout_task,
    run_rollouts,
    step_errors,
)
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

HELD_OUT_SEED = 2_000_100  # --held-out: a held-out-category instance outside data/default's test objects
MEDIAN_OF, MEDIAN_STEP = 40, 4  # the representative example: the median episode of bench rollout's 40 after 4 drags
ARROW_COLOUR = (220, 30, 30)
# imagined part labels: nothing, static body, the task part, then the other parts in turn
LABEL_NONE, LABEL_STATIC, LABEL_TASK = (255, 255, 255), (170, 170, 170), (230, 40, 40)
LABEL_PARTS = ((40, 110, 230), (40, 170, 70), (240, 170, 30), (150, 60, 200), (30, 180, 190))
GIF_SCALE = 2  # the rollout runs at the bench's 64²; its GIF is drawn twice that size


@dataclass(frozen=True)
class DemoConfig:
    held_out: bool = False  # the held-out-category example instead of the representative one
    category: str | None = None  # with seed: a test-split task of this category (None: the representative example)
    seed: int | None = None  # the example's reset seed (test split)
    joint: int | None = None  # which movable joint the drag moves (None: the example task's)
    partnet: str | None = None  # a real PartNet-Mobility object's folder instead of a procedural object
    start_fraction: float = 0.1  # --held-out / --partnet: state A (the input), of the joint range
    end_fraction: float = 0.8  # --held-out / --partnet: state B (where the drag says the part goes)
    resolution: int = 128  # of the figures and of the 8 evaluation views
    orbit_frames: int = 36
    segmenter: str = "sim"  # "sim" (exact link mask) or "classical" (OpenCV, as on a real photo)
    rollout_steps: int = 4  # drags of the closed-loop rollout (0: no rollout)


@dataclass(frozen=True)
class Example:
    """The demo's example: an object, its task joint's states A and B, and the reset seed of its rollout."""

    title: str  # what the example is, for metrics.md
    scene: Callable[[], Scene]
    joint: int | None  # None: the object's first task joint
    state_a: Callable[[Scene, int], np.ndarray]  # every joint's value in state A
    state_b: Callable[[Scene, int], np.ndarray]
    category: str  # of the rollout's task ("any" for a real object)
    seed: int  # the rollout's reset seed
    placement: list[str]  # metrics.md lines saying how the example was chosen and where it sits


def _fractions_of(fraction: float) -> Callable[[Scene, int], np.ndarray]:
    """Every joint closed, ``joint`` at ``fraction`` of its range."""

    def states(scene: Scene, joint: int) -> np.ndarray:
        values = np.array([j.lower for j in scene.joints])
        values[joint] += fraction * scene.joints[joint].range
        return values

    return states


def choose_example(cfg: DemoConfig, model: WorldModel) -> Example:
    """The example ``cfg`` asks for (see the module docstring): by default the median episode of bench rollout."""
    if cfg.partnet:
        folder = cfg.partnet
        return Example(f"PartNet-Mobility {Path(folder).name}", lambda: Scene.from_partnet(folder), cfg.joint,
                       _fractions_of(cfg.start_fraction), _fractions_of(cfg.end_fraction), "any",
                       cfg.seed if cfg.seed is not None else HELD_OUT_SEED, ["A real object, chosen by the user."])
    if cfg.held_out:
        seed = cfg.seed if cfg.seed is not None else HELD_OUT_SEED
        return Example(f"{HELD_OUT_CATEGORY} #{seed} (held-out category)",
                       lambda: Scene.procedural(HELD_OUT_CATEGORY, seed), cfg.joint, _fractions_of(cfg.start_fraction),
                       _fractions_of(cfg.end_fraction), HELD_OUT_CATEGORY, seed,
                       ["The held-out-category example (`--held-out`): a dishwasher, a category no training split "
                        "has; chosen by hand, not for being typical."])
    if cfg.seed is not None:
        category, seed = cfg.category or "drawer", cfg.seed
        placement = [f"A test-split task chosen by the user (`--category {category} --seed {seed}`)."]
    else:
        category, seed, placement = _representative(model)
    with PartRMSimEnv(**rollout_task(category)) as twin:
        twin.reset(seed=seed)
        task = twin.task
    return Example(f"{task.category} #{task.seed} (test-split task, reset seed {seed})",
                   lambda: Scene.procedural(task.category, task.seed), task.joint if cfg.joint is None else cfg.joint,
                   lambda scene, joint: task.initial.copy(), lambda scene, joint: task.goal.copy(), category, seed,
                   placement)


def _representative(model: WorldModel) -> tuple[str, int, list[str]]:
    """(category, reset seed, metrics.md lines) of the median episode of ``bench rollout``'s first
    :data:`MEDIAN_OF` episodes after :data:`MEDIAN_STEP` scripted drags, with ``model``."""
    if not model.has_articulation:
        category, seed = episode_task(0)
        return category, seed, ["This model has no articulation head, so no episode can be ranked by its joint "
                                "read-out: the example is bench rollout's first episode."]
    print(f"choosing the representative example: {MEDIAN_OF} episodes of bench rollout, {MEDIAN_STEP} drags each")
    rows = run_rollouts(MEDIAN_OF, MEDIAN_STEP, "scripted", "articulated", world_model=model)
    episode = median_episode(rows, MEDIAN_STEP)
    errors = step_errors(rows, MEDIAN_STEP)
    values = np.array(list(errors.values()))
    category, seed = episode_task(episode)
    rank = 1 + sorted(errors, key=lambda e: (errors[e], e)).index(episode)
    return category, seed, [
        f"The representative example, chosen by a stated rule: of the {MEDIAN_OF} episodes of `partrm-gym bench "
        f"rollout` (scripted drags, articulated transition, test split, reset seeds {SEED_BASE}-"
        f"{SEED_BASE + MEDIAN_OF - 1}), the one whose imagined joint read-out after {MEDIAN_STEP} drags has the "
        f"median error (the lower median). This is episode {episode}: error {errors[episode]:.3f} of the joint "
        f"range, rank {rank} of {len(errors)}; over the {len(errors)} episodes the error's median is "
        f"{np.median(values):.3f}, its 10th / 90th percentiles {np.quantile(values, 0.1):.3f} / "
        f"{np.quantile(values, 0.9):.3f}. `--held-out` shows a held-out-category object instead."]


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


def run_rollout(out: str | Path, model: WorldModel, example: Example, steps: int, partnet: str | None = None
                ) -> tuple[dict[str, Path], list[str]]:
    """The example's closed-loop rollout: ``steps`` scripted drags read off the twin's observation and applied to
    the twin and to the world-model env (articulated transition, ``model``), with bench rollout's task settings.
    Writes ``rollout.gif`` and ``rollout.csv`` (one row per step, step 0 = after reset) into ``out``; returns their
    paths and Markdown lines for the metrics text (a one-line note, and no files, without a head)."""
    if steps <= 0:
        return {}, []
    if not model.has_articulation:
        return {}, ["", "Rollout skipped: this model has no articulation head (its config.yaml lacks "
                        "`articulation_head: true`), so it has no articulated transition."]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task = rollout_task(example.category, partnet, max(steps, 1))
    sim, imagined = PartRMSimEnv(**task), PartRMEnv(world_model=model, transition="articulated", **task)
    policy = ScriptedPolicy(policy_seed(example.seed))
    frames, rows = [], []
    try:
        for s in paired_rollout(sim, imagined, policy, example.seed, steps):
            labels = imagined.part_labels()[0]
            panels = [s.twin_obs["image"], s.imagined_obs["image"], colour_part_labels(labels, imagined.task_part)]
            panels = [cv2.resize(p, None, fx=GIF_SCALE, fy=GIF_SCALE, interpolation=cv2.INTER_NEAREST) for p in panels]
            frames.append(_rollout_frame(panels, s.step, steps))
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
    lines = ["", f"## Closed-loop rollout: {category} #{object_seed}, reset seed {example.seed}, "
                 f"{part.semantic or part.type} joint '{part.name}' ({found})", "",
             f"{steps} scripted drags read off the simulator's observation ({RESOLUTION}², as in `bench rollout`), "
             "each replayed in imagination (articulated transition); step 0 is the state after reset.", "",
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
    example = choose_example(cfg, model)
    rng = np.random.default_rng(example.seed)
    camera = observation_camera(TaskConfig(resolution=cfg.resolution))
    eval_cams = evaluation_rig(cfg.resolution)
    splat_cams = canonical_rig(model.network.cfg.output_size, model.rig)
    with example.scene() as scene:
        joint = scene.task_joints()[0] if example.joint is None else example.joint
        if not 0 <= joint < len(scene.joints):
            raise UsageError(f"--joint {joint} does not exist: {example.title} has {len(scene.joints)} movable "
                             "joints")
        state_a, state_b = example.state_a(scene, joint), example.state_b(scene, joint)
        scene.set_joint_states(state_a)
        fraction_a, fraction_b = ((s[joint] - scene.joints[joint].lower) / scene.joints[joint].range
                                  for s in (state_a, state_b))
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
    lines = [f"# PartRM-Gym demo: {example.title}, {part.semantic or part.type} joint '{part.name}' from "
             f"{fraction_a:.0%} to {fraction_b:.0%} of its range", "", *example.placement, "",
             f"Drag (normalised x0, y0, x1, y1 in the observation view): {np.round(drag, 3).tolist()}; "
             f"{int(mask.sum())} propagated drags in the 4 input views; model call {predict_ms:.0f} ms.", "",
             f"Scored in the 8 evaluation views at {cfg.resolution}² against the simulator's state B:", "",
             "| prediction of state B | PSNR ↑ | SSIM ↑ | Chamfer (m) ↓ |", "|---|---|---|---|"]
    lines += [f"| {n} | {p:.2f} | {s:.4f} | {c:.4f} |" for n, p, s, c in rows]
    rollout_files, rollout_lines = run_rollout(out, model, example, cfg.rollout_steps, cfg.partnet)
    files.update(rollout_files)
    lines += rollout_lines
    atomic_write_text(files["metrics"], "\n".join(lines) + "\n")
    return files


def main(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    if args.category is not None and args.seed is None and not args.held_out:
        raise UsageError("--category names a test-split task with --seed; give both (or neither, for the "
                         "representative example)")
    given = {"held_out": args.held_out, "category": args.category, "seed": args.seed, "joint": args.joint,
             "segmenter": args.segmenter, "rollout_steps": args.rollout_steps, "partnet": args.partnet}
    cfg = DemoConfig(**{k: v for k, v in given.items() if v is not None})
    files = run_demo(args.out, args.model, cfg)
    print(Path(files["metrics"]).read_text())
    width = max(map(len, files))
    for name, path in files.items():
        print(f"{name:>{width}}: {path}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0
