"""Shared fixtures: where the real recordings live, and seeded random generators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from support import DATA_ROOT


@pytest.fixture(scope="session")
def data_root() -> Path:
    """``../shared/data``: real recordings for tests (see its README). Never copied here."""
    if not DATA_ROOT.is_dir():
        pytest.fail(f"shared data folder {DATA_ROOT} is missing; tests need the real recordings")
    return DATA_ROOT


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)
