"""Cross-layer equalisation of a :class:`~eventsp.train.ptl.network.TandemNet`'s ANN.

ReLU is positively homogeneous, ``relu(β z) = β relu(z)`` for ``β > 0``. Scaling hidden channel
``c`` of layer ``k`` by ``β_c`` (its batch norm's ``γ_c`` and ``β``-shift, or, once folded, its
weight row and bias) and dividing the weights of layer ``k + 1`` that read channel ``c`` by
``β_c`` therefore leaves the ANN's function unchanged (Nagel et al., "Data-Free Quantization
Through Weight Equalization and Bias Correction", ICCV 2019). The spiking network is not
invariant: a spiking layer has ONE threshold θ (its activations' 99.9th percentile) and a
quantised layer ONE weight scale, so the per-channel spread of activation and weight ranges
decides how many spike-count levels and weight levels each channel gets. Modes:

- ``"weights"`` (Nagel et al.): ``β_c = sqrt(r'_c / r_c)`` with ``r_c`` the largest
  ``|weight|`` of channel ``c``'s row in layer ``k`` (batch norm included) and ``r'_c`` that of
  the weights of layer ``k + 1`` reading it; both become ``sqrt(r_c r'_c)``, so one weight scale
  per layer fits every channel better. Repeated over the layers ``sweeps`` times.
- ``"activations"``: ``β_c = (A / a_c) ** strength`` with ``a_c`` channel ``c``'s
  99.9th-percentile ANN activation on calibration images and ``A`` the geometric mean of the
  ``a_c``. With ``strength`` 1 every channel then spans the same range below the layer's one
  threshold and gets as many spike-count levels over ``T`` steps; the weights of the layer
  above that read the channels spread by as much, so ``strength`` < 1 trades spike-count
  levels for weight levels.

Only layers that do not spike yet can be equalised (a threshold is calibrated on the
activations the equalisation changes); apply it to the ANN, before the first ``spike`` stage.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from eventsp.train.ptl.network import TandemLayer, TandemNet

EQUALISE_MODES = ("none", "weights", "activations")

Mode = Literal["none", "weights", "activations"]


def _row_ranges(layer: TandemLayer) -> torch.Tensor:
    """Largest ``|weight|`` per output channel, batch norm (if not folded) included."""
    w = (layer.syn.weight.detach() * layer.mask).flatten(1).abs().amax(1)
    if layer.bn is not None and not bool(layer.folded):
        bn = layer.bn
        w = w * (bn.weight.detach().abs() / torch.sqrt(bn.running_var + bn.eps))
    return w


def _input_channels(layer: TandemLayer, channels: int) -> torch.Tensor:
    """For each weight of ``layer``, the input channel (of ``channels``) it reads."""
    w = layer.syn.weight
    if layer.spec.kind == "conv":
        out, per_group = w.shape[0], w.shape[1]
        out_per_group = out // layer.spec.groups
        group = torch.arange(out).div(out_per_group, rounding_mode="floor")
        ch = group[:, None] * per_group + torch.arange(per_group)[None, :]
        return ch[:, :, None, None].expand_as(w)
    per_channel = w.shape[1] // channels  # dense after a conv: (C, H, W) flattened
    return torch.arange(w.shape[1]).div(per_channel, rounding_mode="floor").expand_as(w)


def _column_ranges(layer: TandemLayer, channels: int) -> torch.Tensor:
    """Largest ``|weight|`` of ``layer`` reading each input channel."""
    w = (layer.syn.weight.detach() * layer.mask).abs().flatten()
    ch = _input_channels(layer, channels).flatten()
    return torch.zeros(channels, dtype=w.dtype).scatter_reduce(0, ch, w, "amax")


@torch.no_grad()
def scale_channels(model: TandemNet, k: int, beta: torch.Tensor) -> None:
    """Scale layer ``k``'s output channels by ``beta`` (> 0) and divide layer ``k + 1``'s
    weights reading them by ``beta``: the ANN's function is unchanged."""
    hidden = len(model.layers) - 1
    if not 0 <= k < hidden:
        raise ValueError(
            f"layer {k} is not a hidden layer (0..{hidden - 1}); the readout's outputs are "
            "the logits and cannot be scaled"
        )
    layer, nxt = model.layers[k], model.layers[k + 1]
    if bool(layer.spiking) or bool(nxt.spiking):
        raise ValueError(
            f"layer {k} or {k + 1} spikes already; equalise the ANN before converting a layer"
        )
    beta = beta.to(layer.syn.weight.dtype)
    if beta.shape != (layer.spec.out,) or not bool((beta > 0).all()):
        raise ValueError(
            f"beta has shape {tuple(beta.shape)} and min {float(beta.min()):.3g}; expected "
            f"{layer.spec.out} positive factors, one per output channel of layer {k}"
        )
    if layer.bn is not None and not bool(layer.folded):
        layer.bn.weight.mul_(beta)
        layer.bn.bias.mul_(beta)
    else:
        layer.syn.weight.mul_(beta.view(-1, *(1,) * (layer.syn.weight.dim() - 1)))
        layer.syn.bias.mul_(beta)
    nxt.syn.weight.div_(beta[_input_channels(nxt, layer.spec.out)])


