"""Slow, plainly correct reference implementations of the runtime, for parity tests.

``naive_run(graph, xs)`` runs a graph over frames ``xs`` (T, batch, *input_shape) one stream
and one node at a time, with plain numpy on float32 values (LMU sums in float64), exactly as
the equations in ``docs/runtime.md`` read. It returns the outputs and, per stateful node, the
trace of its state after every frame.
"""

from __future__ import annotations

import math

import numpy as np

from eventsp.model import graph as g

F32 = np.float32


def _dense(node: g.Dense, x: np.ndarray) -> np.ndarray:
    y = node.real_weight().astype(np.float64) @ x.astype(np.float64)
    if node.bias is not None:
        y = y + node.bias
    return y.astype(F32)


def _conv2d(node: g.Conv2d, x: np.ndarray) -> np.ndarray:
    w = node.real_weight().astype(np.float64)
    n_o, cin_pg, kh, kw = w.shape
    opg = n_o // node.groups
    (ph, pw), (sh, sw) = node.padding, node.stride
    xp = np.pad(x.astype(np.float64), ((0, 0), (ph, ph), (pw, pw)))
    ho = (xp.shape[1] - kh) // sh + 1
    wo = (xp.shape[2] - kw) // sw + 1
    y = np.zeros((n_o, ho, wo))
    for o in range(n_o):
        grp = o // opg
        chans = xp[grp * cin_pg : (grp + 1) * cin_pg]
        for oy in range(ho):
            for ox in range(wo):
                patch = chans[:, oy * sh : oy * sh + kh, ox * sw : ox * sw + kw]
                y[o, oy, ox] = np.sum(patch * w[o])
    if node.bias is not None:
        y = y + node.bias[:, None, None]
    return y.astype(F32)


def _pool(node: g.AvgPool2d | g.SumPool2d, x: np.ndarray) -> np.ndarray:
    (kh, kw), (sh, sw) = node.kernel, node.stride
    c, h, w = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    y = np.zeros((c, ho, wo), np.float64)
    for oy in range(ho):
        for ox in range(wo):
            window = x[:, oy * sh : oy * sh + kh, ox * sw : ox * sw + kw].astype(np.float64)
            y[:, oy, ox] = window.sum(axis=(1, 2))
    if isinstance(node, g.AvgPool2d):
        y = y / (kh * kw)
    return y.astype(F32)


