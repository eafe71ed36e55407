"""Shared fixtures: small cameras and one open scene per category (module-scoped for speed)."""

from __future__ import annotations

import numpy as np
import pytest

from partrm_gym.assets import CATEGORIES
from partrm_gym.scene import Scene


@pytest.fixture(params=CATEGORIES)
def category_scene(request):
    with Scene.procedural(request.param, 7) as scene:
        yield scene


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
