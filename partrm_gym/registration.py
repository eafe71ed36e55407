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
WORLD_MODEL_ENTRY_POINT = "partrm_gym.envs.world_model_env:PartRMEnv"
VECTOR_ENTRY_POINT = "partrm_gym.envs.vector_env:PartRMVectorEnv"
IMAGES_ENV_ID = "PartRM-Images-v0"  # a world-model env made from a folder of images: no simulator (docs/envs.md)
IMAGES_ENTRY_POINT = "partrm_gym.envs.image_env:PartRMImagesEnv"
IMAGES_VECTOR_ENTRY_POINT = "partrm_gym.envs.vector_env:images_vector_env"


def check_env_id(env_id: str) -> None:
    """Raise a UsageError listing this package's env IDs if ``env_id`` is not one of them."""
    register_envs()
    ours = sorted(k for k in gym.registry if k.startswith(("PartRM-", "PartRMSim-")))
    if env_id not in ours:
        from partrm_gym.errors import UsageError

        raise UsageError(f"unknown env {env_id!r}; choose one of {ours}")


def register_envs() -> None:
    for name, category in ENV_CATEGORIES.items():
        for prefix, entry in (("PartRMSim", SIM_ENTRY_POINT), ("PartRM", WORLD_MODEL_ENTRY_POINT)):
            env_id = f"{prefix}-{name}-v0"
            if env_id not in gym.registry:
                vector = VECTOR_ENTRY_POINT if prefix == "PartRM" else None
                gym.register(env_id, entry_point=entry, vector_entry_point=vector, kwargs={"category": category})
    if IMAGES_ENV_ID not in gym.registry:
        gym.register(IMAGES_ENV_ID, entry_point=IMAGES_ENTRY_POINT, vector_entry_point=IMAGES_VECTOR_ENTRY_POINT)
