"""Keyword spotting on a continuous audio stream: log-mel -> hybrid-spiking LMU -> events.

Pipeline, per chunk of any size (``KeywordSpotter.step``)::

    samples --logmel_step--> frames (10 ms hops) --Network.step--> logits y_t per frame
      --softmax--> posteriors p_t --moving average over `smooth_frames`--> s_t --> events

A model whose metadata has ``"frame_stack": S`` (S > 1) takes S consecutive log-mel frames
side by side as one input and runs once every S hops (S times fewer synaptic operations per
second); "frame" below then means one network step of S hops, and a stream holds the frames
of an unfinished group in its state. ``smooth_frames`` defaults to the model's metadata
``smooth_frames`` (what the trainer validated), else 20.

The model (``eventsp.train.lmu.kws``) classifies the last ``theta`` frames (about one
second) at every frame, with 12 classes: ten keywords, ``_unknown_`` and ``_silence_``.

Decision rule. A keyword event opens at the first frame where a keyword class is the
arg-max of ``s_t`` with ``s_t >= threshold``; it stays open while that class stays the
arg-max with ``s_t >= release`` and closes at the first frame where it does not (or at the
end of the stream). Its ``score`` is the peak ``s_t`` while open. The posterior is high while
the word lies inside the LMU's window, i.e. from the end of the word until about ``theta``
after its start, so the reported span is shifted back by half the window: ``start_s`` and
``end_s`` are the open and close times minus ``theta / 2`` (floored at 0). Times are those of
each frame's last sample, from the first sample of the stream.

Whole-clip answer (``classify``): for a clip up to 1.5 windows long (about 1.5 s), the
arg-max of the last frame's posterior, with that posterior as the score, or, for a model whose
metadata says ``"clip_decision": "smoothed"`` (trained on the last frames of each clip), of the
smoothed posterior ``s_t`` of the last frame (the mean of the last ``smooth_frames``
posteriors); for one-second clips each is the decision the trainer validated. For longer
audio: the keyword of the highest-scoring event, or that arg-max when there is no event.

Per-stream state is plain data (:class:`KWSState`); one :class:`KeywordSpotter` serves any
number of streams. Nothing here imports torch.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from eventsp._jit import jit
from eventsp.audio import LogMelConfig, init_logmel_state, logmel_step
from eventsp.model.format import load_model
from eventsp.runtime import Network

__all__ = [
    "DEFAULT_MODEL",
    "ClipResult",
    "KWSConfig",
    "KWSState",
    "KeywordEvent",
    "KeywordSpotter",
    "speaker_of",
    "speaker_split",
]

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "kws_lmu.esp"
NON_KEYWORDS = ("_unknown_", "_silence_")


def speaker_of(path: Path) -> str:
    """The speaker hash of a Speech Commands file (the file name for ``_silence_``)."""
    stem = Path(path).stem
    if "_nohash_" not in stem:
        return stem
    head = stem.split("_nohash_")[0]
    return head.rsplit("_", 1)[-1]


def speaker_split(speaker: str, val_percent: int = 15, test_percent: int = 15) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for a speaker, stable across runs (crc32).

    The bundled model was trained on "train" speakers only and selected on "val"; "test"
    speakers are for reporting.
    """
    bucket = zlib.crc32(speaker.encode()) % 100
    if bucket < test_percent:
        return "test"
    if bucket < test_percent + val_percent:
        return "val"
    return "train"


@dataclass(frozen=True)
class KWSConfig:
    """Posterior smoothing and event thresholds (see the module docstring)."""

    smooth_frames: int | None = None  # None: the model's metadata "smooth_frames", else 20
    threshold: float = 0.6
    release: float = 0.4

    def __post_init__(self) -> None:
        smooth = self.smooth_frames
        if smooth is not None and (not isinstance(smooth, int) or smooth < 1):
            raise ValueError(f"smooth_frames is {smooth!r}; expected an int >= 1 or None")
        if not 0.0 < self.release <= self.threshold <= 1.0:
            raise ValueError(
                f"release {self.release} and threshold {self.threshold} must satisfy "
                "0 < release <= threshold <= 1"
            )


