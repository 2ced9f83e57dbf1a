"""The spike-count network of progressive tandem learning (PTL, Wu et al., TPAMI 2021).

A :class:`TandemNet` is a stack of synaptic layers (conv or dense, with batch norm until it is
folded), each followed by an activation that is either an ANN ReLU or, once the layer is
converted, a spiking layer of integrate-and-fire neurons simulated for ``T`` time steps::

    I_t = W s_{t-1 layer below} + b        (the bias is added at every step: b spread over T)
    V_t = V_{t-1} + I_t ;  s_t = V_t >= θ ;  V_t -= θ s_t      (reset by subtraction)

A spiking layer passes on its spike train (to the next spiking layer) and its spike COUNT as
the rate ``θ c / T`` (to the next ANN layer). The first layer gets the image as a constant
input current at every step. The last layer is the non-spiking readout: the sum over time of
its input current, i.e. ``W x̄ + b`` with ``x̄`` the mean input rate.

Tandem learning: the forward pass of a converted, still trainable layer runs the spiking
layer, the backward pass goes through the ANN activation (straight-through): the layer's
output is ``a + (θ c / T - a).detach()`` with ``a = relu(W x̄ + b)``.

Hardware constraints, per layer: ``mask`` keeps at most ``fan_in`` incoming weights per output
neuron (largest magnitudes), and ``bits`` > 0 quantises weights to signed ``bits``-bit integers
with one scale per layer, ``s = max|W| / (2**(bits-1) - 1)`` (straight-through gradient).

Fixed point (``bits`` > 0): the membrane is an integer in units ``u = s * a_in / 2**k``,
where ``a_in`` is the real amplitude of one input unit (``1/255`` for 8-bit pixels, the
effective threshold θ' of the layer below for spikes) and ``k`` is the layer's accumulator
shift (``acc_shift``, the runtime's field of the same name): the integer weighted sum is
shifted left by ``k`` bits, so the membrane has ``k`` fractional bits below one weight step.
Bias and threshold are rounded to that unit, ``b_int = round(b / u)``,
``θ_int = max(1, round(θ / u))``, and the effective threshold is ``θ' = θ_int u``. All spiking
arithmetic is then on integers held exactly in float32 (sums stay below 2**24), so
:meth:`TandemNet.simulate` is bit-exact with an integer runtime.

Choosing ``k`` (:func:`auto_acc_shift`, at each ``bits`` stage): the smallest shift at which
rounding moves the threshold by at most 1% (``θ / u >= 50``; for the readout, its largest bias
``|b| / u >= 50``), capped so that the worst-case membrane over ``T`` steps stays below
``2**23`` (and at 16). With 8-bit weights the weight step is fine already and ``k`` is 0 or 1;
with 4 bits a spiking layer whose threshold is a few weight steps needs more (2-6 in the runs
of ``docs/ptl.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch name)
from torch import nn

PIXEL_SCALE = 1.0 / 255.0


@dataclass(frozen=True)
class LayerSpec:
    """One synaptic layer: ``conv`` (square kernel) or ``dense``, with ``out`` channels/units.

    ``groups`` splits a conv's input and output channels into that many groups (as in
    ``torch.nn.Conv2d``); ``groups == out == in channels`` is a depthwise conv."""

    kind: Literal["conv", "dense"]
    out: int
    kernel: int = 3
    stride: int = 1
    padding: int = 0
    groups: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("conv", "dense"):
            raise ValueError(f"layer kind {self.kind!r} is unknown; expected 'conv' or 'dense'")
        if min(self.out, self.kernel, self.stride) < 1 or self.padding < 0:
            raise ValueError(f"layer {self} needs out, kernel, stride >= 1 and padding >= 0")
        if self.groups < 1 or self.out % self.groups:
            raise ValueError(
                f"layer {self}: groups {self.groups} must be >= 1 and divide out={self.out}"
            )
        if self.kind == "dense" and self.groups != 1:
            raise ValueError(f"layer {self}: a dense layer has groups=1; use a conv for groups")


ARCHS: dict[str, tuple[LayerSpec, ...]] = {
    # 28x28 -> 28x28x16 -> 14x14x32 -> 7x7x64 -> 10 (conv strides instead of pooling).
    "mnist": (
        LayerSpec("conv", 16, 5, 1, 2),
        LayerSpec("conv", 32, 3, 2, 1),
        LayerSpec("conv", 64, 3, 2, 1),
        LayerSpec("dense", 10),
    ),
    # The bundled model: twice the first layer's channels of "mnist" (trained with shifts).
    # 28x28 -> 28x28x32 -> 14x14x32 -> 7x7x64 -> 10.
    "mnist32": (
        LayerSpec("conv", 32, 5, 1, 2),
        LayerSpec("conv", 32, 3, 2, 1),
        LayerSpec("conv", 64, 3, 2, 1),
        LayerSpec("dense", 10),
    ),
    # Fan-in <= 64 everywhere (for --fan-in 64): the two 3x3 convs are pruned from 288 inputs,
    # a depthwise 7x7 conv (fan-in 49) is a learned spiking global pool, the readout sees 64.
    # 28x28 -> 28x28x32 -> 14x14x32 -> 7x7x64 -> 1x1x64 -> 10.
    "mnist32-f64": (
        LayerSpec("conv", 32, 5, 1, 2),
        LayerSpec("conv", 32, 3, 2, 1),
        LayerSpec("conv", 64, 3, 2, 1),
        LayerSpec("conv", 64, 7, 1, 0, groups=64),
        LayerSpec("dense", 10),
    ),
    # Spiking autoencoder (regression): 28x28 -> 14x14x16 -> 128 -> 784 pixels.
    "mnist-ae": (
        LayerSpec("conv", 16, 3, 2, 1),
        LayerSpec("dense", 128),
        LayerSpec("dense", 784),
    ),
    # A tiny network for tests.
    "tiny": (LayerSpec("conv", 4, 3, 2, 1), LayerSpec("dense", 10)),
    # 32x32x3 -> 32x32x32 -> 16x16x64 -> 16x16x64 -> 8x8x128 -> 4x4x128 -> 10.
    "cifar": (
        LayerSpec("conv", 32, 3, 1, 1),
        LayerSpec("conv", 64, 3, 2, 1),
        LayerSpec("conv", 64, 3, 1, 1),
        LayerSpec("conv", 128, 3, 2, 1),
        LayerSpec("conv", 128, 3, 2, 1),
        LayerSpec("dense", 10),
    ),
}


MAX_ACC_SHIFT = 16


class FixedParams(NamedTuple):
    """A layer's fixed-point form: integer weight/bias/threshold in membrane units ``unit``."""

    weight: torch.Tensor  # integer values (float tensor), masked, times 2**shift
    bias: torch.Tensor  # integer values
    threshold: float  # integer value (0 for the readout)
    scale: float  # weight scale s
    unit: float  # membrane unit u = s * a_in / 2**shift
    out_amplitude: float  # θ' = θ_int * u: real value of one output spike
    shift: int = 0  # accumulator shift: weight == int_weight * 2**shift


