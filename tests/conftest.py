"""Shared fixtures: where the real recordings live, and seeded random generators.

Hypothesis explores new examples on every run here (its failures are kept in
``.hypothesis/`` and replayed first). With ``CI`` set, as ``.ci/run`` does, it runs a fixed
set of examples per test and keeps no database: a clean clone's verdict does not depend on
chance.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from support import DATA_ROOT

settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """``../shared/data``: real recordings for tests (see its README). Never copied here."""
    if not DATA_ROOT.is_dir():
        pytest.fail(f"shared data folder {DATA_ROOT} is missing; tests need the real recordings")
    return DATA_ROOT


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)
