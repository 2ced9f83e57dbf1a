"""Fixtures shared by the trainer tests."""

from __future__ import annotations

import dataclasses

import pytest


@pytest.fixture(scope="session")
def small_mnist(data_root):
    """400 training and 100 validation digits of the real MNIST (test split whole), loaded
    once for every PTL test that trains."""
    from eventsp.train.data.images import load_mnist

    s = load_mnist(data_root / "mnist" / "mnist.npz")
    return dataclasses.replace(
        s, x_train=s.x_train[:400], y_train=s.y_train[:400],
        x_val=s.x_val[:100], y_val=s.y_val[:100],
    )  # fmt: skip
