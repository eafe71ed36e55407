"""``partrm-gym bench images``: what a user with only images of an object gets, scored against the twin task by task.

Each held-out twin task (drawers of the test split, reset seeds 100000 + i; with ``--partnet DIR`` every task part of
the real test objects) is exported as an image-defined task folder (``partrm-gym export-task``). Three variants of
the world-model env run it:

* **known goal**: ``PartRM-Drawer-v0`` (or ``PartRM-Articulated-v0`` on the real object) on the same seed: the twin
  states the task part's terms, as today;
* **images RGB**: ``PartRM-Images-v0`` on the folder without depth: part, goal and limits inferred;
* **images RGB-D**: the same with the input views' depth: the geometry from the cameras, the labels and joints from
  the model.

Two policies act on each variant's own observations — the scripted policy and the CEM planner in imagination — and
every drag is replayed in the twin. Reported per variant: the inferred goal's error as a fraction of the true range
(a wrong joint type counts as a miss); success agreement with the twin when the variant's episode ends; the joint
read-out error per step (the imagined value mapped to the twin's range through the true start); reset and step time.
The last line is one summary line.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from partrm_gym.app.bench.report import emit_report, markdown_table, write_report

SEED_BASE = 100_000
VARIANTS = ("known", "rgb", "depth")
VARIANT_NAMES = {"known": "known goal", "rgb": "images RGB", "depth": "images RGB-D"}
POLICIES = ("scripted", "planner")
MISS = float("inf")  # the goal error of an inference that picked a part of the wrong joint type


def image_tasks(folder: Path, episodes: int, partnet: str | None, model) -> list[dict]:
    """Export the bench's twin tasks into ``folder``: one dict per task (its folder, reset seed, env kwargs, joint)."""
    from partrm_gym.assets.partnet_root import task_objects
    from partrm_gym.envs.task_export import export_task
    from partrm_gym.scene import Scene

    tasks = []
    if partnet is None:
        for i in range(episodes):
            seed = SEED_BASE + i
            out = export_task("PartRMSim-Drawer-v0", seed, folder / f"drawer_{seed}", model.rig, model.input_size,
                              split="test")
            tasks.append({"folder": out, "seed": seed, "env": {"category": "storage_drawer", "split": "test"},
                          "joint": None})
        return tasks
    for entry in task_objects(partnet, "any", "test"):
        with Scene.from_partnet(entry.folder) as scene:
            joints = [k for k, j in enumerate(scene.joints) if j.semantic in entry.parts_for("any")]
        for k in joints:
            seed = SEED_BASE + len(tasks)
            out = export_task("PartRMSim-Articulated-v0", seed, folder / f"{entry.object_id}_{k}", model.rig,
                              model.input_size, partnet=entry.folder, split="test", joint=k)
            tasks.append({"folder": out, "seed": seed, "joint": k,
                          "env": {"category": "any", "split": "test", "partnet_root": str(entry.folder)}})
    return tasks


def _run(env, twin, policy, seed: int, options: dict, twin_options: dict, oracle, steps: int) -> dict:
    """One episode of ``policy`` acting on ``env``'s observations, each drag replayed in ``twin``, until ``env`` ends
    (or ``steps`` drags)."""
    from partrm_gym.policies.episodes import policy_seed

    if hasattr(policy, "reset"):
        policy.reset(policy_seed(seed))
    t = time.perf_counter()
    obs, info = env.reset(seed=seed, options=options)
    reset_ms = (time.perf_counter() - t) * 1e3
    twin.reset(seed=seed, options=twin_options)
    errors, step_ms = [], []
    done, twin_info = False, {}
    for _ in range(steps):
        action = policy.act(env, obs) if hasattr(policy, "act") else policy(obs)
        t = time.perf_counter()
        obs, _, terminated, truncated, info = env.step(action)
        step_ms.append((time.perf_counter() - t) * 1e3)
        _, _, _, _, twin_info = twin.step(action)
        errors.append(abs(_twin_fraction(env, info, oracle) - twin_info["joint_fraction"]))
        done = terminated or truncated
        if done:
            break
    return {"agree": bool(info["is_success"]) == bool(twin_info.get("is_success", False)), "errors": errors,
            "reset_ms": reset_ms, "step_ms": step_ms}


def axis_sign(env, oracle) -> float:
    """+1 where the imagined task part's axis points the way the true joint grows, -1 where it points the other way
    (an imagined value then moves the part the other way round: the same pose for the opposite value)."""
    base = env.unwrapped
    if base.task_part is None or oracle.axis is None:
        return 1.0
    return 1.0 if float(np.dot(base.state.joints[base.task_part].axis, oracle.axis)) >= 0 else -1.0


def _twin_fraction(env, info: dict, oracle) -> float:
    """The imagined task joint as a fraction of the twin's range: absolute values (known goal) directly, values
    relative to the start along the imagined axis (images) through the true start and the axes' agreement."""
    value = info["joint_value"]
    terms = env.unwrapped.transition.terms
    if terms is not None and terms.inferred:
        value = oracle.start + axis_sign(env, oracle) * value
    return (value - oracle.limits[0]) / oracle.range


def goal_error(env, info: dict, oracle) -> float:
    """|inferred - true goal change| as a fraction of the true range (the inferred value read along the true axis);
    :data:`MISS` for a wrong joint type or no part."""
    if info.get("inferred_task_part") is None or info.get("inferred_joint_type") != oracle.joint_type:
        return MISS
    return abs(axis_sign(env, oracle) * info["inferred_goal_value"] - (oracle.goal - oracle.start)) / oracle.range


