"""Stage 3's data: each source state as the frozen model reconstructs it, labelled by the true geometry.

Why: at run time the articulation head labels the Gaussians of the model's *own* reconstruction, which do not
sit on the GT splatter's pixel layout (blurred edges, floaters, depth errors). A head trained on the GT layout
put many of its movable labels on the wrong Gaussians (docs/articulation.md). Here every reconstructed
Gaussian takes the part of the nearest true surface point (the GT splatter's foreground pixels), the same rule
``partrm-gym bench rollout`` scores against, and the head's targets (axis, pivot and centre offsets) are
computed from the reconstructed positions.

The backbone is frozen in stage 3, so its features and reconstruction of a state never change: they are
computed once per state and kept in memory (about 0.7 MB per state for the tiny model). At LGM's size a state's
features take about 34 MB, so ``cache_states`` bounds the cache (least recently used out; a state that left it is
recomputed, the same values again).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch.utils.data import Dataset

from partrm_gym.articulation import FLOATER_DISTANCE, MIN_VISIBLE_OPACITY, STATIC, nearest_surface_labels
from partrm_gym.gaussians import OPACITY, XYZ
from partrm_gym.train.dataset import MixedPartDragDataset, PartDragDataset
from partrm_gym.train.losses import articulation_targets

INVISIBLE = -1  # label of a reconstructed Gaussian too faint to be seen: not scored by the loss


def reconstruction_part_labels(splatter: torch.Tensor, gt_splatter: torch.Tensor, gt_part: torch.Tensor,
                               max_distance: float = FLOATER_DISTANCE) -> torch.Tensor:
    """Per pixel of a reconstruction's splatter images, the part its Gaussian lies on.

    Args:
        splatter: the model's reconstruction of a state.  # [V, 14, h, w]
        gt_splatter: that state's GT splatter images (centres on the true surfaces).  # [V, 14, h, w]
        gt_part: the GT pixels' parts: -1 background, 0 static, k + 1 joint k.  # [V, h, w] long

    Returns:
        parts in ``gt_part``'s encoding, -1 for Gaussians fainter than ``MIN_VISIBLE_OPACITY``; floaters
        (farther than ``max_distance`` from every true surface point) are static.  # [V, h, w] long
    """
    V, _, h, w = splatter.shape
    means = splatter[:, XYZ].permute(0, 2, 3, 1).reshape(-1, 3)
    fg = gt_part >= 0
    points = gt_splatter[:, XYZ].permute(0, 2, 3, 1)[fg]
    point_parts = gt_part[fg] - 1  # STATIC (-1) or joint k
    labels = nearest_surface_labels(means, points, point_parts, max_distance) + 1  # 0 static, k + 1 joint k
    assert STATIC + 1 == 0
    visible = splatter[:, OPACITY].reshape(-1) > MIN_VISIBLE_OPACITY
    return torch.where(visible, labels, INVISIBLE).reshape(V, h, w)


class FrozenReconstructions(Dataset):
    """Per pair of ``dataset``, its source state as ``model`` reconstructs it:

    ``features_src`` (4, C, h, w) the UNet features the articulation head reads; ``part_recon`` (4, h, w)
    the part of each reconstructed Gaussian (:func:`reconstruction_part_labels`); ``articulation_recon``
    (4, 11, h, w) the head's targets at the reconstructed positions.
    """

    def __init__(self, dataset: PartDragDataset | MixedPartDragDataset, model: torch.nn.Module,
                 device: torch.device | str = "cpu", cache_states: int | None = None) -> None:
        self.dataset, self.model, self.device = dataset, model, torch.device(device)
        self._cache: OrderedDict[tuple[str, str], dict[str, torch.Tensor]] = OrderedDict()
        self._cache_states = cache_states  # None: every state stays

    def __len__(self) -> int:
        return len(self.dataset)

    @torch.no_grad()
    def reconstruction(self, object_id: str, name: str) -> dict[str, torch.Tensor]:
        key = (object_id, name)
        if key in self._cache:
            self._cache.move_to_end(key)
        else:
            state = self.dataset.state(object_id, name)
            images = state["input_rgb"].unsqueeze(0).to(self.device)
            plucker = self.dataset.plucker.unsqueeze(0).to(self.device)
            was_training = self.model.training
            self.model.eval()
            splatter, features = self.model.reconstruct_with_features(images, plucker)
            self.model.train(was_training)
            splatter, features = splatter[0].float().cpu(), features[0].float().cpu()
            part = reconstruction_part_labels(splatter, state["splatter"], state["part"])
            target = articulation_targets(splatter[:, XYZ], part, state["joint_revolute"], state["joint_axis"],
                                          state["joint_pivot"])
            self._cache[key] = {"features_src": features, "part_recon": part, "articulation_recon": target}
            if self._cache_states is not None and len(self._cache) > self._cache_states:
                self._cache.popitem(last=False)
        return self._cache[key]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Only what stage 3 reads: once every state is cached, no file is read again."""
        item = self.dataset.items[index]
        return self.reconstruction(item.object_id, item.src)
