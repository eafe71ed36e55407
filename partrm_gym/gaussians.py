"""3D Gaussians and their 14-channel splatter-image layout (LGM's).

A splatter image holds one Gaussian per pixel per view, shape (B, V, 14, h, w), channels
in this fixed order (activated values):

    xyz (3) | opacity (1) in [0, 1] | scale (3) > 0, world units | rotation wxyz (4), unit | RGB (3) in [0, 1]
"""

from __future__ import annotations

SPLATTER_CHANNELS = 14
XYZ = slice(0, 3)
OPACITY = slice(3, 4)
SCALE = slice(4, 7)
ROTATION = slice(7, 11)
RGB = slice(11, 14)
