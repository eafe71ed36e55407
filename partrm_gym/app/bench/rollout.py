"""``partrm-gym bench rollout``: does imagination stay true over an episode?

Episode i uses the test split with seed ``100000 + i`` and a category cycling over drawer, door,
microwave, laptop and dishwasher. The policy acts on the twin's observation; the same decoded
pixel drags are replayed in the world-model env; exactly ``--steps`` drags are made (no stop at
success). Random drags start on the task part (the twin's segmentation: in this bench only).

Per step it reports the joint read-out error |imagined - true| joint fraction (median, 90th
percentile; revolute and prismatic separately) and the mean PSNR against the twin's observation of
(a) the imagined state, (b) the oracle — the same reset reconstruction moved by the true part labels
and true joint values, which isolates the predicted motion from the reconstruction error — and
(c) the static reset reconstruction, unmoved. The last line printed is one summary line.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from partrm_gym.app.bench.report import emit_report, markdown_table, view_fit_flag, view_fit_kwargs, write_report
from partrm_gym.articulation import (
    MIN_VISIBLE_OPACITY,
    STATIC,
    ArticulatedState,
    PartJoint,
    nearest_surface_labels,
    true_joint_geometry,
)
from partrm_gym.drags import grasped_joint
from partrm_gym.metrics import psnr
from partrm_gym.scene import Scene

CATEGORIES = ("drawer", "door", "microwave", "laptop", "dishwasher")
SEED_BASE = 100_000


def oracle_state(base, scene: Scene, cameras: list) -> ArticulatedState:
    """The reconstruction ``base`` (1, N) with true part labels and true joints of ``scene``'s current state.

    A Gaussian takes the part of the nearest simulated surface point (the canonical views' pixels,
    back-projected, with their link segmentation) within ``FLOATER_DISTANCE`` world units; farther ones
    (floaters) stay with the static body (:func:`nearest_surface_labels`).
    """
    points, seg = [], []
    for frame, cam in zip(scene.render_views(cameras), cameras):
        rows, cols = np.nonzero(frame.object_mask)
        uv = np.stack([cols + 0.5, rows + 0.5], 1)
        points.append(cam.backproject(uv, frame.depth[rows, cols].astype(np.float64)))
        seg.append(frame.seg[rows, cols])
    pts = torch.as_tensor(np.concatenate(points), dtype=torch.float32)
    seg_all = np.concatenate(seg)
    link_part = {int(s): grasped_joint(scene.joints, int(s)) for s in np.unique(seg_all)}
    part_of_point = torch.as_tensor([STATIC if link_part[int(s)] is None else link_part[int(s)] for s in seg_all])
    labels = nearest_surface_labels(base.means[0].float().cpu(), pts, part_of_point)
    q = scene.get_joint_states()
    joints = []
    for k, info in enumerate(scene.joints):
        jtype, axis, pivot = true_joint_geometry(scene, k)
        joints.append(PartJoint(jtype, axis, pivot, info.lower, info.upper, start=float(q[k])))
    return ArticulatedState(base, labels, joints)


def label_accuracy(predicted: torch.Tensor, true: torch.Tensor, opacities: torch.Tensor) -> tuple[float, float]:
    """(all, movable): the share of visible Gaussians whose predicted part is right, and the same over the
    Gaussians truly on a movable part (most Gaussians are static, so "all" alone flatters a model that
    finds no part). Each predicted part is first mapped to the true label most of its Gaussians carry
    (part ids are arbitrary; the static body maps to itself)."""
    visible = (opacities > MIN_VISIBLE_OPACITY).cpu().numpy()
    pred, gt = predicted.cpu().numpy()[visible], true.cpu().numpy()[visible]
    mapped = np.full_like(pred, STATIC)
    for k in set(pred.tolist()) - {STATIC}:
        values, counts = np.unique(gt[pred == k], return_counts=True)
        mapped[pred == k] = values[counts.argmax()]
    right = mapped == gt
    on_parts = gt != STATIC
    return (float(right.mean()) if len(gt) else float("nan"),
            float(right[on_parts].mean()) if on_parts.any() else float("nan"))


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two uint8 images (:func:`partrm_gym.metrics.psnr`)."""
    return float(psnr(torch.from_numpy(a), torch.from_numpy(b), max_value=255.0))


def _random_drag_on_part(twin, rng: np.random.Generator) -> np.ndarray:
    frame = twin._frame
    mask = frame.part_mask(twin.scene.joints[twin.task.joint])
    rows, cols = np.nonzero(mask)
    H, W = mask.shape
    if len(rows) == 0:  # the task part is hidden: any pixel
        start = rng.uniform(0, 1, 2)
    else:
        i = rng.integers(len(rows))
        start = np.array([(cols[i] + 0.5) / W, (rows[i] + 0.5) / H])
    end = np.clip(start + rng.uniform(-0.5, 0.5, 2), 0, 1)
    return (np.concatenate([start, end]) * 2 - 1).astype(np.float32)


