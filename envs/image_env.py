"""``PartRM-Images-v0``: the world-model environment made from images alone, with no simulator at all.

The case PartRM exists for: someone has camera images of a real object (its 4 input views, or one photo and
Zero123++; the observation camera's view of the initial and of the goal state; depth where the camera gives it)
and wants an environment. The images are a task folder (:mod:`partrm_gym.envs.image_task`, docs/envs.md); the
transition is the articulated imagined state of :class:`~partrm_gym.envs.world_model_env.PartRMEnv`; what the twin
states about the task (which part, the goal value, the limits) is inferred from the images at reset
(:mod:`partrm_gym.envs.task_inference`) and reported in ``info``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from partrm_gym.articulation import GroupingConfig
from partrm_gym.envs.image_task import ImageTask, check_rig, input_name, load_task
from partrm_gym.envs.task import Task, TaskTerms
from partrm_gym.envs.task_inference import InferenceConfig, TaskInference
from partrm_gym.envs.transitions import ResetRequest
from partrm_gym.envs.world_model_env import PartRMEnv
from partrm_gym.errors import UsageError
from partrm_gym.model.view_sources import Zero123PlusPlusSource
from partrm_gym.model.world_model import WorldModel

GOAL_FROM = ("images", "side_file")
DEPTH = ("auto", "off")
# Task keywords an image task defines itself: its object and states are in the images, its camera in cameras.json.
FROM_THE_FOLDER = ("category", "split", "task", "partnet_root", "obs_azimuth_deg", "obs_elevation_deg", "obs_radius",
                   "obs_fov_deg")


class PartRMImagesEnv(PartRMEnv):
    """Open or close one part of an object known only from images, in imagination (``PartRM-Images-v0``).

    ``gym.make("PartRM-Images-v0", task_dir=DIR)``, or ``tasks=[DIR, ...]`` (one drawn per reset). No simulator
    is connected, ever: the reset reads the task folder, the model reconstructs the object, and every step is
    imagined.

    ## Action Space
    ``Box(-1, 1, (4,), float32)`` under ``control_mode`` (``object_drag`` default, or ``pixel_drag``), read from
    the current imagined observation as in every PartRM env (:func:`~partrm_gym.envs.task.drag_from_action`).

    ## Observation Space
    ``Dict(image=Box(0, 255, (H, W, 3), uint8), goal=<same>)``: the imagined current state and the imagined goal
    state in the task's observation camera (``cameras.json``; H, W its size, the same for every task of the env).

    ## Rewards
    From :meth:`evaluate`, as in ``PartRM-*-v0``, on the inferred terms: with e = |fraction - goal fraction| on the
    range the success rule implies (:mod:`partrm_gym.envs.task_inference`), ``dense``: ``dense_scale`` ×
    (e_previous - e) / e_initial + ``success_bonus`` × success; ``sparse``: 1 on success.

    ## Starting State
    A task folder drawn with ``np_random`` (or ``options={"task": i}``); the model reconstructs the initial state
    from the folder's 4 input views (with depth, the geometry comes from the cameras and the model labels its parts
    and joints), and the task part and goal value are inferred from the observation camera's two images.

    ## Episode End
    Terminated on success (|q - q_goal| ≤ 0.25 |q_goal - q_start|, the twin's rule at its smallest goal change);
    truncated after ``max_steps`` steps.

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``task_dir`` / ``tasks`` | (one required) | a task folder, or a list of them |
    | ``goal_from`` | ``"images"`` | ``"images"``: infer the task; ``"side_file"``: the oracle (``oracle.json``) |
    | ``depth`` | ``"auto"`` | ``"auto"``: geometry from the input views' depth where the folder has it; ``"off"`` |
    | ``zero123pp_weights`` / ``view_source`` | None | for folders with ``views_from: zero123pp`` (a local folder) |
    | ``model_path`` / ``world_model``, ``transition``, ``grouping``, ``view_fit_steps``, ``device`` | | as in |
    | | | ``PartRM-*-v0`` |
    | ``inference`` | ``InferenceConfig()`` | the search grids of the inference |
    | task keywords | | max_steps, reward_mode, control_mode, drag_scale, joint_success_tolerance, ... (not the |
    | | | object, split, camera or goal change: the folder defines them) |

    ## Info
    As ``PartRM-*-v0`` (``is_success``, ``joint_value``, ``joint_fraction``, ``goal_fraction``, ``joint_limits``,
    ``joint_error``, ``missed``, ...), with values relative to the start; at reset also ``task_dir``,
    ``inferred_task_part``, ``inferred_joint_type``, ``inferred_goal_value``, the inference's fit
    ``inference_score`` (the best move's score: RGB in [0, 2], RGB-D in [0, 1]; higher explains more of the change
    between the two images) and ``inference_changed_pixels``; ``inference_failed`` where no part's move explains
    any of the change (too few changed pixels, or every score 0): the episode then cannot succeed.
    """

    def __init__(self, task_dir: str | Path | None = None, tasks: list[str | Path] | None = None,
                 goal_from: str = "images", depth: str = "auto", zero123pp_weights: str | Path | None = None,
                 view_source: Zero123PlusPlusSource | None = None, inference: InferenceConfig | None = None,
                 model_path: str | Path | None = None, device: str = "cpu", render_mode: str | None = "rgb_array",
                 world_model: WorldModel | None = None, transition: str = "articulated",
                 grouping: GroupingConfig | None = None, view_fit_steps: int = 0, **task_kwargs: Any) -> None:
        if (task_dir is None) == (tasks is None):
            raise UsageError("give task_dir=DIR or tasks=[DIR, ...] (task folders: docs/envs.md)")
        if goal_from not in GOAL_FROM:
            raise UsageError(f"goal_from={goal_from!r} is not valid; choose one of {list(GOAL_FROM)}")
        if depth not in DEPTH:
            raise UsageError(f"depth={depth!r} is not valid; choose one of {list(DEPTH)}")
        given = sorted(set(task_kwargs) & set(FROM_THE_FOLDER))
        if given:
            raise UsageError(f"{given} come from the task folder (its images and cameras.json), not from arguments")
        folders = [task_dir] if task_dir is not None else list(tasks)
        if not folders:
            raise UsageError("tasks=[] holds no task folder")
        self.tasks: list[ImageTask] = [load_task(f) for f in folders]
        sizes = {(t.camera.height, t.camera.width) for t in self.tasks}
        if len(sizes) > 1 or next(iter(sizes))[0] != next(iter(sizes))[1]:
            raise UsageError(f"the tasks' observation cameras must share one square size, got {sorted(sizes)}")
        size = next(iter(sizes))[0]
        if task_kwargs.setdefault("resolution", size) != size:
            raise UsageError(f"resolution={task_kwargs['resolution']} but the tasks' observation images are {size} px")
        self.goal_from, self.depth = goal_from, depth
        self._inference_cfg = inference
        super().__init__(model_path=model_path, device=device, render_mode=render_mode, world_model=world_model,
                         transition=transition, grouping=grouping, view_fit_steps=view_fit_steps, **task_kwargs)
        for t in self.tasks:
            check_rig(t, self.model.rig)
            if self.transition.needs_goal_views and t.goal_views is None:
                raise UsageError(f"{t.folder / input_name(0, goal=True)} is missing: transition='{transition}' "
                                 "reconstructs the goal from its 4 input views; add them or use "
                                 "transition='articulated'")
            if goal_from == "side_file":
                t.oracle()  # a one-line error now, not at the first reset
        self.view_source = view_source
        if view_source is None and any(t.views is None for t in self.tasks):
            self.view_source = Zero123PlusPlusSource(zero123pp_weights, device=device)
        self._generated: dict[int, np.ndarray] = {}  # Zero123++ views per task, made once

    def _inference_kwargs(self) -> dict[str, Any]:
        return {"inference": TaskInference(self.cfg, self._inference_cfg)}

    def prepare_reset(self, *, seed: int | None = None, options: dict | None = None) -> ResetRequest:
        """Draw a task folder (``options={"task": i}`` picks one) and take what the episode needs from it: no
        simulator is involved."""
        self._start_reset(seed)
        index = (options or {}).get("task")
        if index is None:
            index = int(self.np_random.integers(len(self.tasks)))
        if not 0 <= int(index) < len(self.tasks):
            raise UsageError(f"options['task']={index} is out of range: this env has {len(self.tasks)} task(s)")
        t = self.tasks[int(index)]
        views = t.views if t.views is not None else self._views_from_photo(int(index))
        stacked = views[None] if t.goal_views is None or not self.transition.needs_goal_views else np.stack(
            [views, t.goal_views])
        terms = None
        joint, start, goal = 0, 0.0, 0.0
        if self.goal_from == "side_file":
            oracle = t.oracle()
            terms = TaskTerms(oracle.start, oracle.goal, oracle.limits)
            joint, start, goal = oracle.joint, oracle.start, oracle.goal
        use_depth = self.depth == "auto"
        camera_depths = ((t.image_depth, t.goal_depth) if use_depth and t.image_depth is not None
                         and t.goal_depth is not None else None)
        task = Task(t.category, int(index), joint, np.array([start]), np.array([goal]),
                    {"task_dir": str(t.folder), "name": t.name})
        return ResetRequest(task, stacked, t.image, t.goal_image, terms, t.camera,
                            t.view_depths if use_depth else None, camera_depths)

    def finish_reset(self, request: ResetRequest, prediction: Any) -> tuple[dict, dict]:
        obs, info = super().finish_reset(request, prediction)
        if request.terms is None:  # inferred: did any part move the way the images change? (else no success)
            info["inference_failed"] = self.task_part is None
        return obs, {**info, "task_dir": request.task.extras["task_dir"]}

    def _views_from_photo(self, index: int) -> np.ndarray:
        if index not in self._generated:
            t = self.tasks[index]
            self._generated[index] = self.view_source.views(t.photo, t.photo.shape[0])
        return self._generated[index]

