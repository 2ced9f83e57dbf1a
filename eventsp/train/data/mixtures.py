"""Two-talker mixtures made on the fly from Speech Commands clips, split by speaker.

Sources are the spoken clips of ``speech_commands_v2_test_dev`` (every class folder except
``_silence_``, which holds background noise and is used as the optional noise source). The
speaker of ``<speaker>_nohash_<n>.flac`` is ``<speaker>``; each speaker goes to ``"train"``,
``"val"`` or ``"test"`` by :func:`eventsp.apps.kws.speaker_split` (crc32 of the speaker hash,
15 % test, 15 % val, the rest train): a fixed split that needs no seed and is the same split
the keyword spotter uses, so test mixtures only ever hold speakers never trained on.

A mixture (:func:`make_mixture`) takes two clips of two *different* speakers of one split,
cut or zero-padded to ``length`` samples, shifts the second one by a random offset of up to
``max_offset`` samples (either way), normalises both to unit RMS, scales them by random gains
``g1 - g2`` uniform in ``[-gain_db, +gain_db]`` dB, optionally adds background noise at a
random SNR in ``noise_snr_db``, and scales the sum so its peak is at most ``peak``. The
sources returned are the scaled clean clips: ``mixture = s1 + s2 (+ noise)``.

Numpy only (no torch): the demo and the evaluation use it as well as the trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from eventsp.apps.kws import speaker_of, speaker_split

__all__ = [
    "SPEECH_FOLDER",
    "Clips",
    "MixConfig",
    "Mixture",
    "list_clips",
    "load_clips",
    "make_mixture",
]

SPEECH_FOLDER = Path("speech") / "speech_commands_v2_test_dev"
NOISE_CLASS = "_silence_"


@dataclass(frozen=True)
class MixConfig:
    """How mixtures are made (module docstring); lengths in samples at 16 kHz."""

    length: int = 16000
    max_offset: int = 4000
    gain_db: float = 5.0
    noise_snr_db: tuple[float, float] | None = None
    peak: float = 0.9

    def __post_init__(self) -> None:
        if not isinstance(self.length, int) or self.length < 256:
            raise ValueError(f"length is {self.length!r}; expected an int >= 256 samples")
        if not isinstance(self.max_offset, int) or not 0 <= self.max_offset < self.length:
            raise ValueError(
                f"max_offset is {self.max_offset!r}; expected an int in [0, length={self.length})"
            )
        if not 0.0 <= self.gain_db <= 30.0:
            raise ValueError(f"gain_db is {self.gain_db}; expected 0..30 dB")
        if self.noise_snr_db is not None and (
            len(self.noise_snr_db) != 2 or self.noise_snr_db[0] > self.noise_snr_db[1]
        ):
            raise ValueError(
                f"noise_snr_db is {self.noise_snr_db!r}; expected (low, high) dB or None"
            )
        if not 0.0 < self.peak <= 1.0:
            raise ValueError(f"peak is {self.peak}; expected 0 < peak <= 1")


class Clips(NamedTuple):
    """Clips of one split in memory: ``audio (n, length)`` float32, ``speakers (n,)`` int."""

    audio: np.ndarray
    speakers: np.ndarray
    names: tuple[str, ...]


class Mixture(NamedTuple):
    mixture: np.ndarray  # (length,) float32
    sources: np.ndarray  # (2, length) float32
    names: tuple[str, str]


def _speech_root(data: Path) -> Path:
    root = Path(data) / SPEECH_FOLDER
    if not root.is_dir():
        raise FileNotFoundError(
            f"{str(root)!r} does not exist; pass the shared data folder (the one holding "
            f"{SPEECH_FOLDER}), e.g. ../shared/data"
        )
    return root


def list_clips(data: Path, split: str) -> list[Path]:
    """Sorted spoken clips of ``split`` ("train", "val", "test") under ``data``."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split is {split!r}; expected 'train', 'val' or 'test'")
    root = _speech_root(data)
    paths = [
        p
        for p in sorted(root.glob("*/*.flac"))
        if p.parent.name != NOISE_CLASS and speaker_split(speaker_of(p)) == split
    ]
    if not paths:
        raise FileNotFoundError(f"no {split} clips under {str(root)!r}")
    return paths