RESOLUTION = 64  # of the observations: the envs' default


def rollout_task(category: str, partnet_root: str | None = None, max_steps: int = 9) -> dict:
    """The task keywords of the bench's envs (test split, pixel drags at :data:`RESOLUTION`): the demo runs its
    example episode with them too, so that episode is the bench's."""
    return {"category": category, "split": "test", "resolution": RESOLUTION, "max_steps": max_steps,
            "control_mode": "pixel_drag", "partnet_root": partnet_root}


def episode_task(episode: int) -> tuple[str, int]:
    """(category, reset seed) of the bench's episode ``episode`` (procedural objects)."""
    return CATEGORIES[episode % len(CATEGORIES)], SEED_BASE + episode


def run_rollouts(episodes: int, steps: int, policy: str, transition: str, model_path: str | None = None,
                 resolution: int = RESOLUTION, partnet_root: str | None = None, view_fit_steps: int | None = None,
                 world_model=None, progress: bool = True) -> list[dict]:
    """One row per (episode, step): joint fractions, joint type and the three PSNRs. With ``partnet_root`` the
    episodes are on its real test objects (every category with a test object, ``category="any"``);
    ``view_fit_steps`` overrides the world-model env's (None: its default); ``world_model`` is used instead of
    loading ``model_path``."""
    from tqdm import tqdm

    from partrm_gym.app.paired_rollout import paired_rollout
    from partrm_gym.envs.sim_env import PartRMSimEnv
    from partrm_gym.envs.world_model_env import PartRMEnv
    from partrm_gym.model.world_model import WorldModel
    from partrm_gym.policies.episodes import policy_seed
    from partrm_gym.policies.scripted import ScriptedPolicy
    from partrm_gym.rendering import render_images

    model = world_model or WorldModel.from_pretrained(model_path)
    categories = ("any",) if partnet_root else CATEGORIES
    tasks = {c: {**rollout_task(c, partnet_root, steps + 1), "resolution": resolution} for c in categories}
    envs = {c: (PartRMSimEnv(**tasks[c]), PartRMEnv(world_model=model, transition=transition,
                                                   **view_fit_kwargs(view_fit_steps), **tasks[c]))
            for c in categories}
    rows = []
    try:
        for i in tqdm(range(episodes), desc=f"rollout {transition}/{policy}", unit="ep", disable=not progress):
            twin, imagined = envs[categories[i % len(categories)]]
            seed = SEED_BASE + i
            actor = ScriptedPolicy(policy_seed(seed)) if policy == "scripted" else None
            rng = np.random.default_rng(policy_seed(seed))

            def act(obs: dict, actor=actor, twin=twin, rng=rng) -> np.ndarray:
                return actor(obs) if actor is not None else _random_drag_on_part(twin, rng)

            for s in paired_rollout(twin, imagined, act, seed, steps):
                if s.step == 0:  # the reset reconstruction, its oracle and its scores against the twin's truth
                    base = (imagined.state.base if imagined.state is not None else imagined.gaussians)
                    oracle = oracle_state(base, twin.scene, model.input_cameras)
                    k = twin.task.joint
                    jtype = twin.scene.joints[k].type
                    static_image = render_images(base, [twin.camera]).rgb[0]
                    reset_scores = {"label_accuracy": float("nan"), "movable_accuracy": float("nan"),
                                    "task_iou": float("nan")}
                    if imagined.state is not None:
                        reset_scores["label_accuracy"], reset_scores["movable_accuracy"] = label_accuracy(
                            imagined.state.labels, oracle.labels, base.opacities[0])
                        reset_scores["task_iou"] = mask_iou(imagined.task_part_mask(),
                                                            twin._frame.part_mask(twin.scene.joints[k]))
                    continue
                for j, q in enumerate(twin.scene.get_joint_states()):
                    oracle.set_value(j, float(q))
                oracle_image = render_images(oracle.gaussians(), [twin.camera]).rgb[0]
                twin_image = s.twin_obs["image"]
                rows.append({"episode": i, "step": s.step, "type": jtype,
                             "true_fraction": s.twin_info["joint_fraction"],
                             "imagined_fraction": s.imagined_info.get("joint_fraction", float("nan")),
                             "psnr": _psnr(imagined.render(), twin_image), "oracle": _psnr(oracle_image, twin_image),
                             "static": _psnr(static_image, twin_image), "twin_grasped": not s.twin_info["missed"],
                             "imagined_grasped": not s.imagined_info["missed"], **reset_scores})
    finally:
        for twin, imagined in envs.values():
            twin.close()
            imagined.close()
    return rows


