"""Compile a :class:`~eventsp.model.graph.Graph` into the interpreter's program.

The program is plain arrays (see :mod:`eventsp.kernels.layout`): an ``int64`` ``code`` table,
a flat ``float32`` ``params`` buffer, and the sizes of the per-stream buffers (``acts`` for
every node's output, ``values`` for state). Flatten and Identity cost nothing: their output
is their input's slot. Spatial activations are stored ``(H, W, C)`` (see
:mod:`eventsp.kernels.conv`); Flatten and a spatial Output put them back in ``(C, H, W)``
order. Parameter layouts: Dense ``W.T`` (in, out), its rows padded with zeros to the width in
column ``WO`` (see :func:`_dense_row`); Conv2d ``(C_in, kh, kw, out/groups)``
(kx reversed);
CausalConv1d ``(k, in, out)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from eventsp.kernels import layout as lay
from eventsp.model import graph as g
from eventsp.runtime import memory

__all__ = ["Program", "compile_graph"]


@dataclass(frozen=True, eq=False)
class Program:
    """A compiled network: the code table, parameters and buffer sizes."""

    code: np.ndarray  # (1 + n_ops, NCOL) int64; row 0 is the header
    params: np.ndarray  # (n_params,) float32
    n_acts: int
    n_values: int
    n_in: int
    n_out: int
    op_names: tuple[str, ...]  # graph node that each code row comes from ("" for the header)
    op_kinds: tuple[str, ...]  # its node type
    slots: dict[str, int]  # node -> offset of its output in acts (Input included)


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
        offset = _aligned(self.n_params)
        if offset > self.n_params:
            self.params.append(np.zeros(offset - self.n_params, np.float32))
        self.params.append(flat)
        self.n_params = offset + flat.size
        return offset

    def act(self, size: int) -> int:
        offset = _aligned(self.n_acts)
        self.n_acts = offset + size
        return offset

    def state(self, size: int) -> int:
        offset = _aligned(self.n_values)
        self.n_values = offset + size
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
        spatial = _chw(shapes[preds[0]] if preds else shapes[name])
        if isinstance(node, g.Identity) or (isinstance(node, g.Flatten) and not spatial):
            slot[name] = src
            continue
        if isinstance(node, g.Output):
            b.op(name, node, OP=lay.OUTPUT, IN=src, N_IN=size, N_OUT=size, **spatial)
            continue
        # A Dense output has room for whole rows of its (padded) weights.
        out = slot[name] = b.act(_dense_row(size) if isinstance(node, g.Dense) else size)
        common = {"IN": src, "N_IN": n_in, "OUT": out, "N_OUT": size}
        if isinstance(node, g.Input):
            b.op(name, node, OP=lay.INPUT, OUT=out, N_OUT=size, **spatial)
        elif isinstance(node, g.Flatten):
            b.op(name, node, OP=lay.FLATTEN, **spatial, **common)
        elif isinstance(node, g.Dense):
            row = _dense_row(size)
            w = _pad_columns(node.real_weight().T, row)
            bias = None if node.bias is None else _pad_columns(node.bias, row)
            b.op(name, node, OP=lay.DENSE, P0=b.param(w), P1=b.param(bias), WO=row, **common)
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
                P1=b.param([1.0 / (kh * kw)]),
                P2=b.param(_hwc_table(c, h, w)),
                PH=b.param(_pool_table(c, h, w, ho, wo, node.kernel, node.stride)),
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
    # Spike lists: an IF/LIF whose output feeds a Dense, Conv2d or pooling layer writes the
    # indices of its spikes ([count, i, ...] as int32 in acts); the consumer reads them (IN2).
    producers = {int(r[lay.OUT]): r for r in b.rows if r[lay.OP] in (lay.IF, lay.LIF)}
    for r in b.rows:
        prod = producers.get(int(r[lay.IN]))
        if r[lay.OP] in (lay.DENSE, lay.CONV2D, lay.POOL) and prod is not None:
            if prod[lay.MODE] < 0:
                prod[lay.MODE] = b.act(int(prod[lay.N_OUT]) + 1)
            r[lay.IN2] = prod[lay.MODE]
    # Index scratch of the event-driven Dense/Conv/CausalConv1d kernels: int32 in acts.
    scratch = b.act(max([1] + [int(r[lay.N_IN]) for r in b.rows if r[lay.OP] in _LISTS]))
    for r in b.rows:
        if r[lay.OP] in _LISTS:
            r[lay.MODE] = scratch
    # One copy of the weights, read by the kernels: on huge pages when large (runtime.memory).
    params = memory.zeros((max(sum(p.size for p in b.params), 1),), np.float32)
    if b.params:
        np.concatenate(b.params, out=params)
    n_in = math.prod(shapes[graph.input_name])
    n_out = math.prod(shapes[graph.output_name])
    n_acts, n_values = _aligned(max(b.n_acts, 1)), _aligned(max(b.n_values, 1))
    header = np.full(lay.NCOL, -1, dtype=np.int64)
    header[[lay.OP, lay.N_IN, lay.N_OUT, lay.H, lay.W]] = (lay.NOP, n_in, n_out, n_acts, n_values)
    return Program(
        code=np.ascontiguousarray(np.stack([header, *b.rows])),
        params=params,
        n_acts=n_acts,
        n_values=n_values,
        n_in=n_in,
        n_out=n_out,
        op_names=("", *b.names),
        op_kinds=("header", *b.kinds),
        slots={n: o for n, o in slot.items() if o >= 0},
    )


_LISTS = (lay.DENSE, lay.CCONV1D, lay.CONV2D)

# Buffers start, and rows of acts and values end, on 64-byte cache lines (16 float32), so a
# vector load or store of a layer's output never straddles two lines in any stream; each
# parameter array starts on a line too.
ALIGN = memory.LINE // np.dtype(np.float32).itemsize


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


def _dense_row(n_out: int) -> int:
    """The width of a Dense layer's weight rows and output slot: ``n_out`` rounded up to a
    multiple of 32 when below 128, so that every pass of the kernel over its output runs in
    whole vectors (LLVM's loops take 32 float32 at a time, in four AVX2 registers, and run
    shorter tails one value at a time: a 20-wide layer took twice as long unpadded), unless
    that would more than double the weights (a 10-class readout of a large layer stays
    unpadded: memory matters more than speed on small devices)."""
    padded = -(-n_out // 32) * 32
    return padded if n_out < 128 and padded <= 2 * n_out else n_out


def _pad_columns(a: np.ndarray, width: int) -> np.ndarray:
    """``a`` with zero columns (last axis) appended up to ``width``."""
    pad = [(0, 0)] * (a.ndim - 1) + [(0, width - a.shape[-1])]
    return np.pad(np.asarray(a, np.float32), pad)


def _hwc_table(c: int, h: int, w: int) -> np.ndarray:
    """For every index of an ``(H, W, C)`` buffer: its ``iy``, then ``ix``, then ``c`` (floats)."""
    iy, ix, ci = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    return np.concatenate([iy.ravel(), ix.ravel(), ci.ravel()]).astype(np.float32)


def _pool_table(c, h, w, ho, wo, kernel, stride) -> np.ndarray | None:
    """For non-overlapping windows (kernel == stride): the ``(HO, WO, C)`` output index that
    every ``(H, W, C)`` input index falls in, ``-1`` for none (floats); else no table."""
    if tuple(kernel) != tuple(stride):
        return None
    iy, ix, ci = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    oy, ox = iy // stride[0], ix // stride[1]
    dst = np.where((oy < ho) & (ox < wo), (oy * wo + ox) * c + ci, -1)
    return dst.ravel().astype(np.float32)


def _chw(shape: tuple[int, ...]) -> dict[str, int]:
    """Geometry columns of a ``(C, H, W)`` shape (stored ``(H, W, C)``); none for others."""
    if len(shape) != 3:
        return {}
    return {"C": shape[0], "H": shape[1], "W": shape[2]}


def _conv(b: _Builder, name: str, node: g.Conv2d, shape_in, shape_out, common) -> None:
    w = node.real_weight()
    n_o, cin_pg, kh, kw = w.shape
    opg = n_o // node.groups
    c, h, width = shape_in
    # Layout (C_in, kh, kw, out_per_group), kx reversed: input channel ci feeds
    # W[gi*opg + ol, ci % cin_pg] with gi = ci // cin_pg its group; patches[ci, ky, kw-1-kx]
    # holds tap (ky, kx), so the taps of one kernel row line up with increasing output x.
    patches = np.empty((c, kh, kw, opg), np.float32)
    for ci in range(c):
        gi = ci // cin_pg
        patches[ci] = np.transpose(w[gi * opg : (gi + 1) * opg, ci % cin_pg], (1, 2, 0))[:, ::-1]
    b.op(
        name,
        node,
        OP=lay.CONV2D,
        P0=b.param(patches),
        P1=b.param(node.bias),
        P2=b.param(_hwc_table(c, h, width)),
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
