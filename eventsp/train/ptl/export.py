"""Export a trained :class:`~eventsp.train.ptl.network.TandemNet` to the runtime's graph.

The graph is a chain ``Input -> [Conv2d|Dense -> IF]* -> (Flatten) -> Dense -> Readout(sum)
-> Output``. The input frame is the image's raw pixel values 0..255 (float32), repeated for
``T`` frames; the class is the argmax of the last frame's output (the readout's sum).

Quantised layers are written in fixed-point form in their integer membrane units: integer
weights (``weight_bits`` bits, int8) with ``weight_scale = 1`` and the layer's ``acc_shift``
``k``, a bias ``b_int / 2**k`` and an IF threshold ``θ_int / 2**k`` (the runtime's
accumulator unit is ``2**-k`` here, so it rounds them back to exactly ``b_int`` and
``θ_int``). The per-layer real scale ``u`` (see ``network``) divides out because an IF
neuron's output spike does not depend on the units of its membrane, so it is kept only as
metadata (``layer_units``, with ``acc_shifts``). Every quantity the runtime sees is then an
integer (times ``2**-k``) and every sum stays below 2**24: the runtime computes exactly what
:meth:`TandemNet.simulate` computes, in its float mode as well as in a fixed-point mode.
Float layers (``bits == 0``) are written with their real weights, the input amplitude folded
in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from eventsp.model import graph as g
from eventsp.model.format import save_model
from eventsp.train.ptl.network import PIXEL_SCALE, TandemNet

# Largest |membrane| or readout sum for which float32 integer arithmetic stays exact.
EXACT_LIMIT = 2**24


def to_graph(model: TandemNet) -> tuple[g.Graph, dict[str, Any]]:
    """The runtime graph of a fully converted ``model`` and facts for the metadata."""
    nodes: list[tuple[str, g.Node]] = [("input", g.Input(shape=model.in_shape))]
    amp, units, thresholds, bits, shifts = PIXEL_SCALE, [], [], [], []
    flat = False
    for k, layer in enumerate(model.layers):
        if not layer.readout and not bool(layer.spiking):
            raise ValueError(
                f"layer {k} is not converted to spikes yet; export needs a fully trained PTL "
                "network (run every stage of the schedule)"
            )
        if layer.spec.kind == "dense" and not flat:
            nodes.append(("flatten", g.Flatten()))
            flat = True
        n_bits = int(layer.bits)
        if n_bits > 0:
            p = layer.fixed_params(amp)
            step = 2.0**p.shift
            _check_exact(k, p.weight.numpy(), p.bias.numpy(), p.threshold, model.T, k == 0)
            weight = (p.weight.numpy().astype(np.float64) / step).astype(np.int8)
            bias = (p.bias.numpy().astype(np.float64) / step).astype(np.float32)
            quant = {"weight_bits": n_bits, "weight_scale": 1.0, "acc_shift": p.shift}
            thr, units_k, out_amp = p.threshold / step, p.unit, p.out_amplitude
            shifts.append(p.shift)
        else:
            w = (layer.syn.weight.detach() * layer.mask).numpy().astype(np.float64)
            weight = (w * amp).astype(np.float32)  # amp: 1/255 for pixels, θ for spikes
            bias = layer.syn.bias.detach().numpy().astype(np.float32)
            quant = {}
            thr, units_k, out_amp = float(layer.threshold), 1.0, float(layer.threshold)
            shifts.append(0)
        if layer.spec.kind == "conv":
            syn = g.Conv2d(
                weight=weight,
                bias=bias,
                stride=layer.spec.stride,
                padding=layer.spec.padding,
                groups=layer.spec.groups,
                **quant,
            )
        else:
            syn = g.Dense(weight=weight, bias=bias, **quant)
        nodes.append((f"syn{k}", syn))
        units.append(units_k)
        bits.append(n_bits)
        if layer.readout:
            n_out = weight.shape[0]
            nodes += [("readout", g.Readout(mode="sum")), ("output", g.Output(shape=(n_out,)))]
            break
        nodes.append((f"if{k}", g.IF(threshold=float(thr))))
        thresholds.append(float(thr))
        amp = out_amp
    facts = {
        "layer_units": units,
        "layer_bits": bits,
        "acc_shifts": shifts,
        "thresholds": thresholds,
        "fan_in": [layer.fan_in() for layer in model.layers],
    }
    return g.Graph.chain(nodes), facts


def _check_exact(
    k: int, weight: np.ndarray, bias: np.ndarray, thr: float, T: int, first: bool
) -> None:
    # weight: the effective integer weight (times 2**acc_shift), bias and thr integers.
    fan_in = np.abs(weight.reshape(weight.shape[0], -1).astype(np.int64)).sum(1).max()
    peak = fan_in * (255 if first else 1) + np.abs(bias).max() + thr
    if peak * T >= EXACT_LIMIT:
        raise ValueError(
            f"layer {k}: membrane sums may reach {peak * T:.0f} >= 2**24, where float32 "
            "stops being exact; use fewer weight bits or a smaller T"
        )


def export_model(model: TandemNet, path: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    """Write ``model`` as an ``.esp`` file; ``metadata`` is merged over the defaults."""
    graph, facts = to_graph(model)
    meta = {
        "task": "classify-images",
        "T": model.T,
        "input": {
            "shape": list(model.in_shape),
            "encoding": "pixels 0..255 as float32, "
            "the same frame every step (direct input current)",
        },
        "decode": "argmax of the last output frame (readout sum over T)",
        "trainer": "eventsp.train.ptl (progressive tandem learning)",
        **facts,
        **metadata,
    }
    path = Path(path)
    save_model(path, graph, meta)
    return path
