"""Event-camera datasets for the trainers: N-MNIST (small set and full), DVS Gesture,
CIFAR10-DVS, and an event-camera simulator that turns MNIST digits into N-MNIST-like
saccade recordings.

Every dataset yields ``(frames, label)`` with frames ``(T, P, H, W)`` float32 event counts in
consecutive time windows (:func:`eventsp.apps.classify_events.recording_frames`, the code the
runtime application runs on live streams).

Splits of the 1,000 real recordings (``../shared/data/nmnist_small/train``): the recordings
are permuted with ``np.random.default_rng(SPLIT_SEED)`` (file order as listed in
``labels.csv``); the first 200 are the held-out TEST split (never used for training or model
selection), the next 100 the VALIDATION split (model selection), the other 700 the TRAINING
split. :func:`nmnist_small_split` returns them.

Validation for model selection is that real split PLUS simulated recordings of MNIST *test*
images (:func:`simulated_validation`: ``x_test[:n]`` of ``mnist.npz``, simulator seed
``SIM_VAL_SEED``). No trainer ever simulates a test image (training digits are
``x_train[1000:]``; ``x_train[:1000]`` are the real recordings), so both parts are disjoint from
every training set, and the held-out real test split stays out of selection. The real part
cannot grow without retraining from scratch: every run so far (and each fine-tune of one) has
trained on the 700 real training recordings.

Simulator (:func:`simulate_saccades`): the digit (28x28, intensities ``I`` in [0, 1]) is
drawn on a 34x34 screen (``I_bg = 0``) and moved along three saccades of 100 ms each
(a triangle, as the ATIS camera moved over the screen in N-MNIST, Orchard et al. 2015), with a
smooth (raised-cosine) velocity profile; the screen is sampled every ``dt_us``. Each pixel
keeps a reference log intensity ``L_ref``; with ``L = log(I + eps)`` it emits
``floor((L - L_ref)/C)`` ON events when ``L`` rose past ``L_ref + C`` (``L_ref`` moves by
those steps), and OFF events symmetrically. Per-pixel thresholds ``C`` vary (``C * (1 + s N)``),
timestamps are jittered within the sample interval, and a few uniform noise events are added.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eventsp._jit import jit
from eventsp.apps.classify_events import recording_frames
from eventsp.events import EVENT_DTYPE, read_events

__all__ = [
    "NMNIST_SENSOR",
    "SIM_VAL_SEED",
    "SPLIT_SEED",
    "FrameSet",
    "SaccadeConfig",
    "load_recordings",
    "nmnist_small_split",
    "simulate_saccades",
    "simulated_mnist_frames",
    "simulated_validation",
    "tonic_dataset",
]

NMNIST_SENSOR = (34, 34, 2)
SPLIT_SEED = 20261122
SPLIT_SIZES = {"test": 200, "val": 100}
SIM_VAL_SEED = 7_000_001


@dataclass(frozen=True)
class FrameSet:
    """Frames ``(N, T, P, H, W)`` (uint8 counts, saturated at 255), labels ``(N,)``, names."""

    frames: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def nmnist_small_split(root: str | os.PathLike) -> dict[str, list[tuple[Path, int]]]:
    """``{"train", "val", "test"}`` -> ``[(path, label), ...]`` of the small N-MNIST set."""
    root = Path(root)
    table = root / "labels.csv"
    if not table.is_file():
        raise FileNotFoundError(
            f"{table} is missing; pass the folder holding the N-MNIST .bin files and "
            "labels.csv (../shared/data/nmnist_small/train)"
        )
    with open(table, newline="") as f:
        rows = [(root / r["file"], int(r["label"])) for r in csv.DictReader(f)]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(rows))
    n_test, n_val = SPLIT_SIZES["test"], SPLIT_SIZES["val"]
    if len(rows) < n_test + n_val + 1:
        raise ValueError(f"{table} lists {len(rows)} recordings; the split needs > 300")
    pick = [rows[i] for i in order]
    return {
        "test": pick[:n_test],
        "val": pick[n_test : n_test + n_val],
        "train": pick[n_test + n_val :],
    }


def load_recordings(items: list[tuple[Path, int]], window_us: int, time_steps: int) -> FrameSet:
    """Read recordings and make their frames (``time_steps`` windows of ``window_us``)."""
    frames = np.zeros((len(items), time_steps, 2, 34, 34), dtype=np.uint8)
    for i, (path, _) in enumerate(items):
        packet, rec = read_events(path)
        f = recording_frames(packet.events, rec.sensor_size, window_us, time_steps)
        if f.shape[2:] != frames.shape[3:]:
            raise ValueError(f"{path}: frames {f.shape[1:]} are not N-MNIST's (2, 34, 34)")
        frames[i] = np.minimum(f, 255).astype(np.uint8)
    labels = np.array([label for _, label in items], dtype=np.int64)
    return FrameSet(frames, labels, tuple(p.name for p, _ in items))


@dataclass(frozen=True)
class SaccadeConfig:
    """Simulator settings (module docstring). Times in µs, displacements in pixels."""

    saccade_us: int = 100_000
    dt_us: int = 1_000
    vertices: tuple[tuple[float, float], ...] = ((0.0, 0.0), (1.5, 5.0), (5.0, 0.5))
    threshold: float = 0.4
    threshold_spread: float = 0.1
    eps: float = 0.05
    noise_events: int = 60
    max_offset: float = 1.5

    def __post_init__(self) -> None:
        if self.saccade_us < self.dt_us or self.dt_us < 1:
            raise ValueError(
                f"saccade_us={self.saccade_us}, dt_us={self.dt_us}; need 1 <= dt_us <= saccade_us"
            )
        if not self.threshold > 0 or not 0 <= self.threshold_spread < 1 or not self.eps > 0:
            raise ValueError(
                f"threshold={self.threshold}, threshold_spread={self.threshold_spread}, "
                f"eps={self.eps}; expected threshold > 0, 0 <= spread < 1, eps > 0"
            )
        if len(self.vertices) < 2:
            raise ValueError(f"vertices={self.vertices}; give at least two (x, y) points")


def _shifted(image: np.ndarray, ox: np.ndarray, oy: np.ndarray, size: int) -> np.ndarray:
    """``image`` at sub-pixel offsets ``(ox[s], oy[s])`` on a square: ``(S, size, size)``."""
    h, w = image.shape
    pad = np.zeros((h + 2, w + 2), dtype=np.float64)
    pad[1:-1, 1:-1] = image
    ys = np.arange(size)[None, :] - oy[:, None]
    xs = np.arange(size)[None, :] - ox[:, None]
    y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    fy, fx = (ys - y0)[:, :, None], (xs - x0)[:, None, :]

    def take(yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
        yi, xi = np.clip(yi + 1, 0, h + 1), np.clip(xi + 1, 0, w + 1)
        return pad[yi[:, :, None], xi[:, None, :]]

    top = take(y0, x0) * (1 - fx) + take(y0, x0 + 1) * fx
    bottom = take(y0 + 1, x0) * (1 - fx) + take(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy


@jit(
    "int64(float64[:, :, ::1], float64[:, ::1], float64[:, ::1], int64[::1], int64[::1], "
    "boolean[::1], int64[::1])"
)
def _crossings(levels, ref, c, xs, ys, ps, steps):
    """Threshold crossings of ``levels (S, H, W)`` against ``ref`` (updated in place).

    Writes event ``x, y, p`` and sample index into the preallocated outputs and returns the
    number of events (stops when the outputs are full).
    """
    n_out = 0
    cap = xs.shape[0]
    for s in range(levels.shape[0]):
        for y in range(levels.shape[1]):
            for x in range(levels.shape[2]):
                d = levels[s, y, x] - ref[y, x]
                n = int(d / c[y, x])
                if n == 0:
                    continue
                ref[y, x] += n * c[y, x]
                for _ in range(abs(n)):
                    if n_out < cap:
                        xs[n_out], ys[n_out], ps[n_out], steps[n_out] = x, y, n > 0, s
                        n_out += 1
    return n_out


def simulate_saccades(
    image: np.ndarray, rng: np.random.Generator, config: SaccadeConfig | None = None
) -> np.ndarray:
    """N-MNIST-like events (:data:`EVENT_DTYPE`, 34x34, time-sorted) from one MNIST digit."""
    cfg = config or SaccadeConfig()
    image = np.asarray(image)
    if image.ndim != 2 or image.shape[0] > 34 or image.shape[1] > 34:
        raise ValueError(f"image has shape {image.shape}; expected a 2-D digit of at most 34x34")
    img = image.astype(np.float64) / (255.0 if image.dtype == np.uint8 else 1.0)
    size = 34
    base = rng.uniform(0, cfg.max_offset, size=2)
    verts = np.asarray(cfg.vertices, dtype=np.float64) + base
    steps = cfg.saccade_us // cfg.dt_us
    w = (1 - np.cos(np.pi * np.arange(1, steps + 1) / steps)) / 2
    path = np.concatenate(
        [a + (b - a) * w[:, None] for a, b in zip(verts, np.roll(verts, -1, axis=0), strict=True)]
    )
    levels = np.log(_shifted(img, path[:, 0], path[:, 1], size) + cfg.eps)
    c = cfg.threshold * (1 + cfg.threshold_spread * rng.standard_normal((size, size)))
    c = np.maximum(c, 0.2 * cfg.threshold)
    ref = np.log(_shifted(img, verts[:1, 0], verts[:1, 1], size)[0] + cfg.eps)
    cap = 200_000
    xs, ys, steps_at = np.zeros(cap, np.int64), np.zeros(cap, np.int64), np.zeros(cap, np.int64)
    ps = np.zeros(cap, np.bool_)
    n = _crossings(np.ascontiguousarray(levels), ref, np.ascontiguousarray(c), xs, ys, ps, steps_at)
    t_end = len(path) * cfg.dt_us
    m = cfg.noise_events
    events = np.zeros(n + m, dtype=EVENT_DTYPE)
    events["x"][:n], events["y"][:n], events["p"][:n] = xs[:n], ys[:n], ps[:n]
    events["t"][:n] = (steps_at[:n] + 1) * cfg.dt_us - rng.integers(0, cfg.dt_us, size=n)
    events["x"][n:] = rng.integers(0, size, m)
    events["y"][n:] = rng.integers(0, size, m)
    events["p"][n:] = rng.integers(0, 2, m).astype(bool)
    events["t"][n:] = rng.integers(0, t_end, m)
    return events[np.argsort(events["t"], kind="stable")]


def simulated_mnist_frames(
    images: np.ndarray,
    labels: np.ndarray,
    window_us: int,
    time_steps: int,
    seed: int = 0,
    config: SaccadeConfig | None = None,
) -> FrameSet:
    """Simulate one recording per MNIST digit and make its frames (see :func:`load_recordings`)."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((len(images), time_steps, 2, 34, 34), dtype=np.uint8)
    for i, image in enumerate(images):
        events = simulate_saccades(image, rng, config)
        f = recording_frames(events, NMNIST_SENSOR, window_us, time_steps)
        frames[i] = np.minimum(f, 255).astype(np.uint8)
    names = tuple(f"mnist-sim-{i}" for i in range(len(images)))
    return FrameSet(frames, np.asarray(labels, dtype=np.int64), names)


