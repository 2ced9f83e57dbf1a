"""STBP neurons and threshold-dependent batch norm (Zheng et al., AAAI 2021), in PyTorch.

Tensors are time-major: ``(T, N, C, H, W)`` or ``(T, N, F)``.

LIF with decay and hard reset (the iterative form STBP differentiates)::

    u_t = tau * u_{t-1} * (1 - o_{t-1}) + x_t,     o_t = H(u_t - V_th)

which is the runtime's ``LIF(decay=tau, threshold=V_th)`` (``v = decay*v + x``; spike where
``v >= threshold``; ``v = 0`` after a spike). Back-propagation through time uses the
rectangular surrogate ``dH/du ~= 1/a * 1[|u - V_th| < a/2]``; gradients also flow through the
reset term ``(1 - o_{t-1})``.

tdBN normalises each channel over (T, N, H, W) together,
``y = lambda * (x - mean) / sqrt(var + eps) + beta``, with ``lambda`` initialised to
``alpha * V_th`` (``alpha = 1``, or ``1/sqrt(2)`` on the two branches that meet in a residual
add), so pre-activations start at the scale of the threshold. It is ``BatchNorm2d`` applied to
the ``(T*N, C, H, W)`` view; at export its running statistics fold into the convolution before
it (:mod:`eventsp.train.stbp.export`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LIF", "SpikeFunction", "TdBN", "merge_time", "split_time"]


class SpikeFunction(torch.autograd.Function):
    """Heaviside forward ``u >= V_th``; rectangular surrogate gradient of width ``a``."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, threshold: float, width: float) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.threshold, ctx.width = threshold, width
        return (u >= threshold).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (u,) = ctx.saved_tensors
        window = ((u - ctx.threshold).abs() < ctx.width / 2).to(grad.dtype) / ctx.width
        return grad * window, None, None


class LIF(nn.Module):
    """LIF over a time-major sequence; ``forward(x (T, N, ...)) -> spikes (T, N, ...)``.

    ``spike_count`` holds the number of spikes of the last forward pass per sample (a float
    tensor ``(N,)``, no gradient) for parity checks against the runtime's counters.
    """

    def __init__(self, decay: float = 0.25, threshold: float = 0.5, width: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay={decay}; expected a number in [0, 1]")
        if threshold <= 0 or width <= 0:
            raise ValueError(f"threshold={threshold}, width={width}; both must be > 0")
        self.decay, self.threshold, self.width = float(decay), float(threshold), float(width)
        self.spike_count = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.zeros_like(x[0])
        o = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            u = self.decay * u * (1.0 - o) + x[t]
            o = SpikeFunction.apply(u, self.threshold, self.width)
            out.append(o)
        spikes = torch.stack(out)
        self.spike_count = spikes.detach().reshape(*x.shape[:2], -1).sum(dim=(0, 2))
        return spikes

    def extra_repr(self) -> str:
        return f"decay={self.decay}, threshold={self.threshold}, width={self.width}"


class TdBN(nn.BatchNorm2d):
    """Threshold-dependent batch norm over (T, N, H, W) per channel; input ``(T, N, C, H, W)``."""

    def __init__(
        self, channels: int, threshold: float = 0.5, alpha: float = 1.0, eps: float = 1e-5
    ) -> None:
        super().__init__(channels, eps=eps, momentum=0.1)
        self.alpha = float(alpha)
        with torch.no_grad():
            self.weight.fill_(self.alpha * threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return split_time(super().forward(merge_time(x)), x.shape[0])

    def forward_merged(self, y: torch.Tensor) -> torch.Tensor:
        """The same on the already merged ``(T*N, C, H, W)`` view."""
        return super().forward(y)


def merge_time(x: torch.Tensor) -> torch.Tensor:
    """``(T, N, ...) -> (T*N, ...)``."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def split_time(x: torch.Tensor, steps: int) -> torch.Tensor:
    """``(T*N, ...) -> (T, N, ...)``."""
    return x.reshape(steps, x.shape[0] // steps, *x.shape[1:])


RESIDUAL_ALPHA = 1.0 / math.sqrt(2.0)
