"""Shared fixtures: small cameras, one open scene per category (module-scoped for speed), and
the real PartNet-Mobility objects (``partnet_root``, ``partnet_broken_root``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from partrm_gym.assets import CATEGORIES
from partrm_gym.model.config import ModelConfig
from partrm_gym.scene import Scene


@pytest.fixture(params=CATEGORIES)
def category_scene(request):
    with Scene.procedural(request.param, 7) as scene:
        yield scene


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


REPO_ROOT = Path(__file__).resolve().parents[1]


def _require_folder(candidates: list[tuple[str, Path]], what: str) -> Path:
    """The first existing folder of ``candidates`` ((how it was found, path)); else skip the test with
    the places looked in, or fail it where ``CI=true`` (a CI job must not pass by skipping)."""
    for _, path in candidates:
        if path.is_dir():
            return path
    looked = "; ".join(f"{how}: {path}" for how, path in candidates)
    message = f"{what} not found (looked in {looked})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true, so this is a failure, not a skip")
    pytest.skip(message)


def _partnet_candidates() -> list[tuple[str, Path]]:
    if os.environ.get("PARTRM_PARTNET_ROOT"):
        return [("$PARTRM_PARTNET_ROOT", Path(os.environ["PARTRM_PARTNET_ROOT"]))]
    return [("default", REPO_ROOT.parent / "shared" / "partnet_mobility")]


@pytest.fixture(scope="session")
def partnet_root() -> Path:
    """Folder of the real PartNet-Mobility objects (``<root>/<Category>/<id>/mobility.urdf``).

    ``$PARTRM_PARTNET_ROOT`` if set, else ``../shared/partnet_mobility`` beside the repository.
    """
    return _require_folder(_partnet_candidates(), "real PartNet-Mobility objects (set PARTRM_PARTNET_ROOT)")


@pytest.fixture(scope="session")
def partnet_broken_root() -> Path:
    """Folder of real objects that are broken as distributed (error tests).

    ``$PARTRM_PARTNET_BROKEN_ROOT`` if set, else ``partnet_mobility_broken`` beside the real root.
    """
    if os.environ.get("PARTRM_PARTNET_BROKEN_ROOT"):
        candidates = [("$PARTRM_PARTNET_BROKEN_ROOT", Path(os.environ["PARTRM_PARTNET_BROKEN_ROOT"]))]
    else:
        candidates = [(f"beside the real root ({how})", path.parent / "partnet_mobility_broken")
                      for how, path in _partnet_candidates()]
    return _require_folder(candidates, "broken PartNet-Mobility objects (set PARTRM_PARTNET_BROKEN_ROOT)")


# -- shared test data (imported as ``from conftest import ...``) -------------------------------------------
# A tiny PartRM (16² inputs, 8² splatter) with the articulation head: random weights, fast on the CPU.
MINI = ModelConfig(name="mini", input_size=16, down_channels=(8, 16, 16), down_attention=(False, True, True),
                   up_channels=(16, 8), up_attention=(True, False), drag_levels=(True, True, True),
                   attention_heads=2, drag_hidden=(16, 16), max_drags=3, articulation_head=True)


def mini_inputs(B=2, seed=0, cfg=MINI):
    g = torch.Generator().manual_seed(seed)
    S = cfg.input_size
    images = torch.rand(B, 4, 3, S, S, generator=g)
    plucker = torch.rand(B, 4, 6, S, S, generator=g)
    drags = torch.rand(B, 4, cfg.max_drags, 4, generator=g)
    mask = torch.ones(B, 4, cfg.max_drags, dtype=torch.bool)
    return images, plucker, drags, mask


# A unit cube as an OBJ mesh, for PartNet-Mobility-format folders written by tests.
CUBE_OBJ = """v -0.5 -0.5 -0.5
v 0.5 -0.5 -0.5
v 0.5 0.5 -0.5
v -0.5 0.5 -0.5
v -0.5 -0.5 0.5
v 0.5 -0.5 0.5
v 0.5 0.5 0.5
v -0.5 0.5 0.5
f 1 3 2
f 1 4 3
f 5 6 7
f 5 7 8
f 1 2 6
f 1 6 5
f 2 3 7
f 2 7 6
f 3 4 8
f 3 8 7
f 4 1 5
f 4 5 8
"""