def step_errors(rows: list[dict], step: int) -> dict[int, float]:
    """Episode -> |imagined - true| joint fraction after ``step`` drags."""
    return {r["episode"]: abs(r["imagined_fraction"] - r["true_fraction"]) for r in rows if r["step"] == step}


def median_episode(rows: list[dict], step: int) -> int:
    """The episode whose joint read-out error after ``step`` drags is the median (the lower one of an even count;
    ties by episode): the demo's representative example."""
    errors = step_errors(rows, step)
    ranked = sorted((e for e in errors if np.isfinite(errors[e])), key=lambda e: (errors[e], e))
    if not ranked:
        raise ValueError(f"no episode has a finite joint read-out after {step} drags")
    return ranked[(len(ranked) - 1) // 2]


def summarise(rows: list[dict], steps: int) -> list[dict]:
    out = []
    for step in range(1, steps + 1):
        r = [x for x in rows if x["step"] == step]
        err = np.array([abs(x["imagined_fraction"] - x["true_fraction"]) for x in r])
        by_type = {t: err[[x["type"] == t for x in r]] for t in ("revolute", "prismatic")}

        def stat(e: np.ndarray, q: float) -> float:
            e = e[np.isfinite(e)]
            return float(np.quantile(e, q)) if len(e) else float("nan")

        out.append({"step": step, "joint_error_median": stat(err, 0.5), "joint_error_p90": stat(err, 0.9),
                    "revolute_median": stat(by_type["revolute"], 0.5), "revolute_p90": stat(by_type["revolute"], 0.9),
                    "prismatic_median": stat(by_type["prismatic"], 0.5),
                    "prismatic_p90": stat(by_type["prismatic"], 0.9),
                    "psnr": float(np.mean([x["psnr"] for x in r])), "oracle": float(np.mean([x["oracle"] for x in r])),
                    "static": float(np.mean([x["static"] for x in r]))})
    return out


def bench_rollout(args: argparse.Namespace) -> str:
    episodes, steps, policy, transition = args.episodes, args.steps, args.policy, args.transition
    partnet = getattr(args, "partnet", None)
    fit_steps = getattr(args, "view_fit_steps", None)
    rows = run_rollouts(episodes, steps, policy, transition, args.model, partnet_root=partnet,
                        view_fit_steps=fit_steps)
    table = summarise(rows, steps)
    headers = ["step", "joint error median", "p90", "revolute median / p90", "prismatic median / p90",
               "PSNR imagined", "PSNR oracle", "PSNR static"]
    body = [[t["step"], t["joint_error_median"], t["joint_error_p90"],
             f"{t['revolute_median']:.3g} / {t['revolute_p90']:.3g}",
             f"{t['prismatic_median']:.3g} / {t['prismatic_p90']:.3g}", t["psnr"], t["oracle"], t["static"]]
            for t in table]
    command = (f"partrm-gym bench rollout --episodes {episodes} --steps {steps} --policy {policy} "
               f"--transition {transition}" + (" --partnet DIR" if partnet else "") + view_fit_flag(fit_steps))
    text = emit_report(f"Rollout: {transition} transition, {policy} policy" + (", real objects" if partnet else ""),
                       command, markdown_table(headers, body), None)  # written below, with the grasp lines
    first = [r for r in rows if r["step"] == 1]
    acc = np.array([r["label_accuracy"] for r in first])
    movable = np.array([r["movable_accuracy"] for r in first])
    iou = np.array([r["task_iou"] for r in first])
    grasp = (f"Drags that grasp a movable part: twin {np.mean([r['twin_grasped'] for r in rows]):.2f}, imagination "
             f"{np.mean([r['imagined_grasped'] for r in rows]):.2f} (share of all {len(rows)} steps).")
    print(grasp)
    text += "\n" + grasp + "\n"
    if np.isfinite(acc).any():
        line = (f"Part labels at reset: {100 * np.nanmean(acc):.1f}% of visible Gaussians right (mean over episodes; "
                f"min {100 * np.nanmin(acc):.1f}%), {100 * np.nanmean(movable):.1f}% of those truly on a movable "
                f"part; task-part mask IoU in the observation camera {np.nanmean(iou):.3f} "
                f"(median {np.nanmedian(iou):.3f}).")
        print(line)
        text += "\n" + line + "\n"
    if args.out:
        write_report(args.out, text)
    last = table[-1]
    print(f"rollout: transition={transition} policy={policy} episodes={episodes} steps={steps} "
          f"{'objects=partnet ' if partnet else ''}"
          f"joint_error_median={last['joint_error_median']:.4g} psnr_last={last['psnr']:.4g} "
          f"oracle_last={last['oracle']:.4g} static_last={last['static']:.4g}")
    return text