@torch.no_grad()
def channel_activation_ranges(
    model: TandemNet, k: int, x: np.ndarray, percentile: float = 99.9
) -> torch.Tensor:
    """Per output channel of layer ``k``: the ``percentile`` of its positive ANN activations
    on uint8 images ``x`` (0 for a channel that never fires)."""
    model.eval()
    acts = []
    for i in range(0, len(x), 250):
        a = model(torch.from_numpy(x[i : i + 250]).to(torch.float32) / 255.0, collect=k)
        acts.append(a.transpose(0, 1).flatten(1))
    a = torch.cat(acts, 1)
    out = torch.zeros(a.shape[0])
    for c in range(a.shape[0]):
        pos = a[c][a[c] > 0]
        if pos.numel():
            out[c] = torch.quantile(pos[:4_000_000], percentile / 100.0)
    return out


def equalise(
    model: TandemNet,
    mode: Mode,
    x: np.ndarray | None = None,
    strength: float = 1.0,
    sweeps: int = 4,
) -> list[torch.Tensor]:
    """Equalise every hidden layer of ``model`` (an ANN) in place; returns per hidden layer
    the factors applied. ``x``: calibration images (uint8) for ``activations``."""
    if mode not in EQUALISE_MODES:
        raise ValueError(f"equalise mode {mode!r} is unknown; expected one of {EQUALISE_MODES}")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"equalise strength is {strength}; expected a number in (0, 1]")
    hidden = len(model.layers) - 1
    total = [torch.ones(model.layers[k].spec.out) for k in range(hidden)]
    if mode == "none":
        return total
    if mode == "activations":
        if x is None or len(x) == 0:
            raise ValueError("equalise mode 'activations' needs calibration images x")
        for k in range(hidden):
            a = channel_activation_ranges(model, k, x)
            alive = a > 0
            if not bool(alive.any()):
                continue
            target = torch.exp(torch.log(a[alive]).mean())
            ratio = (target / a.clamp_min(1e-12)) ** strength
            beta = torch.where(alive, ratio, torch.ones_like(a))
            scale_channels(model, k, beta)
            total[k] *= beta
        return total
    for _ in range(sweeps):
        for k in range(hidden):
            r = _row_ranges(model.layers[k])
            r_next = _column_ranges(model.layers[k + 1], model.layers[k].spec.out)
            ok = (r > 0) & (r_next > 0)
            beta = torch.where(ok, torch.sqrt(r_next / r.clamp_min(1e-12)), torch.ones_like(r))
            scale_channels(model, k, beta)
            total[k] *= beta
    return total
