"""Permuted sequential MNIST (psMNIST): each digit as a 784-step sequence of single pixels.

The 28x28 pixels are read in row-major order and shuffled by one fixed permutation, drawn
from ``np.random.default_rng(seed)``; the same permutation applies to every digit, in training
and in test, and is stored with the model (its metadata) so that inference can repeat it.
The permutation destroys the local structure of the image, so a sequence model must hold
information across the whole 784-step window: the benchmark of the LMU (Voelker et al. 2019)
and of hybrid-spiking LMUs (Voelker, Rasmussen, Eliasmith 2020).

``load_psmnist(path)`` returns :class:`PsMNIST` with ``uint8`` sequences ``(N, 784)``; the
validation split (5,000 digits by default) comes out of the TRAINING set, so the test set is
only used to report accuracy. ``to_sequence`` gives the model's float32 ``(N, 784, 1)`` input
in ``[0, 1]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from eventsp.train.data.images import load_mnist

__all__ = ["PSMNIST_STEPS", "PsMNIST", "load_psmnist", "permutation", "to_sequence"]

PSMNIST_STEPS = 784


def permutation(seed: int) -> np.ndarray:
    """The fixed pixel order ``(784,) int64`` for ``seed``."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"permutation seed {seed!r} must be an int >= 0")
    return np.random.default_rng(seed).permutation(PSMNIST_STEPS).astype(np.int64)


@dataclass(frozen=True)
class PsMNIST:
    """Permuted sequences ``(N, 784) uint8`` per split, labels ``(N,) int64``, the order."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    permutation: np.ndarray
    seed: int

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            x, y = getattr(self, f"x_{name}"), getattr(self, f"y_{name}")
            if x.ndim != 2 or x.shape[1] != PSMNIST_STEPS or len(x) != len(y):
                raise ValueError(
                    f"{name} split has sequences {x.shape} and {len(y)} labels; expected "
                    f"(N, {PSMNIST_STEPS}) and N labels"
                )
        if sorted(self.permutation.tolist()) != list(range(PSMNIST_STEPS)):
            raise ValueError("permutation is not a permutation of 0..783")


def _permute(images: np.ndarray, order: np.ndarray) -> np.ndarray:
    flat = images.reshape(len(images), -1)
    if flat.shape[1] != PSMNIST_STEPS:
        raise ValueError(
            f"images of {flat.shape[1]} pixels cannot be psMNIST sequences; expected 28x28 digits"
        )
    return np.ascontiguousarray(flat[:, order])


def load_psmnist(
    path: str | os.PathLike,
    *,
    seed: int = 0,
    val_fraction: float = 5000 / 60000,
    split_seed: int = 0,
) -> PsMNIST:
    """psMNIST from ``mnist.npz`` (``../shared/data/mnist/mnist.npz``), permuted by ``seed``."""
    splits = load_mnist(path, val_fraction=val_fraction, seed=split_seed)
    order = permutation(seed)
    return PsMNIST(
        x_train=_permute(splits.x_train, order),
        y_train=splits.y_train,
        x_val=_permute(splits.x_val, order),
        y_val=splits.y_val,
        x_test=_permute(splits.x_test, order),
        y_test=splits.y_test,
        permutation=order,
        seed=seed,
    )


def to_sequence(x: np.ndarray) -> np.ndarray:
    """``uint8 (N, T)`` -> the model's ``float32 (N, T, 1)`` input in ``[0, 1]``."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"sequences have shape {x.shape}; expected (N, T)")
    return (x.astype(np.float32) / np.float32(255.0))[:, :, None]
