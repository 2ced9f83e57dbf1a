"""Extra training data and augmentation for the keyword-spotting trainer (``kws``).

- :func:`load_speech_commands`: the 12-class clips split by speaker (:class:`SpeechSet` per
  split); :func:`features`: their log-mel frames.
- :func:`load_v1_subset`: the 300 real Speech Commands v0.01 clips of
  ``speech/speech_commands_v1_subset`` (30 words; the ten keywords keep their class, the other
  twenty words are ``_unknown_``), keeping only speakers that :func:`speaker_split` puts in
  "train": a speaker of the validation or test split never reaches training, whichever set
  the clip comes from.
- :func:`augment`: time shift, gain and background noise per clip; :func:`epoch_clips`: one
  epoch's training waveforms (real clips, a sample of espeak-ng clips, mixed and augmented).
- :func:`add_data_arguments` and :func:`load_training_data`: the data flags and the data
  (:class:`TrainingData`) of both trainers, the student (``kws``) and its teacher
  (``kws_teacher``).
- :func:`mix_clips`: overlays another training clip, 10-25 dB below, on some clips (the label
  stays the louder clip's): background talkers.
- :func:`stack_frames`: ``S`` consecutive frames side by side as one network input, so that
  the network runs once every ``S`` hops (``--stack``; ``eventsp.apps.kws`` does the same).
- :func:`spec_augment`: SpecAugment-style masks on standardised log-mel features, zeroing up to
  ``freq_masks`` bands of up to ``freq_width`` mels and ``time_masks`` spans of up to
  ``time_width`` frames (zero is the training set's mean after standardisation).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from eventsp.apps.kws import speaker_of, speaker_split
from eventsp.audio import LogMelConfig, logmel_batch, read_audio

__all__ = [
    "CLIP_SAMPLES",
    "KWS_LABELS",
    "SAMPLE_RATE",
    "SpeechSet",
    "TrainingData",
    "add_data_arguments",
    "augment",
    "epoch_clips",
    "features",
    "limit_sets",
    "load_speech_commands",
    "load_training_data",
    "load_v1_subset",
    "mix_clips",
    "read_clip",
    "spec_augment",
    "stack_frames",
]

KWS_LABELS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
KWS_LABELS = (*KWS_LABELS, "_unknown_", "_silence_")
SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000


def read_clip(path: Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A clip as ``(CLIP_SAMPLES,) float32`` at ``sample_rate``: cut or padded with silence."""
    signal, _ = read_audio(path, sample_rate)
    clip = np.zeros(CLIP_SAMPLES, np.float32)
    clip[: min(len(signal), CLIP_SAMPLES)] = signal[:CLIP_SAMPLES]
    return clip


def _train_speaker(speaker: str) -> bool:
    return speaker_split(speaker) == "train"


