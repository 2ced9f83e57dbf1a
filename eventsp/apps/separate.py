"""Streaming two-talker separation: STFT -> spiking mask estimator on the runtime -> OLA.

Per chunk of any size (:meth:`Separator.step`)::

    samples --stft_step (n_fft 256, hop 128, sqrt-Hann)--> X_t per 8 ms frame
      --log(|X_t| + floor)--> Network.step (the .esp graph) --> logits (2 * 129,)
      --sigmoid--> masks M_k --M_k * X_t--> istft_step per source --> 128 samples per frame

Output samples are aligned with the input (no added delay in the signal): output sample ``n``
estimates the sources at input sample ``n``. A sample leaves the decoder once every frame that
covers it has been seen, i.e. at most ``n_fft - 1`` samples after it arrived: the algorithmic
latency is the window, 256 samples = 16 ms (``Separator.latency_s``), with no lookahead.
A stream starts with ``n_fft - hop`` zeros in the analysis buffer, so every sample is covered
by two frames (no division by a near-zero window envelope at the start; the output of those
zeros is dropped), and :meth:`Separator.finish` feeds ``n_fft`` zeros and flushes the
overlap-add, so the stream's total output has exactly as many samples as its input. The
trainer's :meth:`eventsp.train.separation.model.SeparationNet.forward` does the same.

State is plain data (:class:`SepState`); one :class:`Separator` serves any number of streams.
``load_task(path)`` wraps it as the service's ``StreamingTask`` (task ``"separate"``): each
pushed chunk answers the separated samples it completed as ``tracks (2, n)``.
Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from eventsp.audio import (
    ISTFTState,
    STFTConfig,
    init_istft_state,
    init_stft_state,
    istft_flush,
    istft_step,
    stft_step,
)
from eventsp.audio.stft import FrameState
from eventsp.kernels import layout as lay
from eventsp.model.format import load_model
from eventsp.runtime import Network, NetworkState

__all__ = ["DEFAULT_MODEL", "SepState", "Separator", "load_task", "si_snr"]

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "separate_snn.esp"


class SepState(NamedTuple):
    """One stream: STFT framing, the network, one overlap-add state per source, counts."""

    front: FrameState
    net: NetworkState
    back: tuple[ISTFTState, ISTFTState]
    pushed: int  # input samples so far
    produced: int  # overlap-add samples so far, the leading zeros' included
    emitted: int  # output samples per source so far (aligned with the input)


def si_snr(est: np.ndarray, ref: np.ndarray) -> float:
    """Scale-invariant SNR in dB of a 1-D estimate against a 1-D reference (zero-mean)."""
    est = np.asarray(est, np.float64) - np.mean(est)
    ref = np.asarray(ref, np.float64) - np.mean(ref)
    target = (est @ ref) / max(ref @ ref, 1e-12) * ref
    return float(
        10 * np.log10(max(target @ target, 1e-12) / max((target - est) @ (target - est), 1e-12))
    )


class Separator:
    """A separation model file on the streaming runtime (module docstring)."""

    def __init__(self, path: str | Path | None = None) -> None:
        path = DEFAULT_MODEL if path is None else Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"separation model {str(path)!r} does not exist; pass --model PATH to a .esp "
                "file written by `python -m eventsp.train.separation.train`"
            )
        model = load_model(path)
        meta = model.metadata
        front = dict(meta.get("frontend") or {})
        if meta.get("task") != "separate" or front.get("kind") != "stft":
            raise ValueError(
                f"{path}: metadata task {meta.get('task')!r} with frontend kind "
                f"{front.get('kind')!r}; expected task 'separate' with an 'stft' front-end"
            )
        self.path = path
        self.metadata = meta
        self.sample_rate = int(meta["sample_rate_hz"])
        self.stft = STFTConfig(
            n_fft=int(front["n_fft"]), hop_length=int(front["hop_length"]), window="sqrt_hann"
        )
        self.log_floor = float(front["log_floor"])
        self.network = Network(model.graph)
        n_freq = self.stft.n_freq
        if self.network.input_shape != (n_freq,) or self.network.output_shape != (2 * n_freq,):
            raise ValueError(
                f"{path}: network maps {self.network.input_shape} -> "
                f"{self.network.output_shape}; expected ({n_freq},) -> ({2 * n_freq},)"
            )

    @property
    def latency_s(self) -> float:
        """Algorithmic latency: the analysis window, ``n_fft / sample_rate`` (no lookahead)."""
        return self.stft.n_fft / self.sample_rate

    @property
    def lead(self) -> int:
        """Zeros in the analysis buffer at the start (``n_fft - hop``), see the docstring."""
        return self.stft.n_fft - self.stft.hop_length

    def init_state(self) -> SepState:
        back = (init_istft_state(self.stft), init_istft_state(self.stft))
        zeros = np.zeros(self.lead, np.float32)
        _, front = stft_step(zeros, init_stft_state(self.stft), self.stft)
        return SepState(front, self.network.init_state(1), back, 0, 0, 0)

    def step(self, chunk: np.ndarray, state: SepState) -> tuple[np.ndarray, SepState]:
        """Feed mono samples at ``sample_rate``: ``(tracks (2, n) float32, new state)``.

        ``tracks`` continue the sources from output sample ``state.emitted``.
        """
        samples = np.asarray(chunk, np.float32)
        if samples.ndim != 1:
            raise ValueError(f"chunk has shape {samples.shape}; expected mono samples (n,)")
        spectra, front = stft_step(samples, state.front, self.stft)
        tracks, back, net = self._frames(spectra, state)
        return self._emit(tracks, state, front, net, back, samples.shape[0])

    def _emit(
        self,
        tracks: np.ndarray,
        state: SepState,
        front: FrameState,
        net: NetworkState,
        back: tuple[ISTFTState, ISTFTState],
        pushed: int,
    ) -> tuple[np.ndarray, SepState]:
        """Drop the output of the leading zeros and anything past the input's end."""
        produced = state.produced + tracks.shape[1]
        start = max(0, self.lead - state.produced)
        total = state.pushed + pushed
        keep = max(0, min(tracks.shape[1], total + self.lead - state.produced) - start)
        out = tracks[:, start : start + keep]
        return out, SepState(front, net, back, total, produced, state.emitted + keep)

    def _frames(
        self, spectra: np.ndarray, state: SepState
    ) -> tuple[np.ndarray, tuple[ISTFTState, ISTFTState], NetworkState]:
        n_freq = self.stft.n_freq
        if spectra.shape[0] == 0:
            return np.zeros((2, 0), np.float32), state.back, state.net
        feats = np.log(np.abs(spectra) + self.log_floor).astype(np.float32)
        logits, net = self.network.run(feats[:, None, :], state.net)
        z = np.clip(logits.reshape(-1, 2, n_freq), -60.0, 60.0)  # no float32 overflow
        masks = 1.0 / (1.0 + np.exp(-z))
        out = np.empty((2, spectra.shape[0] * self.stft.hop_length), np.float32)
        back = []
        for k in range(2):
            out[k], st = istft_step(masks[:, k] * spectra, state.back[k], self.stft)
            back.append(st)
        return out, (back[0], back[1]), net

    def finish(self, state: SepState) -> tuple[np.ndarray, SepState]:
        """End of stream: the remaining samples, so the total output equals the input length."""
        spectra, front = stft_step(np.zeros(self.stft.n_fft, np.float32), state.front, self.stft)
        tracks, back, net = self._frames(spectra, state)
        tail = np.stack([istft_flush(b, self.stft) for b in back]).astype(np.float32)
        return self._emit(np.concatenate([tracks, tail], axis=1), state, front, net, back, 0)

    def separate(
        self, mixture: np.ndarray, chunk: int | None = None
    ) -> tuple[np.ndarray, SepState]:
        """Whole signal ``(samples,)`` -> ``(2, samples)`` float32, streamed in ``chunk``s."""
        signal = np.asarray(mixture, np.float32)
        if signal.ndim != 1:
            raise ValueError(f"mixture has shape {signal.shape}; expected mono (samples,)")
        state = self.init_state()
        step = signal.shape[0] if chunk is None else max(1, int(chunk))
        parts = []
        for i in range(0, signal.shape[0], step):
            out, state = self.step(signal[i : i + step], state)
            parts.append(out)
        out, state = self.finish(state)
        parts.append(out)
        return np.concatenate(parts, axis=1), state

    def synops(self, state: SepState) -> tuple[float, float]:
        """(effective synaptic operations, dense operations) of the stream so far."""
        totals = state.net.counters[0].sum(axis=0)
        return float(totals[lay.ACS] + totals[lay.MACS]), float(totals[lay.DENSE_OPS])


