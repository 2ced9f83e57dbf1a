"""Compile a :class:`~eventsp.model.graph.Graph` into the interpreter's program.

The program is plain arrays (see :mod:`eventsp.kernels.layout`): an ``int64`` ``code`` table,
a flat ``float32`` ``params`` buffer, and the sizes of the per-stream buffers (``acts`` for
every node's output, ``values`` for state). Flatten and Identity cost nothing: their output
is their input's slot. Parameter layouts: Dense ``W.T`` (in, out); Conv2d ``W`` as given plus
a scatter copy ``(C_in, kh, kw, out/groups)``; CausalConv1d ``W`` as ``(k, in, out)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from eventsp.kernels import layout as lay
from eventsp.model import graph as g

__all__ = ["Program", "compile_graph"]


@dataclass(frozen=True, eq=False)
class Program:
    """A compiled network: the code table, parameters and buffer sizes."""

    code: np.ndarray  # (n_ops, NCOL) int64
    params: np.ndarray  # (n_params,) float32
    n_acts: int
    n_values: int
    n_in: int
    n_out: int
    op_names: tuple[str, ...]  # graph node that each code row comes from
    op_kinds: tuple[str, ...]  # its node type


class _Builder:
    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.names: list[str] = []
        self.kinds: list[str] = []
        self.params: list[np.ndarray] = []
        self.n_params = 0
        self.n_acts = 0
        self.n_values = 0

    def param(self, arr: np.ndarray | list[float] | None) -> int:
        if arr is None:
            return -1
        flat = np.ascontiguousarray(arr, dtype=np.float32).ravel()
        offset = self.n_params
        self.params.append(flat)
        self.n_params += flat.size
        return offset

    def act(self, size: int) -> int:
        offset = self.n_acts
        self.n_acts += size
        return offset

    def state(self, size: int) -> int:
        offset = self.n_values
        self.n_values += size
        return offset

    def op(self, name: str, node: g.Node, **cols: int) -> None:
        row = np.full(lay.NCOL, -1, dtype=np.int64)
        for key, value in cols.items():
            row[getattr(lay, key)] = value
        self.rows.append(row)
        self.names.append(name)
        self.kinds.append(node.type)


def compile_graph(graph: g.Graph) -> Program:
    """Lay out ``graph`` (float mode) as a :class:`Program`."""
    shapes = graph.shapes()
    slot: dict[str, int] = {}
    b = _Builder()
    for name in graph.order():
        node = graph.nodes[name]
        preds = graph.predecessors(name)
        size = math.prod(shapes[name])
        src = slot[preds[0]] if preds else -1
        n_in = math.prod(shapes[preds[0]]) if preds else size
        if isinstance(node, g.Flatten | g.Identity):
            slot[name] = src
            continue
        if isinstance(node, g.Output):
            b.op(name, node, OP=lay.OUTPUT, IN=src, N_IN=size, N_OUT=size)
            continue
        out = slot[name] = b.act(size)
        common = {"IN": src, "N_IN": n_in, "OUT": out, "N_OUT": size}
        if isinstance(node, g.Input):
            b.op(name, node, OP=lay.INPUT, OUT=out, N_OUT=size)
        elif isinstance(node, g.Dense):
            w = node.real_weight().T
            b.op(name, node, OP=lay.DENSE, P0=b.param(w), P1=b.param(node.bias), **common)
        elif isinstance(node, g.Conv2d):
            _conv(b, name, node, shapes[preds[0]], shapes[name], common)
        elif isinstance(node, g.CausalConv1d):
            w = node.real_weight()
            k = w.shape[2]
            ring = (k - 1) * node.dilation + 1
            b.op(
                name,
                node,
                OP=lay.CCONV1D,
                P0=b.param(np.transpose(w, (2, 1, 0))),
                P1=b.param(node.bias),
                S0=b.state(ring * n_in),
                KH=k,
                SH=node.dilation,
                H=ring,
                **common,
            )
        elif isinstance(node, g.AvgPool2d | g.SumPool2d):
            (c, h, w), (_, ho, wo) = shapes[preds[0]], shapes[name]
            kh, kw = node.kernel
            sh, sw = node.stride
            average = int(isinstance(node, g.AvgPool2d))
            geometry = {"C": c, "H": h, "W": w, "OC": c, "HO": ho, "WO": wo}
            b.op(
                name,
                node,
                OP=lay.POOL,
                P0=average,
                KH=kh,
                KW=kw,
                SH=sh,
                SW=sw,
                **geometry,
                **common,
            )
        elif isinstance(node, g.Add):
            b.op(name, node, OP=lay.ADD, IN2=slot[preds[1]], **common)
            for extra in preds[2:]:
                b.op(
                    name, node, OP=lay.ADD, IN=out, IN2=slot[extra], N_IN=size, OUT=out, N_OUT=size
                )
        elif isinstance(node, g.IF):
            b.op(name, node, OP=lay.IF, P2=b.param([node.threshold]), S0=b.state(size), **common)
        elif isinstance(node, g.LIF):
            p = b.param([node.threshold, node.decay])
            b.op(name, node, OP=lay.LIF, P2=p, S0=b.state(size), **common)
        elif isinstance(node, g.MultiSpike):
            b.op(name, node, OP=lay.MSPIKE, P2=b.param([node.dt]), S0=b.state(size), **common)
        elif isinstance(node, g.ReLU):
            b.op(name, node, OP=lay.RELU, **common)
        elif isinstance(node, g.LMUMemory):
            p_a, p_b = b.param(node.A_d), b.param(node.B_d)
            s0 = b.state(size)
            b.op(name, node, OP=lay.LMU, P0=p_a, P1=p_b, S0=s0, KH=node.order, C=n_in, **common)
        elif isinstance(node, g.Readout):
            mode = {"sum": lay.READ_SUM, "mean": lay.READ_MEAN, "last": lay.READ_LAST}[node.mode]
            b.op(name, node, OP=lay.READOUT, S0=b.state(size), MODE=mode, **common)
        else:  # pragma: no cover - every registered type is handled above
            raise g.GraphError(f"the runtime cannot run node {name!r} of type {node.type}")
    params = np.concatenate(b.params) if b.params else np.zeros(1, np.float32)
    return Program(
        code=np.ascontiguousarray(np.stack(b.rows)),
        params=np.ascontiguousarray(params, dtype=np.float32),
        n_acts=max(b.n_acts, 1),
        n_values=max(b.n_values, 1),
        n_in=math.prod(shapes[graph.input_name]),
        n_out=math.prod(shapes[graph.output_name]),
        op_names=tuple(b.names),
        op_kinds=tuple(b.kinds),
    )


def _conv(b: _Builder, name: str, node: g.Conv2d, shape_in, shape_out, common) -> None:
    w = node.real_weight()
    n_o, cin_pg, kh, kw = w.shape
    opg = n_o // node.groups
    c, h, width = shape_in
    # Scatter layout: for input channel c (group gi = c // cin_pg), W[gi*opg + ol, c % cin_pg].
    scatter = np.empty((c, kh, kw, opg), np.float32)
    for ci in range(c):
        gi = ci // cin_pg
        scatter[ci] = np.transpose(w[gi * opg : (gi + 1) * opg, ci % cin_pg], (1, 2, 0))
    b.op(
        name,
        node,
        OP=lay.CONV2D,
        P0=b.param(w),
        P1=b.param(node.bias),
        P2=b.param(scatter),
        C=c,
        H=h,
        W=width,
        OC=n_o,
        HO=shape_out[1],
        WO=shape_out[2],
        KH=kh,
        KW=kw,
        SH=node.stride[0],
        SW=node.stride[1],
        PH=node.padding[0],
        PW=node.padding[1],
        G=node.groups,
        **common,
    )