def simulated_validation(
    mnist: str | os.PathLike, n: int, window_us: int, time_steps: int
) -> FrameSet:
    """Simulated validation recordings of the first ``n`` MNIST TEST digits (module docstring).

    ``mnist``: the ``mnist.npz`` file (keys ``x_test``, ``y_test``).
    """
    path = Path(mnist)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; pass ../shared/data/mnist/mnist.npz")
    z = np.load(path, allow_pickle=False)
    if not 1 <= n <= len(z["y_test"]):
        raise ValueError(f"n={n}; expected 1 <= n <= {len(z['y_test'])} (MNIST test digits)")
    data = simulated_mnist_frames(
        z["x_test"][:n], z["y_test"][:n], window_us, time_steps, seed=SIM_VAL_SEED
    )
    return FrameSet(data.frames, data.labels, tuple(f"mnist-test-sim-{i}" for i in range(n)))


_TONIC = {
    # name: (tonic class, archive(s) tonic looks for, where to get them)
    "nmnist": ("NMNIST", "train.zip / test.zip", "https://www.garrickorchard.com/datasets/n-mnist"),
    "dvsgesture": (
        "DVSGesture",
        "ibmGestureTrain.tar.gz / ibmGestureTest.tar.gz",
        "https://research.ibm.com/interactive/dvsgesture/",
    ),
    "cifar10dvs": ("CIFAR10DVS", "CIFAR10DVS.zip", "https://figshare.com/articles/1166"),
}


def tonic_dataset(name: str, root: str | os.PathLike, *, train: bool = True):
    """tonic's ``NMNIST``, ``DVSGesture`` or ``CIFAR10DVS`` from a LOCAL root (no download).

    tonic keeps each dataset in ``root/<ClassName>/``: put the original archive there (tonic
    extracts it on first use). Raises ``FileNotFoundError`` naming the folder and files when
    they are missing, instead of letting tonic try to download.
    """
    import tonic.datasets

    if name not in _TONIC:
        raise ValueError(f"dataset {name!r} is unknown; expected one of {sorted(_TONIC)}")
    cls_name, files, url = _TONIC[name]
    cls = getattr(tonic.datasets, cls_name)
    folder = Path(root) / cls_name
    if cls_name == "CIFAR10DVS":
        archive = folder / cls.filename
    else:
        archive = folder / (cls.train_filename if train else cls.test_filename)
    if not archive.is_file():
        raise FileNotFoundError(
            f"{name}: {archive} is missing. Datasets cannot be downloaded here: fetch {files} "
            f"from {url} and put them in {folder}/ (tonic extracts them on first use)"
        )
    if cls_name == "CIFAR10DVS":
        return cls(save_to=str(root))
    return cls(save_to=str(root), train=train)
