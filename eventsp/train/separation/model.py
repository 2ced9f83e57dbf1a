r"""The separation network in PyTorch: STFT encoder, causal spiking mask estimator, OLA decoder.

::

    mixture x (samples) --STFT (n_fft 256, hop 128, sqrt-Hann)--> X_t (129 bins) per 8 ms frame
      --log|X_t|, standardised--> Dense(H) -> ReLU -> Q
      -> [CausalConv1d(H, H, k, dilation d) -> ReLU -> Q] for d in dilations
      -> Dense(2 * 129) -> sigmoid -> masks M1_t, M2_t
    S_k = M_k * X (complex) --iSTFT, weighted overlap-add--> s_k (samples)

``Q`` is the runtime's ``MultiSpike(dt)`` neuron (``v += x dt; n = floor(v); v -= n;
out = n / dt``): graded spikes whose residual carries to the next frame (error diffusion, a
sigma-delta neuron). ``spiking=False`` replaces it by the identity (the ANN); with
``spiking=True`` the forward pass runs it frame by frame exactly as the runtime does and the
backward pass treats it as the identity (straight-through): the network is trained directly as
an SNN, starting from the trained ANN (the tandem idea: spiking forward, ANN gradient).

Everything up to the masks' pre-activations is what runs on the streaming runtime
(``export.to_graph``); the log-magnitude, the sigmoid and the (i)STFT are the application's
front- and back-end (``eventsp.apps.separate``), computed identically here.

Edges: the stream starts with ``n_fft - hop`` zeros already in the analysis buffer (so every
real sample is covered by ``n_fft / hop`` frames and the overlap-add never divides by a tiny
window envelope) and, at its end, ``n_fft`` zeros flush the last frames; the output is cut to
the input's samples. :meth:`SeparationNet.forward` and ``eventsp.apps.separate`` do the same.

Latency: the first sample of each hop leaves the decoder once the frame that ends ``n_fft - 1``
samples later has arrived; no lookahead beyond the window, so the algorithmic latency is the
window, ``n_fft / 16000`` s = 16 ms.

Loss: negative scale-invariant SNR, permutation invariant over the two outputs::

    SI-SNR(s_hat, s) = 10 log10(|a s|^2 / |a s - s_hat|^2),  a = <s_hat, s> / |s|^2
    (both zero-mean); PIT takes the better of the two pairings per mixture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as fn

__all__ = [
    "SepConfig",
    "SeparationNet",
    "overlap_add",
    "pit_si_snr",
    "si_snr",
    "stft_frames",
]

EPS = 1e-8
LOG_FLOOR = 1e-5


@dataclass(frozen=True)
class SepConfig:
    """Architecture. ``dilations``: one causal conv block per entry."""

    n_fft: int = 256
    hop: int = 128
    hidden: int = 192
    kernel: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    dt: float = 8.0
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        if self.n_fft % 2 or self.n_fft < 16 or not 0 < self.hop <= self.n_fft:
            raise ValueError(
                f"n_fft {self.n_fft} / hop {self.hop}: expected an even n_fft >= 16 and "
                "0 < hop <= n_fft"
            )
        if self.hidden < 1 or self.kernel < 1 or any(d < 1 for d in self.dilations):
            raise ValueError("hidden, kernel and every dilation must be >= 1")
        if self.dt <= 0:
            raise ValueError(f"dt is {self.dt}; expected > 0 (MultiSpike resolution 1/dt)")

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def latency_s(self) -> float:
        """Algorithmic latency: the analysis window (no lookahead)."""
        return self.n_fft / self.sample_rate


def window(n_fft: int) -> torch.Tensor:
    """Periodic sqrt-Hann, float64 (``eventsp.audio.make_window("sqrt_hann", n, n)``)."""
    phase = 2.0 * torch.pi * torch.arange(n_fft, dtype=torch.float64) / n_fft
    return torch.sqrt(0.5 - 0.5 * torch.cos(phase))


def stft_frames(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """``(B, samples)`` -> complex ``(B, frames, n_fft // 2 + 1)``; ``center=False`` framing."""
    w = window(n_fft).to(x.device, x.dtype)
    return torch.fft.rfft(x.unfold(-1, n_fft, hop) * w, dim=-1)


def overlap_add(spec: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Inverse of :func:`stft_frames`: complex ``(B, frames, F)`` -> ``(B, samples)``.

    Windowed inverse FFTs overlap-added and divided by the summed squared window (where it
    exceeds 1e-11, else 0), as ``eventsp.audio.istft``.
    """
    frames = torch.fft.irfft(spec, n=n_fft, dim=-1)
    w = window(n_fft).to(frames.device, frames.dtype)
    n = frames.shape[1]
    length = (n - 1) * hop + n_fft
    fold = nn.functional.fold
    acc = fold((frames * w).transpose(1, 2), (1, length), (1, n_fft), stride=(1, hop))
    env = fold(
        (w * w).expand(1, n, n_fft).transpose(1, 2), (1, length), (1, n_fft), stride=(1, hop)
    )
    acc, env = acc.reshape(spec.shape[0], length), env.reshape(1, length)
    return torch.where(env > 1e-11, acc / env.clamp_min(1e-11), torch.zeros_like(acc))


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return q

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


def multispike(x: torch.Tensor, dt: float) -> torch.Tensor:
    """``MultiSpike(dt)`` over ``x (B, T, C)`` frame by frame, straight-through gradient."""
    with torch.no_grad():
        v = torch.zeros_like(x[:, 0])
        out = torch.empty_like(x)
        for t in range(x.shape[1]):
            v = v + x[:, t] * dt
            n = torch.floor(v)
            v = v - n
            out[:, t] = n / dt
    return _StraightThrough.apply(x, out)


class SeparationNet(nn.Module):
    """Mask estimator over log-magnitude frames (module docstring)."""

    def __init__(self, config: SepConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.register_buffer("feat_mean", torch.zeros(c.n_freq))
        self.register_buffer("feat_std", torch.ones(c.n_freq))
        self.inp = nn.Linear(c.n_freq, c.hidden)
        self.convs = nn.ModuleList(
            nn.Conv1d(c.hidden, c.hidden, c.kernel, dilation=d) for d in c.dilations
        )
        self.out = nn.Linear(c.hidden, 2 * c.n_freq)
        self.spiking = False

    def features(self, spec: torch.Tensor) -> torch.Tensor:
        """Log magnitude ``(B, T, F)`` of complex frames (before standardisation)."""
        return torch.log(spec.abs() + LOG_FLOOR)

    def _q(self, x: torch.Tensor) -> torch.Tensor:
        x = fn.relu(x)
        return multispike(x, self.config.dt) if self.spiking else x

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        """Mask pre-activations ``(B, T, 2, F)`` from raw log-magnitudes ``(B, T, F)``."""
        h = self._q(self.inp((feats - self.feat_mean) / self.feat_std))
        for conv in self.convs:
            pad = (conv.kernel_size[0] - 1) * conv.dilation[0]
            y = conv(fn.pad(h.transpose(1, 2), (pad, 0))).transpose(1, 2)
            h = self._q(y)
        out = self.out(h)
        return out.reshape(*out.shape[:2], 2, self.config.n_freq)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """Separated sources ``(B, 2, samples)`` for mixtures ``(B, samples)``."""
        c = self.config
        lead = c.n_fft - c.hop
        spec = stft_frames(fn.pad(mixture, (lead, c.n_fft)), c.n_fft, c.hop)
        masks = torch.sigmoid(self.logits(self.features(spec)))
        est = masks * spec[:, :, None, :]
        b, t = spec.shape[:2]
        flat = est.permute(0, 2, 1, 3).reshape(b * 2, t, c.n_freq)
        signal = overlap_add(flat, c.n_fft, c.hop).reshape(b, 2, -1)[..., lead:]
        n = mixture.shape[-1]
        return fn.pad(signal, (0, max(0, n - signal.shape[-1])))[..., :n]


def si_snr(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """SI-SNR in dB over the last axis (module docstring)."""
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    a = (est * ref).sum(-1, keepdim=True) / ((ref * ref).sum(-1, keepdim=True) + EPS)
    target = a * ref
    noise = target - est
    return 10 * torch.log10(((target**2).sum(-1) + EPS) / ((noise**2).sum(-1) + EPS))


def pit_si_snr(est: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-mixture best-permutation SI-SNR ``(B,)`` and the permutation (1 = swapped)."""
    direct = (si_snr(est[:, 0], ref[:, 0]) + si_snr(est[:, 1], ref[:, 1])) / 2
    swapped = (si_snr(est[:, 0], ref[:, 1]) + si_snr(est[:, 1], ref[:, 0])) / 2
    best = torch.maximum(direct, swapped)
    return best, (swapped > direct).long()


def set_standardisation(model: SeparationNet, mixtures: Sequence[torch.Tensor]) -> None:
    """Per-bin mean and std of the features of ``mixtures`` into the model's buffers."""
    c = model.config
    with torch.no_grad():
        feats = torch.cat(
            [model.features(stft_frames(m, c.n_fft, c.hop)).reshape(-1, c.n_freq) for m in mixtures]
        )
        model.feat_mean.copy_(feats.mean(0))
        model.feat_std.copy_(feats.std(0).clamp_min(1e-3))
