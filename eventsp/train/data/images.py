"""Image classification datasets for the trainers: MNIST, CIFAR-10 (npz subset or full set).

Every reader returns :class:`ImageSplits`: ``uint8`` images laid out ``(N, C, H, W)`` and
``int64`` labels, with a validation split carved out of the TRAINING set (for the scheduler
and model selection) so that the test set is only ever used to report accuracy.

- ``load_mnist(path)``: ``mnist.npz`` with ``x_train (60000, 28, 28)``, ``y_train``,
  ``x_test``, ``y_test`` (the shared copy is ``../shared/data/mnist/mnist.npz``).
- ``load_image_npz(path)``: any npz with those four keys, images ``(N, H, W)``,
  ``(N, H, W, C)`` (e.g. the CIFAR-10 subset) or ``(N, C, H, W)``.
- ``load_cifar10(root)``: the full CIFAR-10 in its standard python layout
  (``data_batch_1`` .. ``data_batch_5``, ``test_batch``, as unpacked from
  ``cifar-10-python.tar.gz``). Those files ARE pickles: that is the dataset's own format, and
  they are user-provided data, never eventsp model files.
- ``read_images(path, split)``: one split of an npz for inference (labels may be absent).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CIFAR10_LABELS = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
MNIST_LABELS = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class ImageSplits:
    """Train / validation / test images ``(N, C, H, W) uint8`` and labels ``(N,) int64``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            x, y = getattr(self, f"x_{name}"), getattr(self, f"y_{name}")
            if x.ndim != 4 or x.dtype != np.uint8 or len(x) != len(y):
                raise ValueError(
                    f"{name} split has images {x.shape} {x.dtype} and {len(y)} labels; "
                    "expected uint8 (N, C, H, W) images and N labels"
                )

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.x_train.shape[1:])


def to_nchw(images: np.ndarray, what: str = "images") -> np.ndarray:
    """``(N, H, W)`` -> ``(N, 1, H, W)``; ``(N, H, W, C)`` with C in (1, 3) -> ``(N, C, H, W)``."""
    x = np.asarray(images)
    if x.dtype != np.uint8:
        raise ValueError(f"{what} have dtype {x.dtype}; expected uint8 pixels 0..255")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return x
    raise ValueError(
        f"{what} have shape {x.shape}; expected (N, H, W), (N, H, W, C) or (N, C, H, W) "
        "with 1 or 3 channels"
    )


def split_validation(
    x: np.ndarray, y: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A seeded random split of a training set into (x_train, y_train, x_val, y_val)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction is {val_fraction}; expected a number in (0, 1)")
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = max(1, round(len(x) * val_fraction))
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return x[train], y[train], x[val], y[val]


def _npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"image file {str(path)!r} does not exist; pass an .npz with x_train, y_train, "
            "x_test, y_test (e.g. ../shared/data/mnist/mnist.npz)"
        )
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def load_image_npz(
    path: str | os.PathLike,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    labels: tuple[str, ...] | None = None,
) -> ImageSplits:
    """Read an npz with ``x_train, y_train, x_test, y_test`` and split off validation."""
    data = _npz(path)
    missing = {"x_train", "y_train", "x_test", "y_test"} - set(data)
    if missing:
        raise ValueError(f"{str(path)!r} lacks arrays {sorted(missing)}; it has {sorted(data)}")
    x_tr, y_tr, x_va, y_va = split_validation(
        to_nchw(data["x_train"], "x_train"), data["y_train"].astype(np.int64), val_fraction, seed
    )
    y_test = data["y_test"].astype(np.int64)
    n_classes = int(max(y_tr.max(), y_test.max())) + 1
    return ImageSplits(
        x_tr,
        y_tr,
        x_va,
        y_va,
        to_nchw(data["x_test"], "x_test"),
        y_test,
        labels or tuple(str(i) for i in range(n_classes)),
    )


def load_mnist(
    path: str | os.PathLike, *, val_fraction: float = 5000 / 60000, seed: int = 0
) -> ImageSplits:
    """MNIST from ``mnist.npz``; 5,000 training digits are held out for validation."""
    return load_image_npz(path, val_fraction=val_fraction, seed=seed, labels=MNIST_LABELS)


def _unpickle_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(
            f"CIFAR-10 file {str(path)!r} is missing; pass --cifar-root pointing at the folder "
            "unpacked from cifar-10-python.tar.gz (data_batch_1..5, test_batch)"
        )
    with open(path, "rb") as f:
        # The dataset's own format is a python pickle of a dict; it is data the user provides.
        batch = pickle.load(f, encoding="bytes")
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{str(path)!r} is not a CIFAR-10 batch (no b'data'/b'labels' keys)")
    x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return x, np.asarray(batch[b"labels"], dtype=np.int64)


def load_cifar10(
    root: str | os.PathLike, *, val_fraction: float = 0.1, seed: int = 0
) -> ImageSplits:
    """The full CIFAR-10 from its python-pickle layout under ``root``."""
    root = Path(root)
    if root.is_dir() and (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    parts = [_unpickle_batch(root / f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = _unpickle_batch(root / "test_batch")
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    x_tr, y_tr, x_va, y_va = split_validation(x, y, val_fraction, seed)
    return ImageSplits(x_tr, y_tr, x_va, y_va, x_test, y_test, CIFAR10_LABELS)


def read_images(
    path: str | os.PathLike, split: str = "test"
) -> tuple[np.ndarray, np.ndarray | None]:
    """One split of an npz for inference: images ``(N, C, H, W) uint8`` and labels or None.

    Looks for ``x_<split>``/``y_<split>``, or plain ``x``/``y`` (or ``images``/``labels``).
    """
    data = _npz(path)
    for xk, yk in ((f"x_{split}", f"y_{split}"), ("x", "y"), ("images", "labels")):
        if xk in data:
            y = data[yk].astype(np.int64) if yk in data else None
            return to_nchw(data[xk], xk), y
    raise ValueError(
        f"{str(path)!r} has no images for split {split!r}: found arrays {sorted(data)}; expected "
        f"x_{split} (with y_{split} for accuracy), or x/y; pick another --split"
    )
