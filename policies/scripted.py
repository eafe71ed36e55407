"""Policies that need no learning: random drags, and a scripted drag read off the observation.

The scripted policy only looks at the observation dict (current and goal images): the pixels
that differ between the two are where the part is now and where it should be; it drags from
the changed region of the current image towards the changed region's centre in the goal image
(one drag per step). No simulator state is used, so it runs the same in both env families.
"""

from __future__ import annotations

import numpy as np

from partrm_gym.envs.task import object_mask

CHANGE_THRESHOLD = 24  # grey levels: a pixel "changed" if it differs more than this from the goal


class RandomPolicy:
    """Uniform actions in [-1, 1]^4: a random drag under whatever ``control_mode`` the env has."""

    control_mode = None  # any

    def __init__(self, seed: int = 0) -> None:
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """Restart the random stream from ``seed``. ``run_episode`` calls it at every episode, with
        :func:`~partrm_gym.policies.episodes.policy_seed` of the episode's seed."""
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, 4).astype(np.float32)


class ScriptedPolicy:
    """Grab a changed pixel of the object in the current image, drag it towards where the goal differs.

    ``start="random"`` grabs a random changed pixel (the baseline of the experiments); ``"central"`` the changed
    pixel nearest the changed region's centre, which makes the policy a deterministic function of the
    observation — what behaviour cloning needs (a regression onto random pixels learns their mean, which may lie
    off the part). Twin success of both on 40 drawers is in docs/policies.md."""

    control_mode = "pixel_drag"  # its actions are drags in the image

    def __init__(self, seed: int = 0, start: str = "random") -> None:
        if start not in ("random", "central"):
            raise ValueError(f"start must be 'random' or 'central', got {start!r}")
        self.start = start
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """Restart the random stream from ``seed``. ``run_episode`` calls it at every episode, with
        :func:`~partrm_gym.policies.episodes.policy_seed` of the episode's seed."""
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        image, goal = obs["image"].astype(np.int16), obs["goal"].astype(np.int16)
        H, W = image.shape[:2]
        changed = np.abs(image - goal).max(axis=-1) > CHANGE_THRESHOLD
        on_object_now = object_mask(obs["image"])
        on_object_goal = object_mask(obs["goal"])
        src = np.argwhere(changed & on_object_now)
        dst = np.argwhere(changed & on_object_goal)
        if len(src) == 0 or len(dst) == 0:
            return self.rng.uniform(-0.2, 0.2, 4).astype(np.float32)  # nothing to fix: a small random nudge
        if self.start == "central":
            y0, x0 = src[np.argmin(np.square(src - src.mean(axis=0)).sum(axis=1))]
        else:
            y0, x0 = src[self.rng.integers(len(src))]
        # move the grabbed point by the shift between the two changed regions' centres
        shift = dst.mean(axis=0) - src.mean(axis=0)
        y1, x1 = np.array([y0, x0]) + shift
        drag = np.array([(x0 + 0.5) / W, (y0 + 0.5) / H, (x1 + 0.5) / W, (y1 + 0.5) / H])
        return (np.clip(drag, 0.0, 1.0) * 2 - 1).astype(np.float32)


def make_policy(name: str, seed: int = 0) -> RandomPolicy | ScriptedPolicy:
    if name == "random":
        return RandomPolicy(seed)
    if name == "scripted":
        return ScriptedPolicy(seed)
    raise ValueError(f"unknown policy {name!r}; choose 'random' or 'scripted'")
