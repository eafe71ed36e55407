"""PartRM-Gym: a part-level 4D world model (PartRM) as Gymnasium environments.

``import partrm_gym`` registers every environment ID (Gymnasium 1.x no longer loads
entry points), so ``gym.make("PartRM-Drawer-v0")`` works right after the import.
"""

from __future__ import annotations

__version__ = "0.1.0"

from partrm_gym.envs.registration import register_envs

register_envs()

__all__ = ["__version__"]
