"""``gym.make_vec("PartRM-*-v0", n, vectorization_mode="vector_entry_point")``: batched model calls.

N world-model environments share one :class:`WorldModel`. Resets (the first, and every
autoreset) reconstruct all the envs that reset in one model call. In the regenerate transition
each step prepares every env's drag (segment, propagate, transfer — per env), runs the model
once on the batch of those whose drag hit the object, then renders and scores each; the
articulated transition calls no network during a step (each env moves its part and renders).

Episodes reset automatically on the step after they end (Gymnasium's next-step autoreset),
or, with ``autoreset_mode=AutoresetMode.SAME_STEP``, in the step that ends them, the last
observation and info going to ``info["final_obs"]`` / ``info["final_info"]`` (what
Stable-Baselines3's VecEnv semantics need).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from partrm_gym.envs.world_model_env import PartRMEnv
from partrm_gym.model.world_model import WorldModel


class PartRMVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` world-model environments in one process, sharing one :class:`WorldModel` so that their model
    calls are batched (``gym.make_vec("PartRM-Drawer-v0", num_envs=8, vectorization_mode="vector_entry_point")``).

    ## Action Space
    ``Box(-1, 1, (num_envs, 4), float32)``: one action per env, read as in the single env (``control_mode``).

    ## Observation Space
    ``Dict(image=Box(0, 255, (num_envs, R, R, 3), uint8), goal=<same>)``: the single env's observations, stacked.

    ## Rewards
    Each env's own (see :class:`~partrm_gym.envs.world_model_env.PartRMEnv`), as a ``(num_envs,)`` array.

    ## Starting State
    ``reset(seed=s)`` seeds env i with ``s + i`` (or ``seed`` may be a list, one per env), so env i draws the same
    task as a single env reset with that seed. Every reset of a step, first or automatic, reconstructs all the
    envs that reset in one model call.

    ## Episode End
    As in the single env (terminated on success, truncated after ``max_steps``); an env that ended resets on the
    next step (``AutoresetMode.NEXT_STEP``, Gymnasium's default) or in the same step
    (``autoreset_mode=AutoresetMode.SAME_STEP``, with ``info["final_obs"]`` / ``info["final_info"]``, what
    Stable-Baselines3's VecEnv needs).

    ## Arguments
    | argument | default | meaning |
    |---|---|---|
    | ``num_envs`` | (required) | how many envs |
    | ``model_path`` / ``world_model`` | bundled model | one world model for all envs |
    | ``device`` | ``"cpu"`` | the model's device |
    | ``render_mode`` | ``"rgb_array"`` | ``render()`` returns one image per env |
    | ``autoreset_mode`` | ``NEXT_STEP`` | ``NEXT_STEP`` or ``SAME_STEP`` |
    | ``env_class`` | :class:`PartRMEnv` | the env to vectorise (its ``prepare_reset``/``finish_reset`` split) |
    | the env's keywords | | e.g. ``transition``, ``category``, ``control_mode`` (the same for every env) |

    ## Info
    Gymnasium's vector layout: each key of the single env's ``info`` as an array over envs, with a ``_key`` mask
    of the envs that reported it (``sim_image`` is left out).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": ["rgb_array"]}

    def __init__(self, num_envs: int, model_path: str | Path | None = None, device: str = "cpu",
                 world_model: WorldModel | None = None, render_mode: str | None = "rgb_array",
                 autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP, env_class: type[PartRMEnv] = PartRMEnv,
                 **env_kwargs: Any) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        if autoreset_mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ValueError(f"autoreset_mode must be NEXT_STEP or SAME_STEP, got {autoreset_mode}")
        self.metadata = {**self.metadata, "autoreset_mode": autoreset_mode}
        self.model = world_model or WorldModel.from_pretrained(model_path, device=device)
        self.envs = [env_class(world_model=self.model, render_mode=render_mode, **env_kwargs) for _ in range(num_envs)]
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.single_action_space = self.envs[0].action_space
        self.single_observation_space = self.envs[0].observation_space
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._needs_reset = np.zeros(num_envs, dtype=bool)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None
              ) -> tuple[dict, dict]:
        seeds = seed if isinstance(seed, list) else [None if seed is None else seed + i for i in range(self.num_envs)]
        results = self._reset_envs(list(range(self.num_envs)), seeds, options)
        self._needs_reset[:] = False
        return self._stack([o for o, _ in results]), self._infos([i for _, i in results])

    def _reset_envs(self, indices: list[int], seeds: list[int | None] | None = None, options: dict | None = None
                    ) -> list[tuple[dict, dict]]:
        """Reset the envs ``indices`` with one model call for all of them; their (obs, info) in that order."""
        if not indices:
            return []
        seeds = seeds or [None] * len(indices)
        requests = [self.envs[i].prepare_reset(seed=s, options=options) for i, s in zip(indices, seeds)]
        predictions = self.envs[indices[0]].predict_resets(requests)
        return [self.envs[i].finish_reset(r, p) for i, r, p in zip(indices, requests, predictions)]

    def step(self, actions: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs, 4):
            raise ValueError(f"actions must have shape ({self.num_envs}, 4), got {actions.shape}")
        requests: dict[int, tuple] = {}
        for i, env in enumerate(self.envs):
            if not self._needs_reset[i]:
                req = env.prepare_step(actions[i])
                if req is not None:
                    requests[i] = req
        predictions = {}
        if requests:
            idx = list(requests)
            views, drags, mask = (np.concatenate([requests[i][k] for i in idx]) for k in range(3))
            gaussians = self.model.predict(views, drags, mask)
            predictions = {i: gaussians[j] for j, i in enumerate(idx)}
        obs, rewards, terms, truncs, infos = [], np.zeros(self.num_envs), np.zeros(self.num_envs, bool), \
            np.zeros(self.num_envs, bool), []
        waiting = np.flatnonzero(self._needs_reset).tolist()
        resets = dict(zip(waiting, self._reset_envs(waiting)))
        for i, env in enumerate(self.envs):
            if i in resets:
                o, info = resets[i]
            else:
                o, rewards[i], terms[i], truncs[i], info = env.finish_step(predictions.get(i))
            obs.append(o)
            infos.append(info)
        done = terms | truncs
        if self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP:
            final_obs = np.empty(self.num_envs, dtype=object)
            final_info: list[dict] = [{} for _ in range(self.num_envs)]
            ended = np.flatnonzero(done).tolist()
            for i, (o, info) in zip(ended, self._reset_envs(ended)):
                final_obs[i], final_info[i] = obs[i], infos[i]
                obs[i], infos[i] = o, info
            out_info = self._infos(infos)
            if done.any():  # Gymnasium's layout: final_obs an object array, final_info a dict of arrays
                out_info.update({"final_obs": final_obs, "_final_obs": done.copy(),
                                 "final_info": self._infos(final_info), "_final_info": done.copy()})
            return self._stack(obs), rewards, terms, truncs, out_info
        self._needs_reset = done
        return self._stack(obs), rewards, terms, truncs, self._infos(infos)

    def render(self) -> tuple[np.ndarray, ...] | None:
        return tuple(env.render() for env in self.envs) if self.render_mode == "rgb_array" else None

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()

    @staticmethod
    def _stack(obs: list[dict]) -> dict[str, np.ndarray]:
        return {k: np.stack([o[k] for o in obs]) for k in obs[0]}

    def _infos(self, infos: list[dict]) -> dict[str, Any]:
        """Gymnasium's vector info layout: each key an array over envs plus a ``_key`` presence mask."""
        out: dict[str, Any] = {}
        for i, info in enumerate(infos):
            for k, v in info.items():
                if k == "sim_image":
                    continue
                if k not in out:
                    dtype = np.asarray(v).dtype if np.isscalar(v) and not isinstance(v, str) else object
                    out[k] = np.zeros(self.num_envs, dtype=dtype)
                    out[f"_{k}"] = np.zeros(self.num_envs, dtype=bool)
                out[k][i] = v
                out[f"_{k}"][i] = True
        return out


def images_vector_env(num_envs: int, **kwargs: Any) -> PartRMVectorEnv:
    """``gym.make_vec("PartRM-Images-v0", n, vectorization_mode="vector_entry_point", task_dir=DIR)``: image-defined
    envs batched like the others (their resets read task folders instead of a simulator)."""
    from partrm_gym.envs.image_env import PartRMImagesEnv

    return PartRMVectorEnv(num_envs, env_class=PartRMImagesEnv, **kwargs)