def load_v1_subset(
    root: Path,
    labels: tuple[str, ...],
    sample_rate: int = SAMPLE_RATE,
    skip: bool = False,
    keep: Callable[[str], bool] = _train_speaker,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(audio (N, 16000) float32, labels (N,) int64, files)`` of the speakers that ``keep``
    accepts (by default those of the "train" bucket of :func:`speaker_split`).

    ``labels``: the trainer's class names; words not among them map to ``"_unknown_"``.
    A missing folder, or ``skip``, gives empty arrays (the set is optional).
    """
    unknown = labels.index("_unknown_")
    audio, ys, files = [], [], []
    for path in [] if skip else sorted(Path(root).glob("*/*.wav")):
        if not keep(speaker_of(path)):
            continue
        word = path.parent.name
        audio.append(read_clip(path, sample_rate))
        ys.append(labels.index(word) if word in labels else unknown)
        files.append(str(path))
    if not audio:
        return np.zeros((0, CLIP_SAMPLES), np.float32), np.zeros(0, np.int64), ()
    return np.stack(audio), np.asarray(ys, np.int64), tuple(files)


def mix_clips(
    audio: np.ndarray, pool: np.ndarray, prob: float, rng: np.random.Generator
) -> np.ndarray:
    """A copy of ``audio (N, S)`` where a ``prob`` fraction of clips gets a random ``pool`` clip
    added 10-25 dB below its own RMS."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"mix probability {prob} must be in [0, 1]")
    out = audio.copy()
    if prob == 0.0 or len(pool) == 0:
        return out
    for i in np.flatnonzero(rng.random(len(audio)) < prob):
        other = pool[rng.integers(len(pool))]
        own = float(np.sqrt(np.mean(audio[i].astype(np.float64) ** 2))) + 1e-6
        theirs = float(np.sqrt(np.mean(other.astype(np.float64) ** 2))) + 1e-6
        gain = own / theirs * 10 ** (-rng.uniform(10, 25) / 20)
        out[i] += np.roll(other, int(rng.integers(len(other)))) * np.float32(gain)
    return out


def spec_augment(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    freq_masks: int = 2,
    freq_width: int = 5,
    time_masks: int = 2,
    time_width: int = 10,
) -> torch.Tensor:
    """``x (batch, T, F)`` with random frequency and time spans set to 0, per example."""
    if x.ndim != 3:
        raise ValueError(f"features have shape {tuple(x.shape)}; expected (batch, T, F)")
    B, T, F = x.shape
    keep = torch.ones_like(x)
    for size, width, axis in ((F, freq_width, 2), (T, time_width, 1)):
        count = freq_masks if axis == 2 else time_masks
        for _ in range(count):
            w = torch.randint(0, width + 1, (B,), generator=generator)
            start = (torch.rand(B, generator=generator) * (size - w + 1)).long()
            pos = torch.arange(size)
            mask = (pos[None] >= start[:, None]) & (pos[None] < (start + w)[:, None])  # (B, size)
            keep = keep * (~mask[:, None, :] if axis == 2 else ~mask[:, :, None]).to(x.dtype)
    return x * keep


def stack_frames(x: np.ndarray, stack: int) -> np.ndarray:
    """``(N, T, F)`` -> ``(N, T // stack, stack * F)``: frames ``s*k .. s*k+s-1`` concatenated.

    A trailing ``T % stack`` frames are dropped (a stream holds them until the group is full).
    """
    if not isinstance(stack, int) or stack < 1:
        raise ValueError(f"stack is {stack!r}; expected an int >= 1")
    if x.ndim != 3:
        raise ValueError(f"features have shape {x.shape}; expected (N, T, F)")
    N, T, F = x.shape
    steps = T // stack
    return np.ascontiguousarray(x[:, : steps * stack].reshape(N, steps, stack * F))


def augment(
    audio: np.ndarray, noise: np.ndarray, rng: np.random.Generator, noise_max: float = 0.5
) -> np.ndarray:
    """Random time shift (+-100 ms), gain (+-6 dB) and background noise, per clip.

    Noise (with probability 0.8) is a random ``noise`` clip scaled by ``U(0, noise_max)``.
    """
    out = np.empty_like(audio)
    for i, clip in enumerate(audio):
        shift = int(rng.integers(-1600, 1601))
        shifted = np.zeros_like(clip)
        if shift >= 0:
            shifted[shift:] = clip[: CLIP_SAMPLES - shift]
        else:
            shifted[:shift] = clip[-shift:]
        gain = 10 ** (rng.uniform(-6, 6) / 20)
        mixed = shifted * gain
        if len(noise) and rng.random() < 0.8:
            mixed = mixed + noise[rng.integers(len(noise))] * rng.uniform(0.0, noise_max)
        out[i] = mixed
    return out


def epoch_clips(
    real_audio: np.ndarray,
    real_labels: np.ndarray,
    synth: dict[str, np.ndarray] | None,
    synth_per_epoch: int,
    noise: np.ndarray,
    rng: np.random.Generator,
    *,
    mix_prob: float,
    noise_max: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's ``(waveforms, labels)``: the real clips and ``synth_per_epoch`` random
    synthetic ones (0: all), a ``mix_prob`` fraction overlaid with another real clip
    (:func:`mix_clips`), then :func:`augment` ed with ``noise``."""
    audio, labels = real_audio, real_labels
    if synth is not None and len(synth["labels"]):
        pick = np.arange(len(synth["labels"]))
        if 0 < synth_per_epoch < len(pick):
            pick = rng.choice(pick, synth_per_epoch, replace=False)
        audio = np.concatenate([audio, synth["audio"][pick]])
        labels = np.concatenate([labels, synth["labels"][pick]])
    waves = augment(mix_clips(audio, real_audio, mix_prob, rng), noise, rng, noise_max)
    return waves, labels


@dataclass(frozen=True)
class SpeechSet:
    """One split: waveforms ``(N, 16000) float32``, labels ``(N,) int64``, file paths."""

    audio: np.ndarray
    labels: np.ndarray
    files: tuple[str, ...]


def load_speech_commands(root: Path) -> dict[str, SpeechSet]:
    """The 12-class clips under ``root`` split by speaker: ``{"train", "val", "test"}``."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"Speech Commands folder {str(root)!r} is missing; pass --data pointing at the "
            "shared data (with speech/speech_commands_v2_test_dev)"
        )
    parts: dict[str, tuple[list, list, list]] = {k: ([], [], []) for k in ("train", "val", "test")}
    for label, name in enumerate(KWS_LABELS):
        for path in sorted((root / name).glob("*.flac")):
            audio, labels, files = parts[speaker_split(speaker_of(path))]
            audio.append(read_clip(path))
            labels.append(label)
            files.append(str(path))
    return {
        k: SpeechSet(np.stack(a), np.asarray(y, np.int64), tuple(f))
        for k, (a, y, f) in parts.items()
    }


def limit_sets(sets: dict[str, SpeechSet], limit: int) -> dict[str, SpeechSet]:
    """At most ``limit`` clips of each split, spread over its classes (0: all; for tests)."""
    if not limit:
        return sets
    out = {}
    for k, s in sets.items():
        every = max(1, len(s.audio) // limit)
        out[k] = SpeechSet(
            s.audio[::every][:limit], s.labels[::every][:limit], s.files[::every][:limit]
        )
    return out


def features(audio: np.ndarray, config: LogMelConfig) -> np.ndarray:
    """Log-mel ``(N, frames, n_mels)`` float32 of equal-length clips."""
    return logmel_batch(audio.astype(np.float32), config)


def add_data_arguments(p: argparse.ArgumentParser, *, mix_prob: float, noise_max: float) -> None:
    """The data flags of both trainers (their defaults for mixing and noise differ)."""
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--synth-dir", type=Path, default=None, help="espeak-ng clips (kws_synth)")
    p.add_argument("--synth-per-epoch", type=int, default=0, help="0: every synthetic clip")
    p.add_argument("--no-v1-subset", action="store_true", help="leave out the v0.01 clips")
    p.add_argument("--mix-prob", type=float, default=mix_prob, help="overlay another clip")
    p.add_argument("--noise-max", type=float, default=noise_max)
    p.add_argument("--limit", type=int, default=0, help="use only N clips per split (tests)")


@dataclass(frozen=True)
class TrainingData:
    """What a trainer reads (:func:`load_training_data`): the splits by speaker, the log-mel
    front-end, the training clips (``audio``/``labels``: the v0.02 clips of training speakers,
    then their v0.01 clips), the espeak-ng clips (``None`` without ``--synth-dir``), the
    background noise (the training ``_silence_`` clips), and the mean and std per mel of the
    clean training clips' log-mel frames. ``v1_clips`` counts the v0.01 clips in ``audio``."""

    sets: dict[str, SpeechSet]
    front: LogMelConfig
    audio: np.ndarray
    labels: np.ndarray
    synth: dict[str, np.ndarray] | None
    noise: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    frames: int  # log-mel frames per clip
    v1_clips: int

    def epoch(self, args: argparse.Namespace, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """One epoch's augmented ``(waveforms, labels)`` (:func:`epoch_clips`, the flags of
        :func:`add_data_arguments`)."""
        return epoch_clips(
            self.audio,
            self.labels,
            self.synth,
            args.synth_per_epoch,
            self.noise,
            rng,
            mix_prob=args.mix_prob,
            noise_max=args.noise_max,
        )


def training_data(
    sets: dict[str, SpeechSet],
    v1_audio: np.ndarray,
    v1_labels: np.ndarray,
    synth: dict[str, np.ndarray] | None,
) -> TrainingData:
    """The :class:`TrainingData` of one split by speaker (``sets``: "train", "val", "test").

    The feature statistics and the background noise come from the v0.02 training clips
    alone (never from validation or test speakers, and not from the v0.01 or espeak-ng
    clips); the v0.01 clips (``v1_audio``/``v1_labels``, which must be of training speakers)
    are appended to the training clips after them."""
    front = LogMelConfig(sample_rate=SAMPLE_RATE)
    train = sets["train"]
    clean = features(train.audio, front)
    return TrainingData(
        sets=sets,
        front=front,
        audio=np.concatenate([train.audio, v1_audio]),
        labels=np.concatenate([train.labels, v1_labels]),
        synth=synth,
        noise=train.audio[train.labels == KWS_LABELS.index("_silence_")],
        mean=clean.mean(axis=(0, 1)),
        std=clean.std(axis=(0, 1)) + 1e-3,
        frames=clean.shape[1],
        v1_clips=len(v1_labels),
    )


def load_training_data(args: argparse.Namespace) -> TrainingData:
    """The data that the flags of :func:`add_data_arguments` name, split by
    :func:`~eventsp.apps.kws.speaker_split` (the bundled model's split)."""
    from eventsp.train.lmu.kws_synth import load_synth  # kws_synth imports this module

    speech = args.data / "speech"
    sets = limit_sets(load_speech_commands(speech / "speech_commands_v2_test_dev"), args.limit)
    v1_audio, v1_labels, _ = load_v1_subset(
        speech / "speech_commands_v1_subset", KWS_LABELS, SAMPLE_RATE, skip=args.no_v1_subset
    )
    synth = load_synth(args.synth_dir) if args.synth_dir is not None else None
    return training_data(sets, v1_audio, v1_labels, synth)