@dataclass(frozen=True)
class KeywordEvent:
    keyword: str
    start_s: float
    end_s: float
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "keyword": self.keyword,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class ClipResult:
    label: str
    score: float
    events: tuple[KeywordEvent, ...]
    frames: int
    synops: float  # the runtime's effective synaptic operations over the clip


class KWSState(NamedTuple):
    """One stream: front-end and network states, the posterior ring and the open event.

    ring: ``(smooth_frames, classes)`` float64 last posteriors (zeros before the first);
    total: ``(classes,)`` float64 their running sum; counters: int64 ``[frames so far,
    open event's class (-1: none), its first frame]`` (network steps); peak: float64
    ``[open event's peak]``; last: ``(classes,)`` float64 last posterior; pending:
    ``(frame_stack, n_mels)`` float32 log-mel frames of the unfinished group, ``held[0]`` of
    them. ``step`` updates the arrays in place.
    """

    front: Any
    net: Any
    ring: np.ndarray
    total: np.ndarray
    counters: np.ndarray
    peak: np.ndarray
    last: np.ndarray
    pending: np.ndarray
    held: np.ndarray


def frames_seen(state: KWSState) -> int:
    """Log-mel frames the stream has consumed so far (time = frames * hop)."""
    return int(state.counters[0]) * state.pending.shape[0] + int(state.held[0])


_KERNEL_SIGNATURE = (
    "void(float32[:, ::1], float64[:, ::1], float64[::1], int64[::1], float64[::1], "
    "boolean[::1], float64, float64, float64[:, ::1], float64[:, ::1], int64[::1], float64[::1])"
)


@jit(_KERNEL_SIGNATURE)
def _posterior_events(
    logits,
    ring,
    total,
    counters,
    peak,
    keywords,
    threshold,
    release,
    smoothed,
    found,
    n_found,
    last,
):  # pragma: no cover - compiled
    """Softmax, moving average and the event rule (module docstring) for ``n`` frames.

    Writes ``smoothed (n, C)``, closed events as rows ``[class, first, last, peak]`` of
    ``found`` (``n_found[0]`` of them), and updates ``ring``, ``total``, ``counters``,
    ``peak`` and ``last`` in place.
    """
    n, C = logits.shape
    W = ring.shape[0]
    frames, open_class, open_frame = counters[0], counters[1], counters[2]
    top_peak = peak[0]
    k = 0
    for i in range(n):
        zmax = np.float64(logits[i, 0])
        for c in range(1, C):
            zmax = max(zmax, np.float64(logits[i, c]))
        norm = 0.0
        for c in range(C):
            last[c] = np.exp(np.float64(logits[i, c]) - zmax)
            norm += last[c]
        slot = frames % W
        filled = min(frames + 1, W)
        top = 0
        score = -1.0
        for c in range(C):
            p = last[c] / norm
            last[c] = p
            total[c] += p - ring[slot, c]
            ring[slot, c] = p
            s = total[c] / filled
            smoothed[i, c] = s
            if s > score:
                score = s
                top = c
        if open_class >= 0:
            if top == open_class and score >= release:
                top_peak = max(top_peak, score)
            else:
                found[k, 0] = open_class
                found[k, 1] = open_frame
                found[k, 2] = frames
                found[k, 3] = top_peak
                k += 1
                open_class = -1
        if open_class < 0 and keywords[top] and score >= threshold:
            open_class = top
            open_frame = frames
            top_peak = score
        frames += 1
    counters[0] = frames
    counters[1] = open_class
    counters[2] = open_frame
    peak[0] = top_peak
    n_found[0] = k