class SeparationTask:
    """:class:`Separator` as the service's ``StreamingTask`` (``services/tasks.py``)."""

    def __init__(self, path: Path) -> None:
        from eventsp.model.format import FORMAT_VERSION
        from eventsp.services.tasks import TaskInfo

        self.separator = Separator(path)
        meta = self.separator.metadata
        self.is_default = bool(meta.get("default", False))
        self.info = TaskInfo(
            name=Path(path).stem,
            task="separate",
            sample_rate_hz=self.separator.sample_rate,
            labels=("s1", "s2"),
            format_version=int(FORMAT_VERSION[0]),
            version=str(meta.get("version", "")),
            parameter_bytes=self.separator.network.parameter_bytes,
        )

    def warm(self) -> None:
        state = self.open_stream()
        noise = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.01
        _, state = self.push(state, noise)
        self.finish(state)
        self.close(state)

    def open_stream(self) -> SepState:
        return self.separator.init_state()

    def push(self, state: SepState, chunk: np.ndarray) -> tuple[Any, SepState]:
        before = self.separator.synops(state)
        tracks, new = self.separator.step(chunk, state)
        after = self.separator.synops(new)
        from eventsp.services.tasks import StepResult

        result = StepResult(
            tracks=tracks,
            synops=after[0] - before[0],
            dense_ops=after[1] - before[1],
            inputs=int(np.asarray(chunk).size),
        )
        return result, new

    def finish(self, state: SepState) -> tuple[Any, SepState]:
        from eventsp.services.tasks import StepResult

        before = self.separator.synops(state)
        tracks, new = self.separator.finish(state)
        after = self.separator.synops(new)
        return StepResult(
            tracks=tracks, synops=after[0] - before[0], dense_ops=after[1] - before[1]
        ), new

    def close(self, state: SepState) -> None:
        """Nothing to release beyond dropping ``state`` (plain arrays)."""


def load_task(path: str | Path) -> SeparationTask:
    """The service's streaming task for a ``separate`` model file."""
    return SeparationTask(Path(path))