def list_noise(data: Path) -> list[Path]:
    """The background-noise clips (``_silence_``), sorted."""
    return sorted((_speech_root(data) / NOISE_CLASS).glob("*.flac"))


def load_clips(paths: Sequence[Path], length: int = 16000) -> Clips:
    """Read ``paths`` (16 kHz), cut or zero-pad each to ``length`` samples."""
    from eventsp.audio import read_audio

    audio = np.zeros((len(paths), length), np.float32)
    speakers: dict[str, int] = {}
    ids = np.zeros(len(paths), np.int64)
    for i, path in enumerate(paths):
        signal, _ = read_audio(path, sample_rate=16000)
        n = min(length, signal.shape[0])
        audio[i, :n] = signal[:n]
        ids[i] = speakers.setdefault(speaker_of(path), len(speakers))
    return Clips(audio, ids, tuple(p.stem for p in paths))


def _shift(x: np.ndarray, offset: int) -> np.ndarray:
    out = np.zeros_like(x)
    if offset >= 0:
        out[offset:] = x[: x.shape[0] - offset]
    else:
        out[:offset] = x[-offset:]
    return out


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    return x / rms if rms > 1e-6 else x


def make_mixture(
    rng: np.random.Generator,
    clips: Clips,
    config: MixConfig,
    noise: np.ndarray | None = None,
    pair: tuple[int, int] | None = None,
) -> Mixture:
    """One random two-talker mixture of ``clips`` (module docstring).

    ``pair``: the two clip indices (of different speakers); drawn at random when ``None``.
    ``noise``: ``(n, length)`` noise clips, used when ``config.noise_snr_db`` is set.
    """
    if len(np.unique(clips.speakers)) < 2:
        raise ValueError("clips hold fewer than two speakers; a mixture needs two different ones")
    if pair is None:
        i = int(rng.integers(clips.audio.shape[0]))
        while True:
            j = int(rng.integers(clips.audio.shape[0]))
            if clips.speakers[j] != clips.speakers[i]:
                break
    else:
        i, j = pair
        if clips.speakers[i] == clips.speakers[j]:
            raise ValueError(f"clips {i} and {j} have the same speaker; pick two different ones")
    n = config.length
    a = _unit_rms(_fit(clips.audio[i], n))
    b = _unit_rms(_fit(clips.audio[j], n))
    b = _shift(b, int(rng.integers(-config.max_offset, config.max_offset + 1)))
    gain = rng.uniform(-config.gain_db, config.gain_db)
    sources = np.stack([a * 10 ** (gain / 40), b * 10 ** (-gain / 40)]).astype(np.float64)
    mixture = sources.sum(axis=0)
    if config.noise_snr_db is not None and noise is not None and noise.shape[0]:
        clip = _unit_rms(_fit(noise[int(rng.integers(noise.shape[0]))], n).astype(np.float64))
        snr = rng.uniform(*config.noise_snr_db)
        level = np.sqrt(np.mean(mixture**2)) * 10 ** (-snr / 20)
        mixture = mixture + clip * level
    scale = config.peak / max(float(np.abs(mixture).max()), 1e-9)
    scale = min(scale, 1.0 / max(float(np.sqrt(np.mean(mixture**2))), 1e-9) * 0.1)
    return Mixture(
        (mixture * scale).astype(np.float32),
        (sources * scale).astype(np.float32),
        (clips.names[i], clips.names[j]),
    )


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[0] >= n:
        return x[:n]
    return np.pad(x, (0, n - x.shape[0]))
