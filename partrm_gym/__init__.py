"""PartRM-Gym: a part-level 4D world model (PartRM) as Gymnasium environments.

``import partrm_gym`` registers every environment ID (Gymnasium 1.x no longer loads
entry points), so ``gym.make("PartRM-Drawer-v0")`` works right after the import.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from partrm_gym.registration import register_envs

register_envs()

# The main entry points, imported on first use so that ``import partrm_gym`` stays fast and torch-free.
_LAZY = {"WorldModel": "partrm_gym.model.world_model", "Gaussians": "partrm_gym.gaussians",
         "rasterize": "partrm_gym.rendering", "render_images": "partrm_gym.rendering", "Scene": "partrm_gym.scene"}

if TYPE_CHECKING:
    from partrm_gym.gaussians import Gaussians
    from partrm_gym.model.world_model import WorldModel
    from partrm_gym.rendering import rasterize, render_images
    from partrm_gym.scene import Scene


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'partrm_gym' has no attribute {name!r}")


__all__ = ["Gaussians", "Scene", "WorldModel", "__version__", "rasterize", "render_images"]
