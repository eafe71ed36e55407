"""``partrm-gym export-task``: a twin's task written as an image-defined task folder.

The twin (``PartRMSim-*-v0``) draws the task of ``reset(seed=S)`` and renders what cameras would give: the model's
4 input views of the initial (and goal) state, the observation camera's view of both, and their depth. The folder is
what a user with a real object and cameras would make (docs/envs.md), so ``PartRM-Images-v0`` on it can be scored
against the twin task by task. The true task — which joint, its values and limits — goes into ``oracle.json``, which
the image env reads only with ``goal_from="side_file"``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from partrm_gym.articulation import true_joint_geometry
from partrm_gym.cameras import RigConfig, canonical_rig
from partrm_gym.envs.image_task import CAMERAS, Oracle, TaskFolderError, write_task
from partrm_gym.envs.sim_env import PartRMSimEnv
from partrm_gym.errors import UsageError
from partrm_gym.registration import ENV_CATEGORIES, check_env_id


def export_task(env_id: str, seed: int, out: str | Path, rig: RigConfig, input_size: int, *,
                partnet: str | Path | None = None, split: str | None = None, joint: int | None = None,
                depth: bool = True, goal_views: bool = True, resolution: int | None = None) -> Path:
    """Write the task of ``env_id``'s ``reset(seed=seed)`` (``options={"joint": joint}`` if given) as a task folder.

    Args:
        env_id: a ``PartRMSim-*-v0`` or ``PartRM-*-v0`` id (the twin of either draws the task).
        seed: the reset seed.
        out: the folder (new, empty, or a task folder written before).
        rig, input_size: the input views' rig and size (the model's: ``WorldModel.rig``, ``.input_size``).
        partnet: a PartNet-Mobility folder (one object's, or a root) to draw real objects from.
        split: the task split (default: the env's).
        joint: the task joint (position in the object's movable joints; default: the one the seed draws).
        depth: also write each image's depth.
        goal_views: also write the goal state's input views (the regenerate transition needs them).
        resolution: the observation camera's size (default: the env's).
    """
    check_env_id(env_id)
    name = env_id.split("-")[1]
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not (out / CAMERAS).is_file():
        raise TaskFolderError(f"--out {out} is a folder that holds files but no task ({CAMERAS}); give a new or empty "
                              "folder (an export never overwrites other files)")
    kwargs = {"category": ENV_CATEGORIES[name]}
    if partnet is not None:
        kwargs["partnet_root"] = str(partnet)
    if split is not None:
        kwargs["split"] = split
    if resolution is not None:
        kwargs["resolution"] = resolution
    cameras = canonical_rig(input_size, rig)
    with PartRMSimEnv(**kwargs) as twin:
        twin.reset(seed=seed, options=None if joint is None else {"joint": joint})
        task, scene = twin.task, twin.scene
        k = task.joint
        info = scene.joints[k]
        scene.set_joint_states(task.goal)
        goal_frame = scene.render(twin.camera)
        goal_frames = scene.render_views(cameras) if goal_views else None
        goal_rgb = None if goal_frames is None else np.stack([f.rgb for f in goal_frames])
        scene.set_joint_states(task.initial)
        frame = scene.render(twin.camera)
        inputs = scene.render_views(cameras)
        axis = true_joint_geometry(scene, k)[1]
        oracle = Oracle(k, info.type, float(task.initial[k]), float(task.goal[k]), (float(info.lower),
                                                                                    float(info.upper)),
                        {"env_id": env_id, "seed": seed, "split": twin.cfg.split, "category": task.category,
                         "object_seed": task.seed, "joint_name": info.name, "semantic": info.semantic,
                         **({"partnet_folder": task.extras["partnet_folder"]} if "partnet_folder" in task.extras
                            else {})}, tuple(float(a) for a in axis))
        return write_task(
            out, rig=rig, camera=twin.camera, views=np.stack([f.rgb for f in inputs]), image=frame.rgb,
            goal_image=goal_frame.rgb, goal_views=goal_rgb,
            view_depths=np.stack([f.depth for f in inputs]) if depth else None,
            goal_view_depths=np.stack([f.depth for f in goal_frames]) if depth and goal_frames else None,
            image_depth=frame.depth if depth else None, goal_depth=goal_frame.depth if depth else None,
            task={"category": task.category, "name": f"{env_id} seed {seed}"}, oracle=oracle)


def main(args: argparse.Namespace) -> int:
    """``partrm-gym export-task --env ID --seed S --out DIR [--partnet DIR] [--split] [--joint] [--model]``."""
    from partrm_gym.model.world_model import WorldModel

    if not args.env.startswith(("PartRMSim-", "PartRM-")) or args.env.startswith("PartRM-Images"):
        raise UsageError(f"--env {args.env}: export takes a twin's task, e.g. PartRMSim-Drawer-v0")
    model = WorldModel.from_pretrained(args.model)
    folder = export_task(args.env, args.seed, args.out, model.rig, model.input_size, partnet=args.partnet,
                         split=args.split, joint=args.joint, depth=not args.no_depth)
    print(f"wrote {folder} (the true task in {folder / 'oracle.json'}, read only with goal_from='side_file')")
    return 0
