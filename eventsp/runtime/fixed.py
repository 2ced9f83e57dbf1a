"""Fixed-point execution: integer weights, integer membranes, exactly specified rounding.

Every activation is an integer tensor ``x`` with a real scale ``s`` (its value is ``x * s``);
all integer arithmetic is exact in int64. The only rounding rule is
``rnd(v) = floor(v + 0.5)`` (round half up), evaluated in float64. A trainer reproduces this
mode bit for bit by applying the same formulas to int64 (or float64 holding integers) tensors.

Input
    With ``Input.quant_bits = B`` and ``quant_scale = s``:
    ``x = clip(rnd(frame / s), -2**(B-1), 2**(B-1) - 1)``, scale ``s``. Without them the frame
    holds integers already (spikes, counts): ``x = rnd(frame)``, scale 1.
Dense, Conv2d, CausalConv1d (weights must be quantised: ``weight_bits``/``weight_scale``)
    ``acc = (sum(q_w * x) << k) + b`` in int64, with ``k = acc_shift`` (0..16, default 0),
    ``b = rnd(bias / s_out)`` added every frame and ``s_out = weight_scale * s_in / 2**k``.
    Zero padding, stride, groups and dilation as in float mode. The shift gives the
    accumulator (and so the membrane downstream) ``k`` fractional bits below one weight step
    times one input unit: the weights stay 2..8-bit integers, the shift is what a chip or MCU
    does with a barrel shifter, and every later rule (IF/LIF threshold ``rnd(th / s)``,
    MultiSpike unit, pooling, Add scale check, Output) simply sees the finer scale ``s_out``.
    Use it when ``th / s_out`` or ``bias / s_out`` would round coarsely (low-bit weights: at 4
    bits a threshold of a few weight steps rounds by 10% or more). Float mode ignores
    ``acc_shift`` (its weights are ``q_w * weight_scale``). With ``k = 0`` this is exactly the
    rule of models written before the field existed.
AvgPool2d / SumPool2d
    The integer window sum; the scale is ``s_in / (kh*kw)`` for AvgPool2d, ``s_in`` for SumPool2d.
Flatten, Identity
    Unchanged (same integers, same scale). ReLU: ``max(x, 0)``, same scale.
Add
    ``sum of the inputs``; every input must have the same scale (else the graph is refused).
IF (threshold ``th``, input scale ``s``)
    ``T = max(1, rnd(th / s))``; ``v += x; spike = v >= T; v -= spike * T``. Output 0/1, scale 1.
LIF (decay ``d``, threshold ``th``)
    ``D = rnd(d * 2**15)``, ``T = max(1, rnd(th / s))``;
    ``v = ((v * D + 2**14) >> 15) + x`` (arithmetic shift: floor division by 2**15);
    ``spike = v >= T; v = 0 where spike``. Output 0/1, scale 1.
MultiSpike (``dt``)
    ``U = max(1, rnd(1 / (s * dt)))`` (one unit of the membrane); ``v += x;
    n = floor_div(v, U); v -= n * U``. Output ``n``, scale ``1 / dt``.
Readout
    ``acc += x`` (int64). ``sum``: output ``acc``; ``last``: ``x``; ``mean``: ``acc``, and the
    Output divides by the frame count (a mean Readout must feed the Output directly).
Output
    ``float32(x * s)`` (divided by the frames so far after a mean Readout).
LMUMemory
    Not available in fixed-point mode.

Membranes and accumulators live in ``NetworkState.values`` as int64; ``acts`` holds every
node's last integer output. Fixed-point mode runs on numpy (vectorised over streams), not on the
jitted interpreter: it is the bit-exact reference form, not the fast path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from eventsp.kernels import layout as lay
from eventsp.model import graph as g
from eventsp.runtime.quant import round_half_up

__all__ = ["FixedProgram"]


@dataclass(eq=False)
class _Op:
    name: str
    node: g.Node
    preds: list[str]
    shape: tuple[int, ...]
    scale: float
    consts: dict[str, object] = field(default_factory=dict)
    state: int = -1  # offset in values
    state_size: int = 0
    act: int = 0  # offset in acts


def _rnd_int(v: float | np.ndarray) -> np.ndarray:
    return round_half_up(v).astype(np.int64)


class FixedProgram:
    """A graph compiled for fixed-point execution (see the module docstring)."""

    def __init__(self, graph: g.Graph) -> None:
        self.graph = graph
        shapes = graph.shapes()
        ops: dict[str, _Op] = {}
        n_values = n_acts = 0
        for name in graph.order():
            node = graph.nodes[name]
            preds = graph.predecessors(name)
            s_in = ops[preds[0]].scale if preds else 1.0
            op = _Op(name, node, preds, shapes[name], s_in, act=n_acts)
            n_acts += math.prod(shapes[name])
            self._prepare(op, ops, shapes)
            if op.state_size:
                op.state = n_values
                n_values += op.state_size
            ops[name] = op
        self.ops = [ops[n] for n in graph.order()]
        self.n_values = max(n_values, 1)
        self.n_acts = max(n_acts, 1)
        self.op_names = ("", *(op.name for op in self.ops))
        self.op_kinds = ("header", *(op.node.type for op in self.ops))
        self.op_sizes = (0, *(math.prod(op.shape) for op in self.ops))

    def _prepare(self, op: _Op, ops: dict[str, _Op], shapes) -> None:
        node, size = op.node, math.prod(op.shape)
        if isinstance(node, g.Input):
            op.scale = node.quant_scale if node.quant_bits is not None else 1.0
        elif isinstance(node, g.Dense | g.Conv2d | g.CausalConv1d):
            if not node.quantized:
                raise g.GraphError(
                    f"node {op.name!r} has float weights; fixed-point mode needs quantised "
                    "weights (see eventsp.runtime.quant.quantize_graph)"
                )
            op.scale = node.weight_scale * op.scale / 2.0**node.acc_shift
            op.consts["shift"] = node.acc_shift
            op.consts["w"] = node.weight.astype(np.int64)
            bias = np.zeros(node.weight.shape[0]) if node.bias is None else node.bias
            op.consts["b"] = _rnd_int(bias.astype(np.float64) / op.scale)
            if isinstance(node, g.CausalConv1d):
                k = node.weight.shape[2]
                op.consts["ring"] = (k - 1) * node.dilation + 1
                op.state_size = op.consts["ring"] * shapes[op.preds[0]][0]
        elif isinstance(node, g.AvgPool2d):
            op.scale = op.scale / (node.kernel[0] * node.kernel[1])
        elif isinstance(node, g.Add):
            scales = [ops[p].scale for p in op.preds]
            if any(not math.isclose(s, scales[0], rel_tol=1e-12) for s in scales):
                raise g.GraphError(
                    f"Add {op.name!r} joins inputs of scales {scales}; fixed-point mode needs "
                    "equal scales (quantise the branches with the same weight scale)"
                )
        elif isinstance(node, g.IF | g.LIF):
            op.consts["T"] = max(1, int(_rnd_int(node.threshold / op.scale)))
            if isinstance(node, g.LIF):
                op.consts["D"] = int(_rnd_int(node.decay * 2.0**15))
            op.scale = 1.0
            op.state_size = size
        elif isinstance(node, g.MultiSpike):
            op.consts["U"] = max(1, int(_rnd_int(1.0 / (op.scale * node.dt))))
            op.scale = 1.0 / node.dt
            op.state_size = size
        elif isinstance(node, g.Readout):
            op.state_size = size
            if node.mode == "mean":
                succ = self.graph.successors(op.name)
                if [type(self.graph.nodes[s]) for s in succ] != [g.Output]:
                    raise g.GraphError(
                        f"mean Readout {op.name!r} must feed the Output directly in fixed mode"
                    )
        elif isinstance(node, g.LMUMemory):
            raise g.GraphError(
                f"node {op.name!r} is an LMUMemory, which fixed-point mode does not support; "
                "run this model with mode='float'"
            )

    def run(self, xs: np.ndarray, values, acts, steps, counters) -> np.ndarray:
        """Frames ``xs`` (T, batch, *input_shape) -> outputs (T, batch, *output_shape) float32."""
        outs = []
        for frame in xs:
            ints: dict[str, np.ndarray] = {}
            out = None
            for k, op in enumerate(self.ops, start=1):
                ins = [ints[p] for p in op.preds]
                y, out_value = self._step(op, ins, frame, values, steps, counters[:, k])
                ints[op.name] = y
                if y is not None:
                    acts[:, op.act : op.act + y[0].size] = y.reshape(y.shape[0], -1)
                if out_value is not None:
                    out = out_value
            steps += 1
            outs.append(out)
        return np.stack(outs)

    def _step(self, op: _Op, ins, frame, values, steps, cnt):
        node = op.node
        batch = frame.shape[0]
        state = values[:, op.state : op.state + op.state_size] if op.state >= 0 else None
        if isinstance(node, g.Input):
            if node.quant_bits is not None:
                lo, hi = -(2 ** (node.quant_bits - 1)), 2 ** (node.quant_bits - 1) - 1
                return np.clip(_rnd_int(frame / node.quant_scale), lo, hi), None
            return _rnd_int(frame), None
        x = ins[0]
        if isinstance(node, g.Output):
            real = x.astype(np.float64) * op.scale
            pred = self.graph.nodes[op.preds[0]]
            if isinstance(pred, g.Readout) and pred.mode == "mean":
                real = real / (steps + 1).reshape((-1,) + (1,) * (real.ndim - 1))
            return None, real.astype(np.float32)
        if isinstance(node, g.Dense):
            _count_synapses(cnt, x, node.weight.shape[0], node.weight.size)
            return (x @ op.consts["w"].T << op.consts["shift"]) + op.consts["b"], None
        if isinstance(node, g.Conv2d):
            return _conv(op, x, cnt), None
        if isinstance(node, g.CausalConv1d):
            ring_len = op.consts["ring"]
            ring = state.reshape(batch, ring_len, -1)
            w = op.consts["w"]
            k = w.shape[2]
            y = np.zeros((batch, w.shape[0]), np.int64)
            rows = np.arange(batch)
            ring[rows, steps % ring_len] = x
            for tap in range(k):
                past = ring[rows, (steps - (k - 1 - tap) * node.dilation) % ring_len]
                _count_synapses(cnt, past, w.shape[0], w.shape[0] * w.shape[1])
                y += past @ w[:, :, tap].T
            return (y << op.consts["shift"]) + op.consts["b"], None
        if isinstance(node, g.AvgPool2d | g.SumPool2d):
            (kh, kw), (sh, sw) = node.kernel, node.stride
            _, _, ho, wo = (batch, *op.shape)
            y = np.zeros((batch, *op.shape), np.int64)
            for ky in range(kh):
                for kx in range(kw):
                    y += x[:, :, ky : ky + sh * (ho - 1) + 1 : sh, kx : kx + sw * (wo - 1) + 1 : sw]
            return y, None
        if isinstance(node, g.Flatten):
            return x.reshape(batch, -1), None
        if isinstance(node, g.Identity):
            return x, None
        if isinstance(node, g.Add):
            return sum(ins[1:], ins[0]), None
        if isinstance(node, g.ReLU):
            y = np.maximum(x, 0)
            _count_neurons(cnt, y, 0)
            return y, None
        v = state.reshape(x.shape) if state is not None else None
        if isinstance(node, g.IF | g.LIF):
            if isinstance(node, g.LIF):
                v[...] = ((v * op.consts["D"] + 2**14) >> 15) + x
            else:
                v += x
            spikes = v >= op.consts["T"]
            if isinstance(node, g.LIF):
                v[spikes] = 0
            else:
                v -= spikes * op.consts["T"]
            y = spikes.astype(np.int64)
            _count_neurons(cnt, y, y.reshape(batch, -1).sum(axis=1))
            return y, None
        if isinstance(node, g.MultiSpike):
            v += x
            n = np.floor_divide(v, op.consts["U"])
            v -= n * op.consts["U"]
            _count_neurons(cnt, n, np.abs(n).reshape(batch, -1).sum(axis=1))
            return n, None
        if isinstance(node, g.Readout):
            v += x
            return (x.copy() if node.mode == "last" else v.copy()), None
        raise g.GraphError(f"fixed-point mode cannot run {node.type}")  # pragma: no cover


def _count_synapses(cnt: np.ndarray, x: np.ndarray, fan_out: int, dense: int) -> None:
    flat = x.reshape(x.shape[0], -1)
    nnz = np.count_nonzero(flat, axis=1)
    binary = np.all((flat == 0) | (flat == 1), axis=1)
    cnt[:, lay.ACS] += np.where(binary, nnz * fan_out, 0)
    cnt[:, lay.MACS] += np.where(binary, 0, nnz * fan_out)
    cnt[:, lay.DENSE_OPS] += dense


def _count_neurons(cnt: np.ndarray, y: np.ndarray, spikes) -> None:
    flat = y.reshape(y.shape[0], -1)
    cnt[:, lay.NONZERO] += np.count_nonzero(flat, axis=1)
    cnt[:, lay.TOTAL] += flat.shape[1]
    cnt[:, lay.SPIKES] += spikes


def _conv(op: _Op, x: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    node: g.Conv2d = op.node
    w = op.consts["w"]
    n_o, cin_pg, kh, kw = w.shape
    opg = n_o // node.groups
    (ph, pw), (sh, sw) = node.padding, node.stride
    batch = x.shape[0]
    _, ho, wo = op.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((batch, n_o, ho, wo), np.int64)
    effective = np.zeros(batch, np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, :, ky : ky + sh * (ho - 1) + 1 : sh, kx : kx + sw * (wo - 1) + 1 : sw]
            effective += np.count_nonzero(patch.reshape(batch, -1), axis=1) * opg
            for grp in range(node.groups):
                sub = patch[:, grp * cin_pg : (grp + 1) * cin_pg]
                wk = w[grp * opg : (grp + 1) * opg, :, ky, kx]
                y[:, grp * opg : (grp + 1) * opg] += np.einsum("oc,bchw->bohw", wk, sub)
    flat = x.reshape(batch, -1)
    binary = np.all((flat == 0) | (flat == 1), axis=1)
    cnt[:, lay.ACS] += np.where(binary, effective, 0)
    cnt[:, lay.MACS] += np.where(binary, 0, effective)
    cnt[:, lay.DENSE_OPS] += ho * wo * n_o * cin_pg * kh * kw
    return (y << op.consts["shift"]) + op.consts["b"][None, :, None, None]
