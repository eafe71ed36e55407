"""Planning in imagination: the cross-entropy method over drags, scored by the world model.

At every step the planner looks at the environment's current state the way the model does
(its 4 canonical views: simulator renders in the twin, imagined renders in the world-model
env) and reconstructs it once. Then it scores candidate drags:

- **by imagined joint progress** (a model with the articulation head, an env that reports the task
  joint): the reconstruction becomes an articulated state, its task part is the part whose motion to
  the goal value best reproduces the goal image (:func:`~partrm_gym.envs.task_part.find_task_part`
  with ``rule="goal_image"``; the env's change-mask rule, measured worse here, sees only a few noisy
  changed pixels once the observation nears the goal), fitted to the pixels that differ between
  observation and goal image (:func:`~partrm_gym.envs.task_part.shape_task_part`: carved to its Gaussians
  there, so a drag on a neighbouring drawer the head merged with it scores no progress, and given the
  body Gaussians drawn on its border where it leaves), and a candidate drag's
  score is the task joint's distance to ``goal_fraction`` after the drag — grasp and joint solve as in
  the articulated transition, so a whole CEM iteration costs no network call;
- **by goal-image distance** otherwise (PartRM's regenerate transition): each candidate is propagated,
  transferred and predicted, all candidates of one iteration in one batched model call, and the
  prediction's render is compared with the goal image.

The current and goal values and the limits of the task joint come from ``env.joint_readout()`` (the true
joint in the twin, the imagined one in the world-model env; None where the env has no joint, e.g. the
regenerate transition). The best-scored drag that
grasps (the task part, or the object) is executed in the real (or imagined) environment.

The first CEM mean is the scripted policy's drag (a cheap, observation-only guess), so the
planner starts from the same prior and improves on it with the model's foresight. By default
(``vary_start=False``) the candidates keep the prior's start, a pixel where the observation and the
goal differ, and CEM searches where to drag it: on objects the model has not seen, the imagined grasp
at part borders is the weakest link of imagination (docs/articulation.md), and letting it choose the
start cost 10 points of twin success on held-out drawers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from partrm_gym.articulation import solve_joint_value
from partrm_gym.cameras import Camera
from partrm_gym.drags import to_pixels
from partrm_gym.envs.task import JointReadout, decode_action, image_distance
from partrm_gym.envs.task_part import find_task_part, shape_task_part
from partrm_gym.errors import UsageError
from partrm_gym.model.drag_propagation import drags_for_model
from partrm_gym.model.segmenters import ClassicalSegmenter, Segmenter
from partrm_gym.model.world_model import WorldModel
from partrm_gym.policies.scripted import ScriptedPolicy
from partrm_gym.rendering import render_images


@dataclass(frozen=True)
class PlannerConfig:
    candidates: int = 16  # drags scored per CEM iteration (one batched model call)
    iterations: int = 2
    elites: int = 4
    init_std: float = 0.3  # of the first CEM distribution, in action units ([-1, 1])
    min_std: float = 0.05
    # False: every candidate keeps the scripted drag's start (a pixel where observation and goal differ) and CEM
    # searches the drag end only. Why: on held-out objects the imagined grasp is less reliable than that pixel
    # (docs/experiment.md: twin success over 160 held-out drawers 85% with the start kept, 74% with it searched).
    vary_start: bool = False


class ImaginationPlanner:
    """``act(env, obs)`` -> the action whose imagined outcome is closest to the goal (joint or image)."""

    control_mode = "pixel_drag"  # its candidates are drags in the image

    def __init__(self, world_model: WorldModel, cfg: PlannerConfig | None = None, seed: int = 0,
                 segmenter: Segmenter | None = None) -> None:
        cfg = cfg or PlannerConfig()
        if cfg.elites < 1 or cfg.elites > cfg.candidates:
            raise ValueError(f"elites must be in 1..candidates ({cfg.candidates}), got {cfg.elites}")
        self.model = world_model
        self.cfg = cfg
        self.segmenter = segmenter or ClassicalSegmenter()
        self.prior = ScriptedPolicy()
        self.reset(seed)  # seeds CEM's stream and the prior's
        self.last_scores: np.ndarray | None = None  # imagined goal errors of the last step's candidates

    def reset(self, seed: int) -> None:
        """Restart the sampling streams (CEM's and the prior's, two streams derived from ``seed``); ``run_episode``
        calls it at every episode, with :func:`~partrm_gym.policies.episodes.policy_seed` of the episode's seed."""
        cem_seed, prior_seed = np.random.SeedSequence(seed).generate_state(2)  # two streams, not two copies of one
        self.rng = np.random.default_rng(int(cem_seed))
        self.prior.reset(int(prior_seed))

    def act(self, env: object, obs: dict[str, np.ndarray]) -> np.ndarray:
        """``env`` is a PartRM or PartRMSim env (unwrapped or not): it provides ``camera`` and ``render_camera``.

        Each CEM iteration scores its current mean and ``candidates - 1`` samples around it. A drag
        that misses (the task part, or the object when scoring by image) predicts "nothing changes"; it
        never becomes an elite. The best scored drag that hits is returned (even if the model predicts no
        improvement: an action has to be taken); only if every drag missed is the unscored scripted guess returned.
        """
        base = getattr(env, "unwrapped", env)
        if base.cfg.control_mode != self.control_mode:
            raise UsageError(f"the planner's actions are drags in the image: make the env with "
                             f"control_mode='{self.control_mode}' (it has {base.cfg.control_mode!r})")
        camera = base.camera
        views, _ = base.render_camera(self.model.input_cameras)
        readout = base.joint_readout()
        if self.model.has_articulation and readout is not None:
            score = self._joint_scorer(views, obs["image"], obs["goal"], readout, camera)
        else:
            score = self._image_scorer(views, obs["goal"], camera)
        mean, std = self.prior(obs).astype(np.float64), np.full(4, self.cfg.init_std)
        best_action, best_score = mean.copy(), np.inf
        scores_seen = []
        for _ in range(self.cfg.iterations):
            noise = self.rng.standard_normal((self.cfg.candidates, 4))
            noise[0] = 0.0  # the mean itself is always scored
            if not self.cfg.vary_start:
                noise[:, :2] = 0.0
            actions = np.clip(mean + std * noise, -1.0, 1.0)
            scores, hit = score(actions)
            scores_seen.append(scores)
            if not hit.any():
                continue
            ranked = np.where(hit, scores, np.inf)
            elite = actions[np.argsort(ranked)[:min(self.cfg.elites, int(hit.sum()))]]
            mean, std = elite.mean(axis=0), np.maximum(elite.std(axis=0), self.cfg.min_std)
            k = int(np.argmin(ranked))
            if ranked[k] < best_score:
                best_action, best_score = actions[k], float(ranked[k])
        self.last_scores = np.concatenate(scores_seen)
        return best_action.astype(np.float32)

    def _joint_scorer(self, views: np.ndarray, image: np.ndarray, goal: np.ndarray, task: JointReadout,
                      camera: Camera) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Scores = |imagined task-joint fraction after the drag - goal fraction|; hit = the drag grasps the task
        part. One network call (the articulated reconstruction of the current views), none per candidate."""
        state = self.model.predict_articulated(views[None])[0]
        lower, upper, goal_value = task.lower, task.upper, task.goal_value
        part = find_task_part(state, camera, image, goal, task.value, goal_value, (lower, upper),
                              rule="goal_image")
        current = state.gaussians()
        view = render_images(current, [camera])
        shape_task_part(state, part, camera, image, goal, goal_value, view)  # fitted to the change, as the env does
        depth = view.depth[0]
        now = abs(task.fraction - task.goal_fraction)
        grasps: dict[tuple[float, float], tuple[int, np.ndarray] | None] = {}  # by start pixel: with the start
        # kept (vary_start False) every candidate of the step shares one, so it is lifted once

        def score(actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            scores, hit = np.full(len(actions), now), np.zeros(len(actions), bool)
            if part is None:
                return scores, hit
            joint = state.joints[part]
            for i, a in enumerate(actions):
                drag = decode_action(a)
                start = to_pixels(drag[:2], camera)
                key = (float(start[0]), float(start[1]))
                if key not in grasps:
                    grasps[key] = state.grasp(current, depth, camera, start)
                grasped = grasps[key]
                if grasped is None or grasped[0] != part:
                    continue
                value = solve_joint_value(joint, grasped[1], to_pixels(drag[2:], camera), camera)
                scores[i] = abs((value - lower) / (upper - lower) - task.goal_fraction)
                hit[i] = True
            return scores, hit

        return score

    def _image_scorer(self, views: np.ndarray, goal: np.ndarray,
                      camera: Camera) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Scores = imagined goal-image distance after the drag (regenerate transition); hit = the drag grabs the
        object. One batched model call per CEM iteration."""
        current = self.model.predict(views[None])
        image, depth = (x[0] for x in render_images(current, [camera]))
        _, view_depths = render_images(current, self.model.input_cameras)
        return lambda actions: self._imagine(actions, views, image, depth, list(view_depths), goal, camera)

    def _imagine(self, actions: np.ndarray, views: np.ndarray, image: np.ndarray, depth: np.ndarray,
                 view_depths: list[np.ndarray], goal: np.ndarray, camera: object) -> tuple[np.ndarray, np.ndarray]:
        """Imagined distance to the goal after each action, and which actions grab the object (misses keep
        the present distance)."""
        scores = np.full(len(actions), image_distance(image, goal))
        hit = np.zeros(len(actions), bool)
        batch = []
        for i, a in enumerate(actions):
            d, m = drags_for_model(decode_action(a), image, camera, depth, self.segmenter, self.model.input_cameras,
                                   view_depths, self.model.max_drags, self.rng)
            if m.any():
                batch.append((d, m))
                hit[i] = True
        if not batch:
            return scores, hit
        idx = np.flatnonzero(hit)
        predicted = self.model.predict(np.repeat(views[None], len(idx), axis=0), np.stack([d for d, _ in batch]),
                                       np.stack([m for _, m in batch]))
        for j, i in enumerate(idx):
            rgb, _ = render_images(predicted[j:j + 1], [camera])
            scores[i] = image_distance(rgb[0], goal)
        return scores, hit


__all__ = ["ImaginationPlanner", "PlannerConfig"]
