"""Event datasets for STBP: the fixed N-MNIST split, the saccade simulator, tonic roots."""

from __future__ import annotations

import numpy as np
import pytest

from eventsp.apps.classify_events import recording_frames
from eventsp.events import EVENT_DTYPE, read_events
from eventsp.train.data.events import (
    SIM_VAL_SEED,
    FrameSet,
    SaccadeConfig,
    load_recordings,
    nmnist_small_split,
    simulate_saccades,
    simulated_mnist_frames,
    simulated_validation,
    tonic_dataset,
)


def test_split_is_fixed_disjoint_and_complete(data_root):
    root = data_root / "nmnist_small" / "train"
    a, b = nmnist_small_split(root), nmnist_small_split(root)
    assert a == b
    assert {k: len(v) for k, v in a.items()} == {"test": 200, "val": 100, "train": 700}
    names = {k: {p.name for p, _ in v} for k, v in a.items()}
    assert not (names["test"] & names["train"])
    assert not (names["test"] & names["val"])
    assert not (names["val"] & names["train"])
    assert len(names["test"] | names["val"] | names["train"]) == 1000
    # Every class is represented in the held-out test split.
    assert {label for _, label in a["test"]} == set(range(10))


def test_load_recordings_counts_every_event_of_the_first_windows(data_root):
    split = nmnist_small_split(data_root / "nmnist_small" / "train")
    items = split["val"][:3]
    data = load_recordings(items, 30_000, 10)
    assert isinstance(data, FrameSet)
    assert data.frames.shape == (3, 10, 2, 34, 34)
    for i, (path, label) in enumerate(items):
        events = read_events(path)[0].events
        t0 = events["t"].min()
        inside = events[events["t"] < t0 + 300_000]
        assert int(data.frames[i].sum(dtype=np.int64)) == len(inside)
        on = inside[inside["p"]]
        assert int(data.frames[i, :, 1].sum(dtype=np.int64)) == len(on)
        assert data.labels[i] == label


def test_missing_split_folder_says_where_to_look(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"labels\.csv"):
        nmnist_small_split(tmp_path)


def _digit() -> np.ndarray:
    image = np.zeros((28, 28), dtype=np.uint8)
    image[6:22, 12:16] = 255  # a "1"
    image[6:9, 9:16] = 200
    return image


def test_simulator_produces_nmnist_like_saccades(rng):
    events = simulate_saccades(_digit(), rng)
    assert events.dtype == EVENT_DTYPE
    assert np.all(np.diff(events["t"]) >= 0), "events must be time-sorted"
    assert events["x"].min() >= 0
    assert events["x"].max() < 34
    assert events["y"].min() >= 0
    assert events["y"].max() < 34
    assert events["t"].min() >= 0
    assert events["t"].max() < 300_000
    # Both polarities, in similar numbers (each edge passes a pixel both ways per loop).
    on = events["p"].mean()
    assert 0.35 < on < 0.65, on
    # Three saccades: activity peaks mid-saccade and is low at the triangle's corners.
    counts = np.histogram(events["t"], bins=np.arange(0, 300_001, 10_000))[0]
    for s in range(3):
        assert counts[10 * s + 4 : 10 * s + 6].min() > 3 * counts[10 * s], counts
    # The events sit on the digit (columns 12-15 shifted by at most ~6.5 px).
    assert np.median(events["x"]) == pytest.approx(16, abs=4)


def test_simulator_is_seeded_and_threshold_sets_the_event_count():
    a = simulate_saccades(_digit(), np.random.default_rng(1))
    b = simulate_saccades(_digit(), np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    coarse = simulate_saccades(_digit(), np.random.default_rng(1), SaccadeConfig(threshold=0.8))
    assert len(coarse) < 0.7 * len(a)


def test_simulated_frames_match_recording_frames():
    images = np.stack([_digit(), _digit()[::-1]])
    data = simulated_mnist_frames(images, np.array([1, 7]), 30_000, 10, seed=5)
    rng = np.random.default_rng(5)
    events = simulate_saccades(images[0], rng)
    expected = recording_frames(events, (34, 34, 2), 30_000, 10)
    np.testing.assert_array_equal(data.frames[0], np.minimum(expected, 255))
    assert data.labels.tolist() == [1, 7]


def test_simulated_validation_uses_mnist_test_digits_only(data_root):
    mnist = data_root / "mnist" / "mnist.npz"
    a = simulated_validation(mnist, 3, 30_000, 10)
    b = simulated_validation(mnist, 3, 30_000, 10)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.frames.shape == (3, 10, 2, 34, 34)
    assert a.frames.sum() > 1000
    z = np.load(mnist, allow_pickle=False)
    np.testing.assert_array_equal(a.labels, z["y_test"][:3])
    ref = simulated_mnist_frames(z["x_test"][:3], z["y_test"][:3], 30_000, 10, seed=SIM_VAL_SEED)
    np.testing.assert_array_equal(a.frames, ref.frames)
    # ``ref`` pins the digits: MNIST test images, never the training ones (x_train[1000:]).
    assert all(name.startswith("mnist-test-sim-") for name in a.names)
    with pytest.raises(ValueError, match="n=0"):
        simulated_validation(mnist, 0, 30_000, 10)
    with pytest.raises(FileNotFoundError, match=r"mnist\.npz"):
        simulated_validation(data_root / "nowhere" / "mnist.npz", 3, 30_000, 10)


@pytest.mark.parametrize("bad", [{"threshold": 0.0}, {"dt_us": 0}, {"vertices": ((0.0, 0.0),)}])
def test_saccade_config_validates(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SaccadeConfig(**bad)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("nmnist", "NMNIST/train.zip"),
        ("dvsgesture", "DVSGesture/ibmGestureTrain.tar.gz"),
        ("cifar10dvs", "CIFAR10DVS/CIFAR10DVS.zip"),
    ],
)
def test_tonic_datasets_need_a_local_root_and_say_where(tmp_path, name, expected):
    with pytest.raises(FileNotFoundError, match=expected) as info:
        tonic_dataset(name, tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "cannot be downloaded" in str(info.value)
    with pytest.raises(ValueError, match="unknown"):
        tonic_dataset("mnist", tmp_path)