def naive_run(graph: g.Graph, xs: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Outputs (T, batch, *out_shape) and state traces {node: (T, batch, *state_shape)}."""
    xs = np.asarray(xs, dtype=F32)
    n_frames, batch = xs.shape[:2]
    outs = []
    traces: dict[str, list] = {}
    for b in range(batch):
        state: dict[str, object] = {}
        stream_outs = []
        stream_traces: dict[str, list] = {}
        for t in range(n_frames):
            values: dict[str, np.ndarray] = {}
            for name in graph.order():
                node = graph.nodes[name]
                ins = [values[p] for p in graph.predecessors(name)]
                values[name] = _node_step(node, name, ins, xs[t, b], state, t)
                if name in state:
                    stream_traces.setdefault(name, []).append(np.array(state[name], copy=True))
            stream_outs.append(values[graph.output_name])
        outs.append(np.stack(stream_outs))
        for name, trace in stream_traces.items():
            traces.setdefault(name, []).append(np.stack(trace))
    out = np.stack(outs, axis=1)
    return out, {name: np.stack(trace, axis=1) for name, trace in traces.items()}


def _node_step(node, name, ins, frame, state, t):
    if isinstance(node, g.Input):
        return frame.copy()
    x = ins[0]
    if isinstance(node, g.Output | g.Identity):
        return x
    if isinstance(node, g.Dense):
        return _dense(node, x)
    if isinstance(node, g.Conv2d):
        return _conv2d(node, x)
    if isinstance(node, g.AvgPool2d | g.SumPool2d):
        return _pool(node, x)
    if isinstance(node, g.Flatten):
        return x.reshape(-1)
    if isinstance(node, g.Add):
        total = ins[0].astype(F32)
        for other in ins[1:]:
            total = (total + other).astype(F32)
        return total
    if isinstance(node, g.ReLU):
        return np.maximum(x, F32(0))
    if isinstance(node, g.IF):
        v = state.get(name, np.zeros_like(x)) + x
        s = v >= F32(node.threshold)
        v = np.where(s, v - F32(node.threshold), v).astype(F32)
        state[name] = v
        return s.astype(F32)
    if isinstance(node, g.LIF):
        v = F32(node.decay) * state.get(name, np.zeros_like(x)) + x
        s = v >= F32(node.threshold)
        state[name] = np.where(s | (np.abs(v) < F32(1e-30)), F32(0), v).astype(F32)
        return s.astype(F32)
    if isinstance(node, g.MultiSpike):
        dt = F32(node.dt)
        v = (state.get(name, np.zeros_like(x)) + x * dt).astype(F32)
        n = np.floor(v)
        state[name] = (v - n).astype(F32)
        return (n / dt).astype(F32)
    if isinstance(node, g.CausalConv1d):
        w = node.real_weight().astype(np.float64)
        k = w.shape[2]
        history = state.get(name + "/frames", [])
        history = [*history, x.astype(np.float64)]
        state[name + "/frames"] = history
        y = np.zeros(w.shape[0]) if node.bias is None else node.bias.astype(np.float64)
        for j in range(k):
            back = (k - 1 - j) * node.dilation
            if back < len(history):
                y = y + w[:, :, j] @ history[-1 - back]
        return y.astype(F32)
    if isinstance(node, g.LMUMemory):
        q = node.order
        m = state.get(name, np.zeros(x.shape[0] * q, F32)).reshape(x.shape[0], q)
        A = node.A_d.astype(np.float64)
        B = node.B_d.astype(np.float64)
        new = (m.astype(np.float64) @ A.T + x.astype(np.float64)[:, None] * B).astype(F32)
        state[name] = new.reshape(-1)
        return new.reshape(-1)
    if isinstance(node, g.Readout):
        acc = (state.get(name, np.zeros_like(x)) + x).astype(F32)
        state[name] = acc
        if node.mode == "sum":
            return acc
        if node.mode == "mean":
            return (acc / F32(t + 1)).astype(F32)
        return x
    raise NotImplementedError(node.type)


def activity(xs: np.ndarray) -> float:
    """Fraction of nonzero entries."""
    return float(np.count_nonzero(xs)) / max(math.prod(xs.shape), 1)


def _rnd(v: float) -> int:
    """Round half up, the fixed-point mode's one rounding rule."""
    return math.floor(v + 0.5)


def naive_fixed_run(graph: g.Graph, xs: np.ndarray) -> np.ndarray:
    """Fixed-point reference: Python ints, one stream, one neuron, one synapse at a time.

    Written from the rules in ``eventsp.runtime.fixed`` (not from its code). Spatial nodes
    work on nested lists indexed ``[c][y][x]``; everything else on flat lists.
    """
    xs = np.asarray(xs, dtype=np.float32)
    outs = np.zeros((xs.shape[0], xs.shape[1], *graph.shapes()[graph.output_name]), np.float32)
    for b in range(xs.shape[1]):
        state: dict[str, object] = {}
        for t in range(xs.shape[0]):
            vals: dict[str, tuple[np.ndarray, float]] = {}
            for name in graph.order():
                node = graph.nodes[name]
                ins = [vals[p] for p in graph.predecessors(name)]
                vals[name] = _fixed_node(node, name, ins, xs[t, b], state, t, graph)
            outs[t, b] = vals[graph.output_name][0]
    return outs


def _fixed_node(node, name, ins, frame, state, t, graph):  # one branch per node type
    if isinstance(node, g.Input):
        flat = [float(v) for v in frame.ravel()]
        if node.quant_bits is None:
            q = [_rnd(v) for v in flat]
            return np.array(q, dtype=object).reshape(frame.shape), 1.0
        lo, hi = -(2 ** (node.quant_bits - 1)), 2 ** (node.quant_bits - 1) - 1
        q = [min(hi, max(lo, _rnd(v / node.quant_scale))) for v in flat]
        return np.array(q, dtype=object).reshape(frame.shape), node.quant_scale
    x, s = ins[0]
    if isinstance(node, g.Output):
        pred = graph.nodes[graph.predecessors(name)[0]]
        div = t + 1 if isinstance(pred, g.Readout) and pred.mode == "mean" else 1
        return np.array([float(v) * s / div for v in x.ravel()], np.float32).reshape(x.shape), s
    if isinstance(node, g.Dense | g.Conv2d | g.CausalConv1d):
        s_out = node.weight_scale * s
        w = node.weight.astype(int)
        n_out = w.shape[0]
        bias = [0] * n_out if node.bias is None else [_rnd(float(v) / s_out) for v in node.bias]
        if isinstance(node, g.Dense):
            y = [
                bias[o] + sum(int(w[o, i]) * int(x[i]) for i in range(w.shape[1]))
                for o in range(n_out)
            ]
            return np.array(y, dtype=object), s_out
        if isinstance(node, g.CausalConv1d):
            hist = [*state.get(name, []), [int(v) for v in x]]
            state[name] = hist
            k = w.shape[2]
            y = list(bias)
            for j in range(k):
                back = (k - 1 - j) * node.dilation
                if back < len(hist):
                    past = hist[-1 - back]
                    for o in range(n_out):
                        y[o] += sum(int(w[o, i, j]) * past[i] for i in range(w.shape[1]))
            return np.array(y, dtype=object), s_out
        return _fixed_conv(node, w, bias, x), s_out
    if isinstance(node, g.AvgPool2d | g.SumPool2d):
        (kh, kw), (sh, sw) = node.kernel, node.stride
        c, h, wd = x.shape
        ho, wo = (h - kh) // sh + 1, (wd - kw) // sw + 1
        y = np.zeros((c, ho, wo), dtype=object)
        for ci in range(c):
            for oy in range(ho):
                for ox in range(wo):
                    y[ci, oy, ox] = sum(
                        int(x[ci, oy * sh + a, ox * sw + bb]) for a in range(kh) for bb in range(kw)
                    )
        return y, (s / (kh * kw) if isinstance(node, g.AvgPool2d) else s)
    if isinstance(node, g.Flatten):
        return x.reshape(-1), s
    if isinstance(node, g.Identity):
        return x, s
    if isinstance(node, g.ReLU):
        return np.array([max(int(v), 0) for v in x.ravel()], dtype=object).reshape(x.shape), s
    if isinstance(node, g.Add):
        total = ins[0][0].copy()
        for other, _ in ins[1:]:
            total = total + other
        return total, s
    flat = [int(v) for v in x.ravel()]
    if isinstance(node, g.IF | g.LIF):
        th = max(1, _rnd(node.threshold / s))
        v = state.get(name, [0] * len(flat))
        out = []
        for i, xi in enumerate(flat):
            if isinstance(node, g.LIF):
                d = _rnd(node.decay * 2**15)
                u = (v[i] * d + 2**14) // 2**15 + xi
                fire = u >= th
                v[i] = 0 if fire else u
            else:
                u = v[i] + xi
                fire = u >= th
                v[i] = u - th if fire else u
            out.append(int(fire))
        state[name] = v
        return np.array(out, dtype=object).reshape(x.shape), 1.0
    if isinstance(node, g.MultiSpike):
        unit = max(1, _rnd(1.0 / (s * node.dt)))
        v = state.get(name, [0] * len(flat))
        out = []
        for i, xi in enumerate(flat):
            u = v[i] + xi
            n = u // unit
            v[i] = u - n * unit
            out.append(n)
        state[name] = v
        return np.array(out, dtype=object).reshape(x.shape), 1.0 / node.dt
    if isinstance(node, g.Readout):
        acc = state.get(name, [0] * len(flat))
        acc = [a + xi for a, xi in zip(acc, flat, strict=True)]
        state[name] = acc
        y = flat if node.mode == "last" else acc
        return np.array(y, dtype=object).reshape(x.shape), s
    raise NotImplementedError(node.type)


def _fixed_conv(node: g.Conv2d, w: np.ndarray, bias: list[int], x: np.ndarray) -> np.ndarray:
    n_o, cin_pg, kh, kw = w.shape
    opg = n_o // node.groups
    (ph, pw), (sh, sw) = node.padding, node.stride
    _, h, wd = x.shape
    ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    y = np.zeros((n_o, ho, wo), dtype=object)
    for o in range(n_o):
        grp = o // opg
        for oy in range(ho):
            for ox in range(wo):
                acc = bias[o]
                for cl in range(cin_pg):
                    for a in range(kh):
                        for bb in range(kw):
                            iy, ix = oy * sh - ph + a, ox * sw - pw + bb
                            if 0 <= iy < h and 0 <= ix < wd:
                                acc += int(w[o, cl, a, bb]) * int(x[grp * cin_pg + cl, iy, ix])
                y[o, oy, ox] = acc
    return y
