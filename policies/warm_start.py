"""Warm-starting an SB3 agent by behaviour cloning the scripted policy in its own training env.

PPO from a random initialisation on 64² images rarely finds the task part within a CPU budget of
10^4 steps (docs/experiment.md). The scripted policy already solves most tasks, so the agent first
imitates it — jump-start RL / BC-then-RL, as in demonstration-augmented policy learning — and PPO
then improves on that. The demonstrations are recorded in the env the agent trains in, so an agent
trained in imagination has still seen nothing but imagination.

1. :func:`scripted_demonstrations` runs the scripted policy in the training VecEnv and keeps the steps
   of episodes that end in success, with their discounted returns. The scripted policy that acts grabs a
   random changed pixel (it retries elsewhere where a grasp missed); each step is labelled with the drag
   of the scripted policy that grabs the changed region's central pixel (one action per observation:
   a regression onto random pixels learns their mean, which may lie off the part). Drags become actions
   of the env's control mode (:func:`~partrm_gym.envs.task.action_for_drag`).
2. :func:`behaviour_clone` regresses the policy's mean action onto the demonstrated actions and the
   value head onto the returns, then sets the policy's exploration noise to ``std`` (PPO starts at 1,
   which on [-1, 1] actions would bury the cloned behaviour in noise).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from partrm_gym.envs.task import TaskConfig, action_for_drag, decode_action
from partrm_gym.policies.scripted import ScriptedPolicy


def scripted_demonstrations(venv: Any, task: TaskConfig, steps: int, gamma: float, seed: int = 0,
                            progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``steps`` env steps of the scripted policy on ``venv`` (an SB3 VecEnv of stacked image+goal observations
    (n, H, W, 6)); returns the (observations (M, H, W, 6) uint8, labelled actions (M, 4) float32, discounted
    returns (M,)) of the episodes that ended in success. ``task`` gives the env's control mode."""
    from tqdm import tqdm

    n = venv.num_envs
    actors = [ScriptedPolicy(seed + i) for i in range(n)]  # random grasp pixels: retries where a grasp missed
    teacher = ScriptedPolicy(start="central")  # the label: one action per observation
    episodes: list[list[tuple[np.ndarray, np.ndarray, float]]] = [[] for _ in range(n)]
    kept_obs, kept_actions, kept_returns = [], [], []
    obs = venv.reset()
    for _ in tqdm(range(max(1, steps // n)), desc="scripted demonstrations", unit="step", disable=not progress):
        actions, labels = np.zeros((n, 4), np.float32), np.zeros((n, 4), np.float32)
        for i in range(n):
            current = {"image": obs[i, ..., :3], "goal": obs[i, ..., 3:]}
            actions[i] = action_for_drag(task, decode_action(actors[i](current)), current["image"])
            labels[i] = action_for_drag(task, decode_action(teacher(current)), current["image"])
        next_obs, rewards, dones, infos = venv.step(actions)
        for i in range(n):
            episodes[i].append((obs[i], labels[i], float(rewards[i])))
            if dones[i]:
                if infos[i].get("is_success", False):
                    ret, returns = 0.0, []
                    for _, _, r in reversed(episodes[i]):
                        ret = r + gamma * ret
                        returns.append(ret)
                    kept_obs += [o for o, _, _ in episodes[i]]
                    kept_actions += [a for _, a, _ in episodes[i]]
                    kept_returns += returns[::-1]
                episodes[i] = []
        obs = next_obs
    if not kept_obs:
        raise RuntimeError(f"the scripted policy solved no episode in {steps} steps of this env: nothing to imitate; "
                           "use warm_start: none")
    return np.stack(kept_obs), np.stack(kept_actions), np.asarray(kept_returns, np.float32)


def mean_action_and_value(policy: Any, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The policy's mean action (B, A) and value (B,) from **one** pass of its features extractor, as SB3's
    ``evaluate_actions`` does in PPO's updates. Why: with a training-time augmentation in the extractor
    (:class:`~partrm_gym.policies.augment.ShiftedNatureCNN`) two passes would show the action head and the value
    head differently shifted images of the same batch."""
    features = policy.extract_features(obs)
    if policy.share_features_extractor:
        latent_pi, latent_vf = policy.mlp_extractor(features)
    else:
        latent_pi = policy.mlp_extractor.forward_actor(features[0])
        latent_vf = policy.mlp_extractor.forward_critic(features[1])
    return policy.action_net(latent_pi), policy.value_net(latent_vf).squeeze(-1)


def behaviour_clone(model: Any, observations: np.ndarray, actions: np.ndarray, returns: np.ndarray, epochs: int,
                    std: float, batch_size: int = 64, learning_rate: float = 1e-3, seed: int = 0) -> dict[str, float]:
    """Fit ``model.policy`` (an SB3 ``ActorCriticPolicy``): mean action → ``actions`` (M, 4) and value → ``returns``
    (M,) by mean squared error, ``epochs`` passes over ``observations`` (M, H, W, 6); then exploration std ←
    ``std``. Returns the last epoch's mean action and value losses."""
    policy = model.policy
    params = [p for name, p in policy.named_parameters() if name != "log_std"]
    optimiser = torch.optim.Adam(params, lr=learning_rate)
    rng = np.random.default_rng(seed)
    target_actions = torch.as_tensor(actions, dtype=torch.float32, device=policy.device)
    target_returns = torch.as_tensor(returns, dtype=torch.float32, device=policy.device)
    policy.set_training_mode(True)
    action_loss = value_loss = float("nan")
    for _ in range(epochs):
        order = rng.permutation(len(observations))
        sums = np.zeros(2)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            obs, _ = policy.obs_to_tensor(observations[idx])
            mean, values = mean_action_and_value(policy, obs)
            a_loss = (mean - target_actions[idx]).square().mean()
            v_loss = (values - target_returns[idx]).square().mean()
            optimiser.zero_grad()
            (a_loss + 0.5 * v_loss).backward()
            optimiser.step()
            sums += [a_loss.detach().item() * len(idx), v_loss.detach().item() * len(idx)]
        action_loss, value_loss = sums / len(order)
    policy.set_training_mode(False)
    with torch.no_grad():
        policy.log_std.fill_(float(np.log(std)))
    return {"action_loss": float(action_loss), "value_loss": float(value_loss)}


__all__ = ["behaviour_clone", "mean_action_and_value", "scripted_demonstrations"]
