"""The hybrid-spiking LMU: encoder -> Legendre memory -> quantized hidden layer -> classifier.

Feed-forward LMU (KerasLMU with ``hidden_to_memory=False``, ``memory_to_memory=False``)::

    u_t = E x_t                                  encoder, (D,) from (F,) input features
    m_t = A_d m_{t-1} + B_d u_t                  Legendre memory per channel, (D * order,)
    a_t = relu(W_m m_t + W_x x_t + b)            hidden activity, (H,)
    h_t = Q_dt(a)_t                              diffused-error quantizer (``quantizer``)
    [h_t = Q_dt(relu(W_2 h_t + b_2))_t           optional second layer, ``hidden2 > 0``]
    [   + W_m2 m2_t, m2_t = A2_d m2_{t-1} + B2_d E_2 h_t  with a second memory over the first
                                                 layer's output, ``memory2_d > 0`` (a stacked
                                                 LMU: its second layer sees time too)]
    [h_t = Q_dt(relu(W_3 h_t + b_3))_t           optional third layer, ``hidden3 > 0``]
    y_t = W_o h_t + b_o                          logits per step; readout "last" or "mean"

No nonlinearity feeds back in time, so the whole forward pass is parallel over time: the
memory followed by ``W_m`` is one causal convolution of ``u`` with the kernel
``G_c = H @ W_m[:, c].T`` (``H[k] = A_d^k B_d``), evaluated by FFT (``memory_parallel``); with
the "last" readout only ``m_{T-1}`` is needed, a single product with the reversed ``H``.

``forward`` is the training path (straight-through gradient through the quantizer;
``dt=None`` is the non-spiking network). With the "last" readout it quantizes the last step
only, starting from a random residual ``v`` (the residual the streaming neurons carry into the
last step is spread over ``[0, 1)``). ``simulate`` is the network as the streaming runtime
runs it: every step, float32 layers and the sequential quantizer (the memory in float64, as the
runtime sums it); it is what evaluation, the efficiency measures and the export parity test
use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from eventsp.train.lmu.memory import (
    impulse_response,
    legendre_ab,
    memory_parallel,
    zoh,
)
from eventsp.train.lmu.quantizer import quantize_parallel, quantize_sequential, straight_through

__all__ = ["HybridLMU", "LMUConfig"]


@dataclass(frozen=True)
class LMUConfig:
    """Sizes of a :class:`HybridLMU`; ``theta`` and ``steps`` are in time steps (frames)."""

    input_size: int = 1
    memory_d: int = 1
    order: int = 256
    theta: float = 784.0
    hidden: int = 212
    classes: int = 10
    steps: int = 784
    input_to_hidden: bool = True
    hidden2: int = 0  # > 0: a second quantized layer relu(W_2 h_t + b_2) before the classifier
    hidden3: int = 0  # > 0: a third quantized layer after the second (needs hidden2 > 0)
    readout: Literal["last", "mean"] = "last"
    # > 0: the second layer also reads a Legendre memory (memory2_d channels, order2, theta2
    # steps) of the first layer's output: a stacked LMU (needs hidden2 > 0)
    memory2_d: int = 0
    order2: int = 16
    theta2: float = 32.0

    def __post_init__(self) -> None:
        for name in ("input_size", "memory_d", "order", "hidden", "classes", "steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"LMUConfig.{name} is {value!r}; expected an int >= 1")
        for name in ("hidden2", "hidden3", "memory2_d"):  # 0: absent
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"LMUConfig.{name} is {value!r}; expected an int >= 0")
        for name, why in (
            ("hidden3", "a third layer needs a second one"),
            ("memory2_d", "the second memory feeds the second layer"),
        ):
            if getattr(self, name) and not self.hidden2:
                raise ValueError(
                    f"LMUConfig.{name} is {getattr(self, name)} but hidden2 is 0; {why} (set "
                    "hidden2 > 0)"
                )
        if self.memory2_d and not (
            isinstance(self.order2, int) and self.order2 >= 1 and self.theta2 > 0
        ):
            raise ValueError(
                f"LMUConfig.order2 is {self.order2!r} and theta2 {self.theta2!r}; expected an "
                "int >= 1 and a time > 0 (steps)"
            )
        if not self.theta > 0:
            raise ValueError(f"LMUConfig.theta is {self.theta!r}; expected > 0 (time steps)")
        if self.readout not in ("last", "mean"):
            raise ValueError(f"LMUConfig.readout is {self.readout!r}; expected 'last' or 'mean'")


class HybridLMU(nn.Module):
    """The network of the module docstring. Inputs are ``(batch, T, input_size)`` float32."""

    def __init__(self, config: LMUConfig) -> None:
        super().__init__()
        self.config = c = config
        self._add_memory("", c.order, c.theta)
        self.encoder = nn.Linear(c.input_size, c.memory_d, bias=False)
        nn.init.ones_(self.encoder.weight) if c.input_size == 1 else None
        self.memory_to_hidden = nn.Linear(c.memory_d * c.order, c.hidden)
        nn.init.xavier_normal_(self.memory_to_hidden.weight)
        self.input_to_hidden = nn.Linear(c.input_size, c.hidden, bias=False)
        if not c.input_to_hidden:
            self.input_to_hidden.requires_grad_(False)
            nn.init.zeros_(self.input_to_hidden.weight)
        self.hidden_to_hidden = nn.Linear(c.hidden, c.hidden2) if c.hidden2 else None
        self.encoder2 = self.memory2_to_hidden = None
        if c.memory2_d:
            self._add_memory("2", c.order2, c.theta2)
            self.encoder2 = nn.Linear(c.hidden, c.memory2_d, bias=False)
            self.memory2_to_hidden = nn.Linear(c.memory2_d * c.order2, c.hidden2, bias=False)
            nn.init.xavier_normal_(self.memory2_to_hidden.weight)
        self.hidden_to_hidden3 = nn.Linear(c.hidden2, c.hidden3) if c.hidden3 else None
        self.output = nn.Linear(c.hidden3 or c.hidden2 or c.hidden, c.classes)

    def _add_memory(self, suffix: str, order: int, theta: float) -> None:
        """The buffers of one Legendre memory: ``A{suffix}_d``/``B{suffix}_d`` (ZOH, float32),
        its impulse response ``H{suffix}`` for training, and ``H{suffix}_runtime``: the
        runtime's float32 matrices iterated in float64, the simulation's memory kernel."""
        A_d, B_d = zoh(*legendre_ab(order, theta))
        steps = self.config.steps
        self.register_buffer(f"A{suffix}_d", A_d.float())
        self.register_buffer(f"B{suffix}_d", B_d.float())
        self.register_buffer(f"H{suffix}", impulse_response(A_d, B_d, steps).float())
        A_rt, B_rt = getattr(self, f"A{suffix}_d"), getattr(self, f"B{suffix}_d")
        H_rt = impulse_response(A_rt.double(), B_rt.double(), steps)
        self.register_buffer(f"H{suffix}_runtime", H_rt, persistent=False)

    def _check(self, x: torch.Tensor) -> None:
        c = self.config
        if x.ndim != 3 or x.shape[2] != c.input_size:
            raise ValueError(
                f"input has shape {tuple(x.shape)}; expected (batch, T, {c.input_size})"
            )
        if x.shape[1] > c.steps:
            raise ValueError(
                f"sequence of {x.shape[1]} steps is longer than the {c.steps} the model was "
                "built for; build it with LMUConfig(steps=...) at least that long"
            )

    def _hidden_input_all(self, x: torch.Tensor) -> torch.Tensor:
        """``W_m m_t + W_x x_t + b`` for every step, by FFT: ``(batch, T, hidden)``."""
        c = self.config
        T = x.shape[1]
        u = self.encoder(x)  # (batch, T, D)
        W = self.memory_to_hidden.weight.view(c.hidden, c.memory_d, c.order)
        z = self.memory_to_hidden.bias + self.input_to_hidden(x)
        for j in range(c.memory_d):
            G = self.H[:T] @ W[:, j].T  # (T, hidden)
            z = z + memory_parallel(u[:, :, j], G)
        return z

    def _hidden_input_last(self, x: torch.Tensor) -> torch.Tensor:
        """``W_m m_{T-1} + W_x x_{T-1} + b``: ``(batch, hidden)``."""
        T = x.shape[1]
        u = self.encoder(x)  # (batch, T, D)
        m = torch.einsum("btj,tq->bjq", u.flip(1), self.H[:T])  # sum_k H[k] u_{T-1-k}
        return self.memory_to_hidden(m.flatten(1)) + self.input_to_hidden(x[:, -1])

    def forward(
        self,
        x: torch.Tensor,
        dt: float | None = None,
        *,
        generator: torch.Generator | None = None,
        frames: int | None = None,
    ) -> torch.Tensor:
        """Logits ``(batch, classes)`` for training; ``dt=None`` is the non-spiking network.

        ``frames=K`` returns :meth:`forward_frames` instead (through ``forward``, so that a
        DDP wrapper synchronises its gradients).
        """
        if frames is not None:
            return self.forward_frames(x, dt, frames, generator=generator)
        self._check(x)
        if self.config.readout == "last" and self.encoder2 is not None:
            # the second memory needs the first layer's every step
            return self.forward_frames(x, dt, 1, generator=generator)[:, 0]
        if self.config.readout == "last":
            a = torch.relu(self._hidden_input_last(x))[:, None]
            return self.output(self._layers(a, dt, generator, random_start=True)[:, 0])
        a = torch.relu(self._hidden_input_all(x))
        return self.output(self._layers(a, dt, generator, random_start=False).mean(dim=1))

    def deeper_layers(self) -> list[nn.Linear]:
        """The quantized layers after the first: ``hidden_to_hidden`` [, ``hidden_to_hidden3``]."""
        return [m for m in (self.hidden_to_hidden, self.hidden_to_hidden3) if m is not None]

    def _layers(
        self,
        a: torch.Tensor,
        dt: float | None,
        generator: torch.Generator | None,
        *,
        random_start: bool,
    ) -> torch.Tensor:
        """The quantized layers for training: the first layer's activity ``a (batch, T,
        hidden)`` quantized, then each deeper layer's ReLU quantized in turn (straight-through,
        :meth:`_quantized`); the input of the classifier."""
        a = self._quantized(a, dt, generator, random_start=random_start)
        for k, layer in enumerate(self.deeper_layers()):
            z = layer(a)
            if k == 0 and self.encoder2 is not None:
                z = z + self.memory2_to_hidden(self._memory_all(self.encoder2(a), self.H2))
            a = self._quantized(torch.relu(z), dt, generator, random_start=random_start)
        return a

    @staticmethod
    def _quantized(
        a: torch.Tensor,
        dt: float | None,
        generator: torch.Generator | None,
        *,
        random_start: bool,
    ) -> torch.Tensor:
        """The quantizer over the activities ``a (batch, T, width)`` of any of the quantized
        layers, with a straight-through gradient (``a`` itself when ``dt`` is None); its
        residual starts random (``random_start``, one draw per unit) or at 0."""
        if dt is None:
            return a
        v0 = 0.0
        if random_start:
            v0 = torch.rand((a.shape[0], a.shape[2]), generator=generator, dtype=torch.float64)
        return straight_through(a, quantize_parallel(a, dt, v0, dim=1), dt)

    def _memory_all(self, u: torch.Tensor, H: torch.Tensor | None = None) -> torch.Tensor:
        """Memories ``m_t`` ``(batch, T, D * order)`` of ``u (batch, T, D)`` (``H``: the
        impulse response, the first memory's unless given).

        ``m_t[j, i] = sum_{k<=t} H[k, i] u_{t-k, j}`` as one product with the lower-triangular
        Toeplitz tensor ``(T, T, order)`` of ``H``: cheaper to train than the FFT form when
        ``order`` is small next to ``hidden`` and ``T`` is short.
        """
        H = self.H if H is None else H
        B, T = u.shape[:2]
        lag = torch.arange(T)[:, None] - torch.arange(T)[None, :]  # t - s
        toeplitz = H[lag.clamp(min=0)] * (lag >= 0)[:, :, None]  # (t, s, order)
        return torch.einsum("tsq,bsd->btdq", toeplitz, u).reshape(B, T, -1)

    def forward_frames(
        self,
        x: torch.Tensor,
        dt: float | None = None,
        frames: int = 1,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Logits ``(batch, frames, classes)`` of the last ``frames`` steps, for training.

        Every step is computed as the streaming network runs it: the quantizer starts from a
        random residual at the first step and runs over the whole sequence (straight-through
        gradient), so supervising several frames trains the posteriors a stream sees after a
        word. ``dt=None`` is the non-spiking network.
        """
        self._check(x)
        T = x.shape[1]
        if not isinstance(frames, int) or not 1 <= frames <= T:
            raise ValueError(f"frames is {frames!r}; expected an int in [1, {T}] (the steps)")
        m = self._memory_all(self.encoder(x))
        a = torch.relu(self.memory_to_hidden(m) + self.input_to_hidden(x))
        return self.output(self._layers(a, dt, generator, random_start=True)[:, T - frames :])

    @staticmethod
    def _memory_runtime(u: torch.Tensor, H: torch.Tensor, chunk: int) -> torch.Tensor:
        """The runtime's memories ``(batch, T, D * order)`` float32 of ``u (batch, T, D)``:
        summed in float64 with ``H`` (the runtime's float32 ``A_d``/``B_d`` iterated in
        float64), ``chunk`` sequences at a time, then rounded to float32."""
        u = u.double()
        parts = []
        for i in range(0, len(u), chunk):
            channels = [memory_parallel(u[i : i + chunk, :, j], H) for j in range(u.shape[2])]
            parts.append(torch.cat(channels, dim=2).float())
        if not parts:
            return torch.zeros(0, u.shape[1], u.shape[2] * H.shape[1])
        return torch.cat(parts)

    @torch.no_grad()
    def simulate(
        self, x: torch.Tensor, dt: float | None, *, chunk: int = 16, all_frames: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The streaming network as the runtime runs it, every step: ``(logits, counts)``.

        The memory of the runtime's float32 ``A_d``/``B_d`` is evaluated in float64 (by FFT,
        ``chunk`` sequences at a time) and rounded to float32, like the runtime's float64
        sums; the layers and the quantizer then run step by step in float32.
        ``counts`` ``(batch, T, hidden + hidden2 + hidden3)`` are the quantizers' integer
        outputs ``n_t`` (the activities themselves when ``dt`` is None). ``all_frames=True``
        returns the logits of every step, ``(batch, T, classes)``, instead of the readout.
        """
        self._check(x)
        c = self.config
        x = x.float()
        m = self._memory_runtime(self.encoder(x), self.H_runtime, chunk)
        a = torch.relu(self.memory_to_hidden(m) + self.input_to_hidden(x))
        if dt is None:
            h, counts = a, a
        else:
            counts, _ = quantize_sequential(a, dt, dim=1)
            h = counts / torch.tensor(dt, dtype=torch.float32)
        for k, layer in enumerate(self.deeper_layers()):
            z = layer(h)
            if k == 0 and self.encoder2 is not None:
                m2 = self._memory_runtime(self.encoder2(h), self.H2_runtime, chunk)
                z = z + self.memory2_to_hidden(m2)
            a2 = torch.relu(z)
            if dt is None:
                h, counts2 = a2, a2
            else:
                counts2, _ = quantize_sequential(a2, dt, dim=1)
                h = counts2 / torch.tensor(dt, dtype=torch.float32)
            counts = torch.cat([counts, counts2], dim=2)
        y = self.output(h)
        if all_frames:
            return y, counts
        logits = y[:, -1] if c.readout == "last" else y.mean(dim=1)
        return logits, counts
