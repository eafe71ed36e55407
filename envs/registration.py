"""Environment IDs, registered by ``import partrm_gym`` (Gymnasium 1.x loads no entry points)."""

from __future__ import annotations

import gymnasium as gym

# Env name -> task category ("any": every training category; the held-out one with split="test").
ENV_CATEGORIES = {
    "Drawer": "storage_drawer",
    "Door": "storage_door",
    "Microwave": "microwave",
    "Laptop": "laptop",
    "Articulated": "any",
}
SIM_ENTRY_POINT = "partrm_gym.envs.sim_env:PartRMSimEnv"


def register_envs() -> None:
    for name, category in ENV_CATEGORIES.items():
        sim_id = f"PartRMSim-{name}-v0"
        if sim_id not in gym.registry:
            gym.register(sim_id, entry_point=SIM_ENTRY_POINT, kwargs={"category": category},
                         max_episode_steps=None, disable_env_checker=False)
