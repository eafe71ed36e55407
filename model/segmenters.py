"""Segmenters: from the pixel a drag starts on to the mask of the part it grabs.

Three interchangeable back-ends behind one call, ``segment(image, point) -> mask``:

* :class:`SimLinkSegmenter` — exact link masks from the simulator (sim-backed use only);
* :class:`SamSegmenter` — segment-anything's ``SamPredictor``, weights from a local file only;
* :class:`ClassicalSegmenter` — OpenCV flood fill bounded by edges, the fallback with no weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from partrm_gym.cameras import pixel_index
from partrm_gym.drags import grasped_joint
from partrm_gym.errors import UserError
from partrm_gym.scene import JointInfo, SimFrame

SAM_MODEL_TYPES = ("vit_b", "vit_l", "vit_h")


class SegmenterUnavailable(UserError, RuntimeError):
    """A segmenter's weights or inputs are missing; the message says how to provide them."""


class Segmenter(Protocol):
    def segment(self, image: np.ndarray, point: tuple[float, float]) -> np.ndarray:
        """Boolean (H, W) mask of the part under ``point`` = (x, y) in pixels of ``image`` (H, W, 3 uint8)."""
        ...


def _pixel(point: tuple[float, float], shape: tuple[int, ...]) -> tuple[int, int]:
    """(x, y) of the pixel of an image of ``shape`` (H, W, ...) containing ``point`` (:func:`pixel_index`)."""
    rows, cols = pixel_index(np.asarray(point), shape[1], shape[0])
    return int(cols), int(rows)


class SimLinkSegmenter:
    """The simulator's segmentation: every link moved by the joint that moves the clicked link."""

    def __init__(self, frame: SimFrame, joints: list[JointInfo]) -> None:
        self.frame, self.joints = frame, joints

    def segment(self, image: np.ndarray, point: tuple[float, float]) -> np.ndarray:
        x, y = _pixel(point, self.frame.seg.shape)
        k = grasped_joint(self.joints, int(self.frame.seg[y, x]))
        if k is None:
            return np.zeros(self.frame.seg.shape, dtype=bool)
        return self.frame.part_mask(self.joints[k])


class ClassicalSegmenter:
    """Flood fill from the point over similar colours, stopped at Canny edges.

    Part boundaries in renders are colour or shading edges; the edge barrier keeps a door
    of the same colour as its cabinet from leaking into the body through a thin gap.
    """

    def __init__(self, colour_tolerance: int = 12, canny_low: int = 20, canny_high: int = 60,
                 close_kernel: int = 3) -> None:
        self.tol, self.low, self.high, self.kernel = colour_tolerance, canny_low, canny_high, close_kernel

    def segment(self, image: np.ndarray, point: tuple[float, float]) -> np.ndarray:
        img = np.ascontiguousarray(image[..., :3].astype(np.uint8))
        h, w = img.shape[:2]
        edges = cv2.Canny(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), self.low, self.high)
        barrier = np.zeros((h + 2, w + 2), dtype=np.uint8)
        barrier[1:-1, 1:-1] = (edges > 0).astype(np.uint8)
        x, y = _pixel(point, img.shape)
        barrier[y + 1, x + 1] = 0  # never start on a barrier
        flags = 4 | cv2.FLOODFILL_MASK_ONLY | (255 << 8)
        tol = (self.tol,) * 3
        cv2.floodFill(img.copy(), barrier, (x, y), (0, 0, 0), tol, tol, flags)
        mask = barrier[1:-1, 1:-1] == 255
        if self.kernel > 1:  # re-absorb the one-pixel edge lines inside the part
            k = np.ones((self.kernel, self.kernel), np.uint8)
            mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, k).astype(bool)
        return mask


class SamSegmenter:
    """segment-anything's point-prompted predictor; the best-scoring of its 3 masks is kept."""

    def __init__(self, checkpoint: str | Path | None = None, model_type: str = "vit_b", sam: object = None,
                 device: str = "cpu") -> None:
        from segment_anything import SamPredictor, sam_model_registry

        if sam is None:
            if checkpoint is None or not Path(checkpoint).is_file():
                raise SegmenterUnavailable(
                    f"SAM checkpoint not found: {checkpoint!r}. Download a segment-anything checkpoint "
                    f"(e.g. sam_vit_b_01ec64.pth) on a machine with internet, copy it here and pass its path "
                    f"(--sam-checkpoint PATH); or use segmenter='classical' which needs no weights.")
            if model_type not in SAM_MODEL_TYPES:
                raise SegmenterUnavailable(f"unknown SAM model type {model_type!r}; choose one of {SAM_MODEL_TYPES}")
            sam = _build_sam_from_checkpoint(sam_model_registry[model_type], Path(checkpoint))
        sam.to(device).eval()  # type: ignore[attr-defined]
        self.predictor = SamPredictor(sam)

    def segment(self, image: np.ndarray, point: tuple[float, float]) -> np.ndarray:
        self.predictor.set_image(np.ascontiguousarray(image[..., :3].astype(np.uint8)))
        masks, scores, _ = self.predictor.predict(point_coords=np.array([point], dtype=np.float32),
                                                  point_labels=np.array([1]), multimask_output=True)
        return masks[int(np.argmax(scores))].astype(bool)


def _build_sam_from_checkpoint(builder, checkpoint: Path):
    """Build SAM and load its state dict safely (``weights_only=True``), never unpickling code."""
    import torch

    sam = builder(checkpoint=None)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:
        raise SegmenterUnavailable(f"{checkpoint}: cannot be read as a SAM checkpoint ({e}); "
                                   "re-download the official file") from None
    try:
        sam.load_state_dict(state)
    except RuntimeError as e:
        raise SegmenterUnavailable(f"{checkpoint}: does not match SAM model type ({str(e)[:300]}); "
                                   "pass the matching --sam-model-type") from None
    return sam


def make_segmenter(kind: str, **kwargs: object) -> Segmenter:
    """'classical' | 'sam' (needs ``checkpoint``) | 'sim' (needs ``frame`` and ``joints``)."""
    if kind == "classical":
        return ClassicalSegmenter()
    if kind == "sam":
        return SamSegmenter(**kwargs)  # type: ignore[arg-type]
    if kind == "sim":
        return SimLinkSegmenter(**kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown segmenter {kind!r}; choose 'sim', 'sam' or 'classical'")