def bench_images(args: argparse.Namespace) -> str:
    from tqdm import tqdm

    from partrm_gym.envs.image_env import PartRMImagesEnv
    from partrm_gym.envs.sim_env import PartRMSimEnv
    from partrm_gym.envs.world_model_env import PartRMEnv
    from partrm_gym.model.world_model import WorldModel
    from partrm_gym.policies.planner import ImaginationPlanner
    from partrm_gym.policies.scripted import ScriptedPolicy

    model = WorldModel.from_pretrained(args.model)
    partnet = getattr(args, "partnet", None)
    steps = args.steps
    common = {"control_mode": "pixel_drag", "max_steps": steps}
    with tempfile.TemporaryDirectory(prefix="partrm_bench_images_") as tmp:
        tasks = image_tasks(Path(tmp), args.episodes, partnet, model)
        folders = [t["folder"] for t in tasks]
        images = {"rgb": PartRMImagesEnv(tasks=folders, depth="off", world_model=model, **common),
                  "depth": PartRMImagesEnv(tasks=folders, depth="auto", world_model=model, **common)}
        rows = []
        for i, task in enumerate(tqdm(tasks, desc="bench images", unit="task")):
            oracle = images["rgb"].tasks[i].oracle()
            known = PartRMEnv(world_model=model, **task["env"], **common)
            twin = PartRMSimEnv(**task["env"], **common)
            joint = None if task["joint"] is None else {"joint": task["joint"]}
            envs = {"known": (known, joint), "rgb": (images["rgb"], {"task": i}), "depth": (images["depth"],
                                                                                        {"task": i})}
            row = {"task": i, "seed": task["seed"], "range": oracle.range}
            for variant, (env, options) in envs.items():
                _, info = env.reset(seed=task["seed"], options=options)
                if variant == "known":
                    row["known_goal_error"] = 0.0
                    known_mask, known_goal = env.task_part_mask(), env.episode.goal_image
                else:  # how the inferred task compares with the stated one, at reset
                    row[f"{variant}_goal_error"] = goal_error(env, info, oracle)
                    union = np.logical_or(env.task_part_mask(), known_mask).sum()
                    row[f"{variant}_iou"] = (float(np.logical_and(env.task_part_mask(), known_mask).sum() / union)
                                             if union else float("nan"))
                    row[f"{variant}_goal_psnr"] = _psnr(env.episode.goal_image, known_goal)
                for name in POLICIES:
                    policy = ScriptedPolicy(0) if name == "scripted" else ImaginationPlanner(model, seed=0)
                    row[f"{variant}_{name}"] = _run(env, twin, policy, task["seed"], options, joint, oracle, steps)
            known.close()
            twin.close()
            rows.append(row)
        for env in images.values():
            env.close()
    return _report(rows, args, partnet)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    import torch

    from partrm_gym.metrics import psnr

    return float(psnr(torch.from_numpy(a), torch.from_numpy(b), max_value=255.0))


def _report(rows: list[dict], args: argparse.Namespace, partnet: str | None) -> str:
    n = len(rows)
    body = []
    summary = {}
    for variant in VARIANTS:
        errors = np.array([r[f"{variant}_goal_error"] for r in rows])
        within = float(np.mean(errors <= 0.1))
        results = [r[f"{variant}_{p}"] for r in rows for p in POLICIES]
        agree = {p: float(np.mean([r[f"{variant}_{p}"]["agree"] for r in rows])) for p in POLICIES}
        step_err = [e for res in results for e in res["errors"]]
        reset_ms = float(np.median([res["reset_ms"] for res in results]))
        step_ms = float(np.median([t for res in results for t in res["step_ms"]]))
        iou = np.array([r.get(f"{variant}_iou") for r in rows if r.get(f"{variant}_iou") is not None], float)
        goal_psnr = np.array([r.get(f"{variant}_goal_psnr") for r in rows if r.get(f"{variant}_goal_psnr")
                              is not None], float)
        summary[variant] = {"goal_error_median": float(np.median(errors)), "agreement": float(np.mean(list(
            agree.values())))}
        body.append([VARIANT_NAMES[variant], "—" if variant == "known" else f"{np.median(errors):.3f}",
                     "—" if variant == "known" else f"{100 * within:.0f}%",
                     f"{100 * agree['scripted']:.0f}% / {100 * agree['planner']:.0f}%",
                     f"{np.median(step_err):.3f}" if step_err else "nan",
                     "—" if not len(iou) else f"{np.nanmean(iou):.3f}",
                     "—" if not len(goal_psnr) else f"{np.mean(goal_psnr):.2f}", f"{reset_ms:.0f}", f"{step_ms:.1f}"])
    headers = ["variant", "goal error median", "goal within 0.1", "agreement scripted / planner",
               "joint error per step (median)", "task-part IoU vs known", "goal image PSNR vs known (dB)",
               "reset ms", "step ms"]
    what = "real test objects' task parts" if partnet else f"test-split drawers, seeds {SEED_BASE}-{SEED_BASE + n - 1}"
    command = "partrm-gym bench images" + (" --partnet DIR" if partnet else f" --episodes {args.episodes}") + (
        f" --steps {args.steps}")
    text = emit_report(f"Environments from images: {n} {what}", command, markdown_table(headers, body), None)
    if args.out:
        write_report(args.out, text)
    rgb = summary["rgb"]["goal_error_median"]
    print(f"images: tasks={n} goal_error_median={rgb:.4g} agreement_known={summary['known']['agreement']:.3g} "
          f"agreement_rgb={summary['rgb']['agreement']:.3g} agreement_depth={summary['depth']['agreement']:.3g}")
    return text