class KeywordSpotter:
    """A keyword-spotting model file on the streaming runtime (module docstring)."""

    def __init__(self, path: str | Path | None = None, config: KWSConfig | None = None) -> None:
        path = DEFAULT_MODEL if path is None else Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"keyword model {str(path)!r} does not exist; pass --model PATH to a .esp file "
                "written by `python -m eventsp.train.lmu.kws`"
            )
        model = load_model(path)
        meta = model.metadata
        if meta.get("task") != "kws":
            raise ValueError(
                f"{path}: metadata task is {meta.get('task')!r}, not 'kws'; pass a keyword "
                "spotting model"
            )
        frontend = dict(meta.get("frontend") or {})
        frontend.pop("kind", None)
        self.path = path
        self.metadata = meta
        self.front = LogMelConfig.from_dict(frontend)
        self.labels: tuple[str, ...] = tuple(meta["labels"])
        self.network = Network(model.graph)
        self.config = config or KWSConfig()
        self.keywords = np.array([label not in NON_KEYWORDS for label in self.labels], np.bool_)
        self.hop_s = self.front.hop_length / self.front.sample_rate
        self.stack = int(meta.get("frame_stack", 1))
        if self.stack < 1 or self.network.input_shape != (self.front.n_mels * self.stack,):
            raise ValueError(
                f"{path}: the network takes {self.network.input_shape}, not frame_stack "
                f"{self.stack} x {self.front.n_mels} mels; the metadata does not fit the graph"
            )
        self.smooth_frames = self.config.smooth_frames or int(meta.get("smooth_frames", 20))
        lmu = meta.get("lmu", {})
        window = float(lmu.get("theta", 0.0))  # steps; a stacked LMU's longer second memory:
        if lmu.get("memory2_d"):
            window = max(window, float(lmu.get("theta2", 0.0)))
        self.window_s = window * self.hop_s * self.stack
        self.clip_decision = str(meta.get("clip_decision", "last"))
        if self.clip_decision not in ("last", "smoothed"):
            raise ValueError(
                f"{path}: metadata clip_decision is {self.clip_decision!r}; expected 'last' or "
                "'smoothed' (re-export the model with `python -m eventsp.train.lmu.kws`)"
            )

    @property
    def sample_rate(self) -> int:
        return self.front.sample_rate

    def init_state(self) -> KWSState:
        n = len(self.labels)
        return KWSState(
            init_logmel_state(self.front),
            self.network.init_state(batch=1),
            np.zeros((self.smooth_frames, n)),
            np.zeros(n),
            np.array([0, -1, 0], np.int64),
            np.zeros(1),
            np.full(n, 1.0 / n),
            np.zeros((self.stack, self.front.n_mels), np.float32),
            np.zeros(1, np.int64),
        )

    def _time(self, frame: int) -> float:
        """End time (s) of feature frame ``frame`` (0-based)."""
        return (frame * self.front.hop_length + self.front.n_fft) / self.front.sample_rate

    def _event(self, cls: int, first: int, last: int, peak: float) -> KeywordEvent:
        """An event from network steps ``first..last`` (step k ends on frame (k+1)S - 1)."""
        shift = self.window_s / 2
        S = self.stack
        return KeywordEvent(
            self.labels[cls],
            max(0.0, self._time(first * S + S - 1) - shift),
            max(0.0, self._time(last * S + S - 1) - shift),
            float(peak),
        )

    def _group(self, feats: np.ndarray, state: KWSState) -> np.ndarray:
        """Frames -> network inputs ``(steps, S * n_mels)``; keeps the rest in ``pending``."""
        S = self.stack
        if S == 1:
            return feats
        held = int(state.held[0])
        frames = np.concatenate([state.pending[:held], feats]) if held else feats
        steps = len(frames) // S
        rest = frames[steps * S :]
        state.pending[: len(rest)] = rest
        state.held[0] = len(rest)
        return np.ascontiguousarray(frames[: steps * S].reshape(steps, S * feats.shape[1]))

    def step(
        self, chunk: np.ndarray, state: KWSState
    ) -> tuple[list[KeywordEvent], np.ndarray, KWSState]:
        """Feed samples (1-D, at ``sample_rate``): ``(closed events, posteriors, state)``.

        ``posteriors`` ``(frames, classes)`` are the smoothed posteriors of the frames this
        chunk completed. Like the runtime's ``step``, this updates ``state``'s arrays in place
        and returns it (with the new front-end state).
        """
        feats, front = logmel_step(np.asarray(chunk, np.float32), state.front, self.front)
        feats = self._group(feats, state)
        net_state = state.net
        if len(feats):
            outs, net_state = self.network.run(feats[:, None, :], net_state)
            logits = np.ascontiguousarray(outs[:, 0], dtype=np.float32)
        else:
            logits = np.empty((0, len(self.labels)), np.float32)
        smoothed = np.empty((len(logits), len(self.labels)))
        found = np.empty((len(logits), 4))
        n_found = np.zeros(1, np.int64)
        cfg = self.config
        _posterior_events(
            logits,
            state.ring,
            state.total,
            state.counters,
            state.peak,
            self.keywords,
            cfg.threshold,
            cfg.release,
            smoothed,
            found,
            n_found,
            state.last,
        )
        events = [
            self._event(int(c), int(first), int(last), peak)
            for c, first, last, peak in found[: n_found[0]]
        ]
        return events, smoothed, state._replace(front=front, net=net_state)

    def finish(self, state: KWSState) -> tuple[list[KeywordEvent], KWSState]:
        """Close the open event at the end of the stream."""
        frames, open_class, open_frame = (int(v) for v in state.counters)
        if open_class < 0:
            return [], state
        event = self._event(open_class, open_frame, frames - 1, float(state.peak[0]))
        state.counters[1] = -1
        return [event], state

    def stream(self, chunks: Iterable[np.ndarray]) -> tuple[list[KeywordEvent], KWSState]:
        """All events of a stream of chunks, and the final state."""
        state = self.init_state()
        events: list[KeywordEvent] = []
        for chunk in chunks:
            closed, _, state = self.step(chunk, state)
            events += closed
        closed, state = self.finish(state)
        return events + closed, state

    def clip_posterior(self, state: KWSState) -> np.ndarray:
        """The posterior a whole clip is classified by, after the frames ``state`` has seen: the
        last frame's, or the smoothed one for a model whose ``clip_decision`` is ``"smoothed"``
        (the mean of the last ``smooth_frames`` posteriors)."""
        if self.clip_decision == "smoothed":
            mean = state.total / max(1, min(int(state.counters[0]), self.smooth_frames))
            return np.maximum(mean, 0.0)  # the running sum can round a zero to -1e-19
        return state.last

    def classify(self, signal: np.ndarray, chunk: int = 1600) -> ClipResult:
        """Run a whole 1-D signal (at ``sample_rate``) in chunks: label, score and events."""
        signal = np.asarray(signal, np.float32)
        if signal.ndim != 1:
            raise ValueError(f"signal has shape {signal.shape}; expected mono samples (n,)")
        pad = max(0, self.front.n_fft - len(signal))  # too short for one frame: pad silence
        signal = np.concatenate([signal, np.zeros(pad, np.float32)])
        events, state = self.stream(signal[i : i + chunk] for i in range(0, len(signal), chunk))
        synops = float(self.network.counters(state.net)[0]["effective_synops"])
        short = len(signal) / self.sample_rate <= 1.5 * self.window_s
        if events and not short:
            best = max(events, key=lambda e: e.score)
            label, score = best.keyword, best.score
        else:
            posterior = self.clip_posterior(state)
            top = int(posterior.argmax())
            label, score = self.labels[top], float(posterior[top])
        return ClipResult(label, score, tuple(events), frames_seen(state), synops)
