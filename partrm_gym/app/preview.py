"""``partrm-gym sim-preview``: what the simulator shows of one procedural object.

A PNG grid, one row per joint state (closed, half open, open), with the 4 canonical
input views then the 8 evaluation views; the moving part is tinted so its mask can be
checked by eye against the geometry.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from partrm_gym.cameras import canonical_rig, evaluation_rig
from partrm_gym.errors import UsageError
from partrm_gym.io import atomic_write_image
from partrm_gym.plotting import image_grid, overlay_mask
from partrm_gym.scene import Scene, SimFrame

STATE_FRACTIONS = (0.0, 0.5, 1.0)  # joint fractions of the grid's rows


def preview_frame(frame: SimFrame, scene: Scene, joint: int) -> np.ndarray:
    return overlay_mask(frame.rgb, frame.part_mask(scene.joint(joint)))


def sim_preview(category: str, seed: int, out: str | Path, resolution: int = 128, joint: int | None = None,
                partnet: str | Path | None = None) -> Path:
    """Render the preview grid of one object (procedural ``category`` #``seed``, or the real object in folder
    ``partnet``) opening ``joint`` (default: its first door, drawer or lid) and write it to ``out``."""
    cameras = canonical_rig(resolution) + evaluation_rig(resolution)
    rows = []
    scene = Scene.from_partnet(partnet) if partnet is not None else Scene.procedural(category, seed)
    with scene:
        what = f"{Path(partnet).name}" if partnet is not None else f"{scene.category} #{seed}"
        joint = scene.task_joints()[0] if joint is None else joint
        if not 0 <= joint < len(scene.joints):
            raise UsageError(f"--joint {joint}: {what} has {len(scene.joints)} movable joint(s); "
                             f"choose 0..{len(scene.joints) - 1}")
        for fraction in STATE_FRACTIONS:
            states = np.zeros(len(scene.joints))
            states[joint] = fraction
            scene.set_joint_fractions(states)
            rows.append([preview_frame(f, scene, joint) for f in scene.render_views(cameras)])
        name = (f"partnet_{Path(partnet).name}_preview.png" if partnet is not None
                else f"{scene.category}_{seed:06d}_preview.png")
    path = Path(out) / name
    atomic_write_image(path, image_grid(rows))
    return path


def main(args: argparse.Namespace) -> int:
    """``partrm-gym sim-preview``."""
    path = sim_preview(args.category, args.seed, args.out, resolution=args.resolution, joint=args.joint,
                       partnet=args.partnet)
    print(f"wrote {path}")
    return 0
