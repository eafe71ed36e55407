"""Random-shift image augmentation for the agents' CNN (DrQ / RAD), applied while training only.

Why: an agent trained in imagination learns on the world model's renders and is evaluated on the camera's, and
its training tasks are a few hundred objects. Shifting each training image (and its goal, the same way) by a few
pixels keeps the CNN from keying on exact pixel positions. Measured in the twin (docs/policies.md): PPO from a
behaviour clone that succeeded 80% on 40 held-out drawers kept 75% with the shift in its updates and fell to 55%
without it. Under ``object_drag`` the shift leaves the right action unchanged: it is relative to the object's
bounding box, which moves with the image.
"""

from __future__ import annotations

import gymnasium as gym
import torch
import torch.nn.functional as F
from stable_baselines3.common.torch_layers import NatureCNN


def random_shift(images: torch.Tensor, shift: int) -> torch.Tensor:
    """``images`` (B, C, H, W), each moved by its own random (dy, dx) in [-shift, shift]² (whole pixels, from
    torch's global generator), the edge pixels repeated where an image moves away from its border.
    ``shift`` 0 returns ``images``.

    >>> random_shift(torch.rand(8, 6, 64, 64), 4).shape
    torch.Size([8, 6, 64, 64])
    """
    if shift <= 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (shift, shift, shift, shift), mode="replicate")
    dy, dx = torch.randint(0, 2 * shift + 1, (2, b)).tolist()
    return torch.stack([padded[i, :, y:y + h, x:x + w] for i, (y, x) in enumerate(zip(dy, dx))])


class ShiftedNatureCNN(NatureCNN):
    """SB3's ``NatureCNN`` (same layers and weights) that shifts its input by up to ``shift`` pixels in training
    mode. SB3 switches a policy to training mode only for its updates, so rollouts and evaluation see the images as
    they are; behaviour cloning (:mod:`partrm_gym.policies.warm_start`) trains in training mode too."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 512, normalized_image: bool = False,
                 shift: int = 0) -> None:
        super().__init__(observation_space, features_dim, normalized_image)
        self.shift = shift

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        if self.training:
            observations = random_shift(observations, self.shift)
        return super().forward(observations)


__all__ = ["ShiftedNatureCNN", "random_shift"]
