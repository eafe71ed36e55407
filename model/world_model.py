"""The inference API: ``WorldModel.from_pretrained()`` and ``predict(views, drags) -> Gaussians``.

It wraps the network with what every caller needs: the model's input rig (its config's ``input_rig``) at
the model's input resolution and its Plücker maps (computed once), uint8/float input handling, and
``torch.inference_mode``. Both network layouts (``partrm``, ``lgm``) take the project's views and rays and
return Gaussians in the project's frame. With no path, the default model bundled in the package is loaded.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from partrm_gym.articulation import ArticulatedState, GroupingConfig, state_from_prediction
from partrm_gym.cameras import Camera, RigConfig, canonical_rig, plucker_rays
from partrm_gym.errors import UserError
from partrm_gym.gaussians import Gaussians
from partrm_gym.model.checkpoint import load_checkpoint

DEFAULT_WEIGHTS = "default"  # folder under partrm_gym/model/weights/


def default_checkpoint_dir() -> Path:
    return Path(str(resources.files("partrm_gym.model").joinpath("weights", DEFAULT_WEIGHTS)))


class WorldModel:
    """PartRM as a callable world model: views of an object and drags in, the object's next state as Gaussians out.

    Every env, planner, demo and benchmark reaches the network through this class, so none of them handles rigs,
    rays, dtypes or devices.

    ## Inputs
    - **views**: the 4 canonical input views of each scene, uint8 ``[B, 4, H, W, 3]`` (the simulator's layout) or
      floats in [0, 1] ``[B, 4, 3, H, W]``; any square size (resized to ``input_size``). They must be taken with
      :attr:`rig` (:attr:`input_cameras` at ``input_size``): the bundled model's is elevation 20°, an ``lgm`` model's
      elevation 0°.
    - **drags** (:meth:`predict`, :meth:`predict_splatter`): per view up to ``max_drags`` drags (x0, y0, x1, y1)
      normalised to [0, 1] ``[B, 4, D, 4]`` with a validity mask ``[B, 4, D]``; None reconstructs the current state.

    ## Outputs
    - :meth:`predict`: :class:`~partrm_gym.gaussians.Gaussians` ``[B, 4·h·w]``, one per splatter pixel, in the
      project's world frame (docs/conventions.md), ready for :func:`~partrm_gym.rendering.render_images`.
    - :meth:`predict_splatter`: the same as splatter images ``[B, 4, 14, h, w]`` (h = w = :attr:`output_size`).
    - :meth:`predict_articulated`: one :class:`~partrm_gym.articulation.ArticulatedState` per scene (Gaussians, a
      part label per Gaussian, a joint per part); needs the articulation head (:attr:`has_articulation`).

    ## Checkpoints
    :meth:`from_pretrained` loads a folder of ``model.safetensors`` + ``config.yaml`` + ``provenance.json`` (either
    network layout, ``partrm`` or ``lgm``; the weights' SHA-256 is checked); no path: the bundled default model.
    LGM's released weights enter through training (``init_from: lgm:PATH``, docs/lgm.md).

    ## Arguments
    | argument | meaning |
    |---|---|
    | ``network`` | the network (:func:`~partrm_gym.model.networks.build_network`); put in eval mode on ``device`` |
    | ``config`` | its :class:`~partrm_gym.model.config.ModelConfig` (input size, drags, rig) |
    | ``device`` | ``"cpu"`` or a CUDA device (the renderer then uses gsplat) |
    | ``rig`` | the input rig, if not the config's ``input_rig`` |
    | ``provenance`` | where the weights came from (kept for reports) |

    ## Example
    ::

        model = WorldModel.from_pretrained()                               # the bundled model
        views = np.stack([f.rgb for f in scene.render_views(model.input_cameras)])[None]
        state = model.predict_articulated(views)[0]                        # parts and joints
        rgb, depth = render_images(state.gaussians(), [camera])
    """

    def __init__(self, network: torch.nn.Module, config: object, device: str | torch.device = "cpu",
                 rig: RigConfig | None = None, provenance: dict | None = None) -> None:
        self.network = network.to(device).eval()
        if torch.device(device).type == "cpu":  # oneDNN's NHWC convolutions: the UNet pass 12-20% faster on a CPU
            self.network = self.network.to(memory_format=torch.channels_last)
        self.config = config
        self.device = torch.device(device)
        self.provenance = provenance or {}
        # the input views come from the rig the model was trained in (ModelConfig.input_rig: elevation 20° for the
        # partrm layout's configs, 0° for LGM's); a config without one gets the project's canonical rig
        self.rig = rig or getattr(config, "input_rig", None) or RigConfig()
        self.input_size = int(config.input_size)  # type: ignore[attr-defined]
        self.max_drags = int(config.max_drags)  # type: ignore[attr-defined]
        self.input_cameras: list[Camera] = canonical_rig(self.input_size, self.rig)
        self.plucker = torch.stack([plucker_rays(c) for c in self.input_cameras]).to(self.device)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | torch.device = "cpu") -> WorldModel:
        """Load a checkpoint folder (model.safetensors + config.yaml + provenance.json); None = bundled default."""
        folder = Path(path) if path is not None else default_checkpoint_dir()
        if path is None and not folder.is_dir():
            raise FileNotFoundError(
                f"no default model is bundled at {folder} yet; pass a checkpoint folder written by "
                "`partrm-gym train` (…/final), e.g. gym.make('PartRM-Drawer-v0', model_path=PATH)")
        network, config, provenance = load_checkpoint(folder, device=device)
        return cls(network, config, device, provenance=provenance)

    def _views(self, views: torch.Tensor | np.ndarray) -> torch.Tensor:
        v = torch.as_tensor(views)
        if v.dtype == torch.uint8:  # (B, V, H, W, 3) images
            v = v.permute(0, 1, 4, 2, 3).float() / 255.0
        if v.ndim != 5 or v.shape[1:3] != (4, 3):
            raise ValueError(f"views must be (B, 4, 3, H, W) floats in [0, 1] or (B, 4, H, W, 3) uint8, got "
                             f"{tuple(v.shape)} {v.dtype}")
        if v.shape[-2:] != (self.input_size, self.input_size):
            v = torch.nn.functional.interpolate(v.flatten(0, 1), size=(self.input_size,) * 2, mode="bilinear",
                                                antialias=True, align_corners=False).unflatten(0, v.shape[:2])
        if not torch.isfinite(v).all():
            raise ValueError("views contain NaN or inf")
        return v.to(self.device)

    @torch.inference_mode()
    def predict_splatter(self, views: torch.Tensor | np.ndarray, drags: torch.Tensor | np.ndarray | None = None,
                         drag_mask: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Splatter images (B, 4, 14, h, w) of the next state; drags None = reconstruct the current state."""
        v = self._views(views)
        B = v.shape[0]
        d = m = None
        if drags is not None:
            d = torch.as_tensor(drags, dtype=torch.float32, device=self.device)
            m = (torch.as_tensor(drag_mask, dtype=torch.bool, device=self.device) if drag_mask is not None
                 else torch.ones(d.shape[:-1], dtype=torch.bool, device=self.device))
            if d.shape != (B, 4, self.max_drags, 4) or m.shape != d.shape[:-1]:
                raise ValueError(f"drags must be (B, 4, {self.max_drags}, 4) with a (B, 4, {self.max_drags}) mask; "
                                 f"got {tuple(d.shape)} and {tuple(m.shape)}")
            if not torch.isfinite(d).all() or (d < 0).any() or (d > 1).any():
                raise ValueError("drags must be finite and normalised to [0, 1]")
        return self.network(v, self.plucker.expand(B, -1, -1, -1, -1), d, m).float()

    @property
    def output_size(self) -> int:
        """Side of the splatter images the network predicts (one Gaussian per pixel per view)."""
        return int(self.config.output_size)  # type: ignore[attr-defined]

    @property
    def has_articulation(self) -> bool:
        return getattr(self.network, "articulation", None) is not None

    @torch.inference_mode()
    def predict_articulated(self, views: torch.Tensor | np.ndarray, grouping: GroupingConfig | None = None,
                            geometry: torch.Tensor | np.ndarray | None = None) -> list[ArticulatedState]:
        """One articulated imagined state per scene of ``views``: the reconstruction, a part label per Gaussian and
        a joint per part (:func:`partrm_gym.articulation.state_from_prediction`).

        Args:
            views: the 4 canonical input views of each scene, as :meth:`predict` takes them.  # [B, 4, H, W, 3]
            grouping: how articulation votes become parts (default ``GroupingConfig()``).
            geometry: splatter images that replace the reconstruction's Gaussians, pixel for pixel (e.g. built from
                the cameras' depth by :func:`~partrm_gym.gt_splatter.splatter_from_rgbd`); the model then only labels
                them and gives their parts' joints.  # [B, 4, 14, h, w] at :attr:`output_size`
        """
        if not self.has_articulation:
            raise UserError("this world model has no articulation head (its config.yaml lacks "
                            "articulation_head: true); use transition='regenerate' or a model trained with the "
                            "articulation stage (configs/train/tiny_stage3.yaml)")
        v = self._views(views)
        splatter, art = self.network.forward_articulated(v, self.plucker.expand(v.shape[0], -1, -1, -1, -1))
        if geometry is not None:
            given = torch.as_tensor(geometry, dtype=splatter.dtype, device=splatter.device)
            if given.shape != splatter.shape:
                raise ValueError(f"geometry must be splatter images {tuple(splatter.shape)} (the model's output size "
                                 f"{self.output_size}), got {tuple(given.shape)}")
            splatter = given
        return [state_from_prediction(splatter[b:b + 1].float(), art[b:b + 1].float(), grouping or GroupingConfig())
                for b in range(v.shape[0])]

    def predict(self, views: torch.Tensor | np.ndarray, drags: torch.Tensor | np.ndarray | None = None,
                drag_mask: torch.Tensor | np.ndarray | None = None) -> Gaussians:
        """The next state of B scenes as Gaussians, after the drags (PartRM's regenerative prediction).

        Args:
            views: the 4 canonical input views of each scene's current state: uint8 images # [B, 4, H, W, 3]
                (the simulator's layout) or floats in [0, 1] # [B, 4, 3, H, W]; resized to the model's input.
            drags: per view, up to ``max_drags`` drags (x0, y0, x1, y1) normalised to [0, 1] # [B, 4, D, 4];
                None reconstructs the current state.
            drag_mask: which drags are real # [B, 4, D] bool (default: all).

        Returns:
            Gaussians # [B, 4·h·w] (one per splatter pixel of the 4 views), on the model's device.

        Example::

            model = WorldModel.from_pretrained()                      # the bundled model
            views = np.stack([f.rgb for f in scene.render_views(model.input_cameras)])[None]
            drags, mask = ...                                         # partrm_gym.model.drag_propagation
            g = model.predict(views, drags, mask)
            rgb, depth = render_images(g, [camera])                   # partrm_gym.rendering
        """
        return Gaussians.from_splatter(self.predict_splatter(views, drags, drag_mask))