def auto_acc_shift(
    reference: float, unit: float, fan_in: int, bits: int, in_max: int, T: int
) -> int:
    """The smallest shift ``k`` with ``reference / (unit / 2**k) >= 50`` (rounding to the unit
    moves ``reference`` by <= 1%), capped so that ``fan_in * 2**(bits-1) * in_max * 2**k * T``
    stays below ``2**23`` (float32-exact sums with a 2x margin) and at ``MAX_ACC_SHIFT``."""
    peak = max(1, fan_in) * 2 ** (bits - 1) * in_max * T
    cap = 0
    while cap < MAX_ACC_SHIFT and peak * 2 ** (cap + 1) < 2**23:
        cap += 1
    if reference <= 0 or unit <= 0:
        return 0
    k = 0
    while k < cap and reference / (unit / 2**k) < 50:
        k += 1
    return k


class TandemLayer(nn.Module):
    """A synaptic layer with batch norm (until folded), threshold, fan-in mask and bit width."""

    def __init__(self, spec: LayerSpec, in_shape: tuple[int, ...], readout: bool) -> None:
        super().__init__()
        self.spec = spec
        self.readout = readout
        if spec.kind == "conv":
            c = in_shape[0]
            if c % spec.groups:
                raise ValueError(
                    f"layer {spec}: groups {spec.groups} must divide its {c} input channels"
                )
            self.syn = nn.Conv2d(
                c, spec.out, spec.kernel, spec.stride, spec.padding, groups=spec.groups
            )
            self.bn = None if readout else nn.BatchNorm2d(spec.out)
        else:
            self.syn = nn.Linear(math.prod(in_shape), spec.out)
            self.bn = None if readout else nn.BatchNorm1d(spec.out)
        self.register_buffer("threshold", torch.zeros(()))
        self.register_buffer("spiking", torch.zeros((), dtype=torch.bool))
        self.register_buffer("folded", torch.zeros((), dtype=torch.bool))
        self.register_buffer("frozen", torch.zeros((), dtype=torch.bool))
        self.register_buffer("bits", torch.zeros((), dtype=torch.int64))
        self.register_buffer("mask", torch.ones_like(self.syn.weight))
        self.register_buffer("acc_shift", torch.zeros((), dtype=torch.int64))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before acc_shift existed hold no such buffer: shift 0.
        state_dict.setdefault(prefix + "acc_shift", torch.zeros((), dtype=torch.int64))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- weights ---------------------------------------------------------------------------
    def weight_scale(self) -> float:
        """Per-layer quantisation step ``max|W| / (2**(bits-1) - 1)`` (masked weights)."""
        qmax = 2 ** (int(self.bits) - 1) - 1
        wmax = float((self.syn.weight.detach() * self.mask).abs().max())
        return max(wmax, 1e-12) / qmax

    def int_weight(self) -> torch.Tensor:
        """Integer weights (as float) for ``bits`` > 0; masked."""
        q = 2 ** (int(self.bits) - 1)
        w = self.syn.weight.detach() * self.mask
        return torch.clamp(torch.round(w / self.weight_scale()), -q, q - 1)

    def real_weight(self) -> torch.Tensor:
        """Weight used in the ANN path: masked, fake-quantised with a straight-through grad."""
        w = self.syn.weight * self.mask
        if int(self.bits) > 0:
            wq = self.int_weight() * self.weight_scale()
            w = w + (wq - w).detach()
        return w

    def fixed_params(self, in_amplitude: float) -> FixedParams:
        """The integer form of this layer for inputs of real amplitude ``in_amplitude``."""
        if int(self.bits) <= 0:
            raise ValueError("fixed_params needs a quantised layer (bits > 0)")
        s, shift = self.weight_scale(), int(self.acc_shift)
        unit = s * in_amplitude / 2**shift
        weight = self.int_weight() * 2**shift
        bias = torch.round(self.syn.bias.detach() / unit)
        if self.readout:
            return FixedParams(weight, bias, 0.0, s, unit, 0.0, shift)
        thr = max(1.0, round(float(self.threshold) / unit))
        return FixedParams(weight, bias, thr, s, unit, thr * unit, shift)

    def choose_acc_shift(self, in_amplitude: float, T: int, first: bool) -> int:
        """:func:`auto_acc_shift` for this quantised layer with inputs of ``in_amplitude``."""
        unit = self.weight_scale() * in_amplitude
        if self.readout:
            reference = float(self.syn.bias.detach().abs().max())
        else:
            reference = float(self.threshold)
        in_max = 255 if first else 1  # pixels, or one spike
        return auto_acc_shift(reference, unit, self.fan_in(), int(self.bits), in_max, T)

    def synapse(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        if self.spec.kind == "conv":
            return F.conv2d(
                x, weight, bias, self.spec.stride, self.spec.padding, groups=self.spec.groups
            )
        return F.linear(x.flatten(1), weight, bias)

    @torch.no_grad()
    def fold_batch_norm(self) -> None:
        """Fold the running-statistics batch norm into the weights and bias (once)."""
        if self.bn is None or bool(self.folded):
            return
        bn = self.bn
        g = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shape = (-1,) + (1,) * (self.syn.weight.dim() - 1)
        self.syn.weight.mul_(g.view(shape))
        self.syn.bias.copy_((self.syn.bias - bn.running_mean) * g + bn.bias)
        self.folded.fill_(True)

    def fan_in(self) -> int:
        """The most unpruned incoming weights of any of this layer's neurons."""
        return int((self.mask.flatten(1) != 0).sum(1).max())

    def set_fan_in(self, fan_in: int) -> None:
        """Keep the ``fan_in`` largest-magnitude incoming weights of each output neuron."""
        w = (self.syn.weight.detach() * self.mask).flatten(1)
        if fan_in < 1:
            raise ValueError(f"fan_in is {fan_in}; expected an int >= 1")
        if fan_in >= w.shape[1]:
            return
        keep = w.abs().topk(fan_in, dim=1).indices
        mask = torch.zeros_like(w).scatter_(1, keep, 1.0)
        self.mask.copy_(mask.view_as(self.mask))
        with torch.no_grad():
            self.syn.weight.mul_(self.mask)

    def ann(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activation of the ANN path (``x`` is the mean input rate)."""
        z = self.synapse(x, self.real_weight(), self.syn.bias)
        if self.bn is not None and not bool(self.folded):
            z = self.bn(z)
        return z


class SpikeRecord(NamedTuple):
    """What :meth:`TandemNet.simulate` returns: outputs and per-layer spike counts."""

    logits: torch.Tensor  # (B, classes): sum over T of the readout current (fixed: integers)
    counts: list[torch.Tensor]  # per spiking layer, (B, *shape) spikes per neuron over T
    synops: torch.Tensor  # (B,) spike-driven synaptic operations (input layer excluded)
    input_macs: float  # dense multiply-accumulates of the analog input layer, per image
    output_scale: float  # logits * output_scale = the readout's mean real value per step


def if_neurons(current: torch.Tensor, threshold: float, T: int, constant: bool) -> torch.Tensor:
    """IF with reset by subtraction over ``T`` steps. ``current`` is ``(T, *shape)``, or
    ``shape`` when ``constant`` (the same input at every step). Returns spikes ``(T, *shape)``."""
    const = constant
    first = current if const else current[0]
    v = torch.zeros_like(first)
    out = torch.empty((T, *first.shape), dtype=first.dtype, device=first.device)
    for t in range(T):
        v = v + (current if const else current[t])
        s = (v >= threshold).to(v.dtype)
        v = v - s * threshold
        out[t] = s
    return out


class TandemNet(nn.Module):
    """Layers of :class:`TandemLayer`; ``forward`` is the tandem (training) pass."""

    def __init__(self, specs: Sequence[LayerSpec], in_shape: tuple[int, int, int], T: int):
        super().__init__()
        if T < 1:
            raise ValueError(f"T is {T}; expected a number of time steps >= 1")
        if not specs or specs[-1].kind != "dense":
            raise ValueError("the last layer must be a dense readout")
        self.T = int(T)
        self.in_shape = tuple(in_shape)
        layers, shape = [], tuple(in_shape)
        for i, spec in enumerate(specs):
            layer = TandemLayer(spec, shape, readout=i == len(specs) - 1)
            layers.append(layer)
            with torch.no_grad():
                shape = tuple(
                    layer.syn(
                        torch.zeros(1, *shape).flatten(1)
                        if spec.kind == "dense"
                        else torch.zeros(1, *shape)
                    ).shape[1:]
                )
        self.layers = nn.ModuleList(layers)
        self.specs = tuple(specs)
        self.dropout = 0.0  # on the readout's input in training mode only (not in simulate)

    def forward(self, x: torch.Tensor, *, collect: int | None = None):
        """Tandem pass on images ``x`` (B, C, H, W) in [0, 1]; returns logits (B, classes).

        With ``collect=k`` returns layer k's ANN activation ``relu(z)`` instead (calibration).
        """
        rate, train, amp = x, None, PIXEL_SCALE
        for k, layer in enumerate(self.layers):
            fixed = int(layer.bits) > 0
            if layer.readout:
                if self.training and self.dropout > 0.0:
                    rate = F.dropout(rate, self.dropout, training=True)
                return layer.ann(rate)
            spiking = bool(layer.spiking)
            need_ann = collect == k or not spiking or not bool(layer.frozen)
            a = torch.relu(layer.ann(rate)) if need_ann else None
            if collect == k:
                return a
            if not spiking:
                rate, train = a, None
                continue
            with torch.no_grad():
                spikes, amp = self._spike_layer(
                    layer, x if train is None else train, train is None, amp, fixed
                )
            out_rate = spikes.mean(0) * amp
            rate = out_rate if a is None else a + (out_rate - a).detach()
            train = spikes
        raise RuntimeError("unreachable: the network has no readout layer")

    def _spike_layer(
        self, layer: TandemLayer, inp: torch.Tensor, analog: bool, amp: float, fixed: bool
    ) -> tuple[torch.Tensor, float]:
        """Spike train of a converted layer and the real amplitude of its spikes."""
        T = self.T
        if fixed:
            p = layer.fixed_params(amp)
            w, b, thr, out_amp = p.weight, p.bias, p.threshold, p.out_amplitude
            if analog:
                inp = torch.round(inp / PIXEL_SCALE)
        else:
            w = layer.syn.weight.detach() * layer.mask
            b, thr = layer.syn.bias.detach(), float(layer.threshold)
            out_amp = thr
            if not analog:
                inp = inp * amp
        if analog:
            current = layer.synapse(inp, w, b)
        else:
            cur = layer.synapse(inp.flatten(0, 1), w, b)
            current = cur.view(T, inp.shape[1], *cur.shape[1:])
        return if_neurons(current, thr, T, constant=analog), out_amp

    def input_amplitude(self, k: int) -> float:
        """The real amplitude of one input unit of layer ``k`` (pixels: 1/255; spikes: the
        effective threshold θ' of layer ``k - 1``)."""
        amp = PIXEL_SCALE
        for layer in self.layers[:k]:
            if int(layer.bits) > 0:
                amp = layer.fixed_params(amp).out_amplitude
            else:
                amp = float(layer.threshold)
        return amp

    @torch.no_grad()
    def set_acc_shift(self, k: int, shift: int | None = None) -> int:
        """Set layer ``k``'s accumulator shift (``None``: :meth:`TandemLayer.choose_acc_shift`)."""
        layer = self.layers[k]
        if shift is None:
            shift = layer.choose_acc_shift(self.input_amplitude(k), self.T, first=k == 0)
        if int(shift) != shift or not 0 <= shift <= MAX_ACC_SHIFT:
            raise ValueError(f"acc_shift is {shift!r}; expected an int in 0..{MAX_ACC_SHIFT}")
        layer.acc_shift.fill_(int(shift))
        return int(shift)

    @torch.no_grad()
    def simulate(self, x: torch.Tensor) -> SpikeRecord:
        """The fully spiking network (every layer but the readout converted) on images ``x``.

        Fixed-point layers run on integers exactly; the readout's logits are the sum over T
        of its integer currents (fixed) or real currents (float).
        """
        train, amp, counts = None, PIXEL_SCALE, []
        synops = torch.zeros(x.shape[0], dtype=torch.float64)
        input_macs = 0.0
        for k, layer in enumerate(self.layers):
            fixed = int(layer.bits) > 0
            if train is not None:
                nz = (layer.syn.weight.detach() * layer.mask != 0).to(x.dtype)
                fan = layer.synapse(train.sum(0), nz, None)
                synops += fan.flatten(1).sum(1).double()
            elif k == 0:
                nz = float((layer.syn.weight * layer.mask != 0).sum())
                out_numel = math.prod(layer.synapse(x[:1], layer.syn.weight, None).shape[1:])
                per_out = nz / layer.spec.out
                input_macs = per_out * out_numel * self.T
            if layer.readout:
                if fixed:
                    p = layer.fixed_params(amp)
                    logits = layer.synapse(train.sum(0), p.weight, None) + self.T * p.bias
                    scale = p.unit / self.T
                else:
                    scale = 1.0 / self.T
                    w = layer.syn.weight * layer.mask
                    logits = layer.synapse(train.sum(0) * amp, w, None) + self.T * layer.syn.bias
                return SpikeRecord(logits, counts, synops, input_macs, scale)
            if not bool(layer.spiking):
                raise ValueError(f"layer {k} is not converted yet; simulate needs a full SNN")
            train, amp = self._spike_layer(
                layer, x if train is None else train, train is None, amp, fixed
            )
            counts.append(train.sum(0))
        raise RuntimeError("unreachable: the network has no readout layer")


def build(arch: str, in_shape: tuple[int, int, int], T: int, n_classes: int = 10) -> TandemNet:
    """A :class:`TandemNet` of a named architecture (``ARCHS``) for images ``in_shape``."""
    if arch not in ARCHS:
        raise ValueError(f"architecture {arch!r} is unknown; choose one of {sorted(ARCHS)}")
    specs = list(ARCHS[arch])
    if not arch.endswith("-ae"):  # classifiers: one output per class
        specs[-1] = LayerSpec("dense", n_classes)
    return TandemNet(specs, in_shape, T)
