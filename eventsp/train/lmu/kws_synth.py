"""Extra keyword-spotting clips spoken by espeak-ng (``python -m eventsp.train.lmu.kws_synth``).

    python -m eventsp.train.lmu.kws_synth --out runs/kws-synth --per-keyword 300 --unknown 900

Speech Commands here is about 2,000 training clips, so the KWS trainer can add synthetic
speech as an extra source (``python -m eventsp.train.lmu.kws --synth-dir runs/kws-synth``).
Each clip is one word spoken by espeak-ng with a random English accent (``-v en-us``,
``en-gb-scotland``, ...), voice variant (``+m3``, ``+f2``, ``+klatt``, ...), speed (words per
minute) and pitch; it is resampled to 16 kHz with :func:`eventsp.audio.read_audio`, trimmed to
its voiced part, given a random peak level, and placed at a random offset in a one-second clip,
as the real clips are. Keywords are the ten Speech Commands keywords; ``_unknown_`` clips are
other words (:data:`UNKNOWN_WORDS`, some chosen to sound close to a keyword).

Writes ``<out>/synth.npz`` (no pickle): ``audio (N, 16000) float32``, ``labels (N,) int64``
(indices into ``KWS_LABELS`` of the trainer), ``words (N,) str`` and ``voices (N,) str``.
Run it once; the trainer only reads the file. espeak-ng voices are not Speech Commands
speakers, so this never touches the speaker split.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eventsp.audio import read_audio
from eventsp.train.lmu.kws_data import CLIP_SAMPLES, KWS_LABELS, SAMPLE_RATE

__all__ = ["KEYWORDS", "UNKNOWN_WORDS", "load_synth", "synth_word", "synthesise"]

KEYWORDS = KWS_LABELS[:10]
UNKNOWN_WORDS = (
    # Speech Commands' own non-keywords
    "bed",
    "bird",
    "cat",
    "dog",
    "happy",
    "house",
    "marvin",
    "sheila",
    "tree",
    "wow",
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "backward",
    "forward",
    "follow",
    "learn",
    "visual",
    # close to a keyword
    "yet",
    "yeah",
    "less",
    "test",
    "know",
    "now",
    "snow",
    "nope",
    "cup",
    "pup",
    "us",
    "town",
    "brown",
    "round",
    "lift",
    "loft",
    "west",
    "light",
    "write",
    "bright",
    "night",
    "own",
    "in",
    "an",
    "of",
    "oft",
    "top",
    "shop",
    "step",
    "stock",
    "goal",
    "ghost",
    "so",
    "toe",
    "grow",
    "dough",
    "yo",
    # everyday words
    "the",
    "and",
    "you",
    "that",
    "was",
    "for",
    "are",
    "with",
    "this",
    "have",
    "from",
    "had",
    "word",
    "but",
    "what",
    "all",
    "were",
    "when",
    "your",
    "can",
    "said",
    "there",
    "which",
    "she",
    "how",
    "will",
    "other",
    "about",
    "many",
    "then",
    "them",
    "some",
    "would",
    "make",
    "like",
    "time",
    "look",
    "more",
    "see",
    "number",
    "way",
    "could",
    "people",
    "water",
    "been",
    "call",
    "who",
    "find",
    "long",
    "day",
    "did",
    "get",
    "come",
    "made",
    "may",
    "part",
    "morning",
    "music",
    "window",
    "open",
    "close",
    "play",
    "pause",
    "hello",
    "thanks",
    "please",
    "maybe",
    "okay",
    "sorry",
    "computer",
    "weather",
    "table",
    "paper",
    "monday",
    "later",
    "orange",
    "yellow",
    "little",
    "big",
    "small",
)
LANGUAGES = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
VARIANTS = (
    *(f"m{i}" for i in range(1, 9)),
    *(f"f{i}" for i in range(1, 6)),
    *("klatt", "klatt2", "klatt3", "klatt4", "klatt6", "whisper", "whisperf", "croak"),
    *("grandma", "grandpa", "adam", "Alex", "Andy", "Annie", "aunty", "belinda", "david"),
    *("ed", "edward", "john", "linda", "max", "michel", "paul", "quincy", "rob", "robert"),
    *("steph", "steph2", "travis", "victor", "zac", "shelby", "norbert", "sandro"),
)


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError(
            "espeak-ng is not installed; install it (`apt-get install espeak-ng`) or train "
            "without --synth-dir"
        )
    return exe


def synth_word(word: str, voice: str, speed: int, pitch: int, workdir: Path) -> np.ndarray:
    """One word from espeak-ng at 16 kHz, float32, trimmed to its voiced part."""
    wav = workdir / "word.wav"
    cmd = [_espeak(), "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), word]
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)
    signal, _ = read_audio(wav, SAMPLE_RATE)
    level = np.abs(signal)
    loud = np.flatnonzero(level > 0.02 * max(float(level.max()), 1e-9))
    if len(loud) == 0:
        return np.zeros(0, np.float32)
    return signal[max(0, loud[0] - 160) : loud[-1] + 160].astype(np.float32)


def _place(word: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """The word at a random offset in a one-second clip, peak level 0.05-0.9; None if too long."""
    if len(word) == 0 or len(word) > CLIP_SAMPLES - 800:
        return None
    clip = np.zeros(CLIP_SAMPLES, np.float32)
    start = int(rng.integers(400, CLIP_SAMPLES - len(word) - 400 + 1))
    peak = float(np.abs(word).max())
    clip[start : start + len(word)] = word * (
        10 ** rng.uniform(np.log10(0.05), np.log10(0.9)) / peak
    )
    return clip


def synthesise(
    per_keyword: int, unknown: int, seed: int = 0, *, progress: bool = False
) -> dict[str, np.ndarray]:
    """``per_keyword`` clips of each keyword and ``unknown`` clips of other words."""
    if per_keyword < 0 or unknown < 0:
        raise ValueError(
            f"per_keyword {per_keyword} and unknown {unknown} must be >= 0 (clips to make)"
        )
    rng = np.random.default_rng(seed)
    jobs = [(w, i) for i, w in enumerate(KEYWORDS) for _ in range(per_keyword)]
    other = KWS_LABELS.index("_unknown_")
    jobs += [(str(rng.choice(UNKNOWN_WORDS)), other) for _ in range(unknown)]
    audio, labels, words, voices = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (word, label) in enumerate(jobs):
            for _ in range(5):  # a new voice when a word came out too long
                voice = f"{rng.choice(LANGUAGES)}+{rng.choice(VARIANTS)}"
                speed, pitch = int(rng.integers(110, 231)), int(rng.integers(15, 86))
                clip = _place(synth_word(word, voice, speed, pitch, Path(tmp)), rng)
                if clip is not None:
                    break
            if clip is None:
                continue
            audio.append(clip)
            labels.append(label)
            words.append(word)
            voices.append(f"{voice} -s {speed} -p {pitch}")
            if progress and (k + 1) % 500 == 0:
                print(f"{k + 1}/{len(jobs)} clips", flush=True)
    return {
        "audio": np.stack(audio) if audio else np.zeros((0, CLIP_SAMPLES), np.float32),
        "labels": np.asarray(labels, np.int64),
        "words": np.asarray(words, dtype=str),
        "voices": np.asarray(voices, dtype=str),
    }


def load_synth(directory: Path) -> dict[str, np.ndarray]:
    """Read ``<directory>/synth.npz`` written by :func:`main`."""
    path = Path(directory) / "synth.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(path)!r} does not exist; make it with `python -m eventsp.train.lmu.kws_synth "
            f"--out {directory}`"
        )
    with np.load(path, allow_pickle=False) as data:
        out = {k: data[k] for k in ("audio", "labels", "words", "voices")}
    if out["audio"].ndim != 2 or out["audio"].shape[1] != CLIP_SAMPLES:
        raise ValueError(f"{path}: audio has shape {out['audio'].shape}; expected (N, 16000)")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eventsp.train.lmu.kws_synth", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="folder for synth.npz")
    p.add_argument("--per-keyword", type=int, default=300)
    p.add_argument("--unknown", type=int, default=900)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    data = synthesise(args.per_keyword, args.unknown, args.seed, progress=True)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "synth.npz", **data)
    counts = np.bincount(data["labels"], minlength=len(KEYWORDS) + 1).tolist()
    print(json.dumps({"clips": len(data["labels"]), "per_label": counts}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
