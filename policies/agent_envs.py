"""The envs as SB3 agents see them: the current and goal images stacked into one 6-channel image, and a
VecEnv whose world-model envs share one batched model call per step."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv

from partrm_gym.policies.agent_config import AgentConfig
from partrm_gym.registration import check_env_id


def stacked_space(observation_space: gym.spaces.Dict) -> gym.spaces.Box:
    """The Box of the current and goal images stacked along channels."""
    h, w, c = observation_space["image"].shape
    return gym.spaces.Box(0, 255, (h, w, 2 * c), np.uint8)


class StackImageGoal(gym.ObservationWrapper):
    """Dict(image, goal) of (H, W, 3) uint8 -> one (H, W, 6) uint8 image."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = stacked_space(env.observation_space)

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return stack_observation(observation)


def stack_observation(obs: dict[str, np.ndarray]) -> np.ndarray:
    """The current and the goal image stacked along channels: (H, W, 6) uint8, what the agents see."""
    return np.concatenate([obs["image"], obs["goal"]], axis=-1)


def make_vec_env(cfg: AgentConfig) -> Any:
    """SB3 VecEnv: world-model envs batch their model calls (:class:`WorldModelVecEnv`), twins step one by one."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    if cfg.env_id.startswith("PartRM-"):
        return WorldModelVecEnv(cfg.env_id, cfg.env_kwargs, cfg.n_envs, cfg.seed)
    venv = DummyVecEnv([lambda i=i: make_env(cfg.env_id, cfg.env_kwargs, cfg.seed + i) for i in range(cfg.n_envs)])
    venv.seed(cfg.seed)
    return venv


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None, seed: int | None = None) -> gym.Env:
    import partrm_gym  # noqa: F401  (registers the env IDs)

    check_env_id(env_id)
    env = StackImageGoal(gym.make(env_id, **(env_kwargs or {})))
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


class WorldModelVecEnv(VecEnv):
    """SB3's view of ``gym.make_vec("PartRM-*", n)``: one batched world-model call per step for all n envs.

    SB3 wants an ended episode reset within the same step and its last observation in
    ``info["terminal_observation"]``: the vector env's SAME_STEP autoreset provides exactly that.
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], n_envs: int, seed: int) -> None:
        import partrm_gym  # noqa: F401  (registers the env IDs)

        self.venv = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point",
                                 autoreset_mode=AutoresetMode.SAME_STEP, **env_kwargs)
        super().__init__(n_envs, stacked_space(self.venv.single_observation_space), self.venv.single_action_space)
        self._seed: int | None = seed
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        obs, _ = self.venv.reset(seed=self._seed)
        self._seed = None  # later resets continue each env's own random stream
        return stack_observation(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float32)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, rewards, terms, truncs, info = self.venv.step(self._actions)
        dones = terms | truncs
        infos: list[dict] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            final = info["final_info"]  # Gymnasium's layout: arrays over envs
            infos[i] = {"is_success": bool(final["is_success"][i]) if "is_success" in final else False,
                        "terminal_observation": stack_observation(info["final_obs"][i]),
                        "TimeLimit.truncated": bool(truncs[i] and not terms[i])}
        return stack_observation(obs), rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def seed(self, seed: int | None = None) -> list[int | None]:
        self._seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def _envs(self, indices: Any) -> list[gym.Env]:
        return [self.venv.envs[i] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(e, attr_name) for e in self._envs(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        for e in self._envs(indices):
            setattr(e, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        return [getattr(e, method_name)(*args, **kwargs) for e in self._envs(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


__all__ = ["StackImageGoal", "WorldModelVecEnv", "make_env", "make_vec_env", "stack_observation",
           "stacked_space"]
