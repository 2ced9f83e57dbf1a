"""NIR interchange: :func:`to_nir` and :func:`from_nir` between eventsp graphs and ``nir`` graphs.

NIR (the Neuromorphic Intermediate Representation, package ``nir``) describes neurons in
continuous time; eventsp steps in discrete frames of ``dt`` seconds. Both directions use forward
Euler with step ``dt`` for leaky neurons, the convention snnTorch and Norse use::

    NIR LIF   tau dv/dt = (v_leak - v) + r I,  spike when v > v_threshold, then v = v_reset
    per step  v <- (1 - dt/tau) v + (r dt/tau) I + (dt/tau) v_leak
    eventsp   LIF(decay = 1 - dt/tau, threshold),   v <- decay v + x; spike; v <- 0

An input gain ``g = r dt / tau`` other than 1 is absorbed by dividing the threshold by ``g``
(the membrane is then ``v / g``, spikes are unchanged), and ``v_leak / r`` joins the bias of
the synaptic node in front. NIR ``IF`` follows what snnTorch and Norse do (``v += r I`` per step,
``dt`` unused) and becomes ``LIF(decay=1)`` (hard reset), or eventsp ``IF`` (reset by
subtraction) when the node carries ``metadata["eventsp.reset"] = "subtract"``.

What NIR cannot express is written as the closest NIR node plus flat ``metadata`` keys with an
``eventsp.`` prefix (``eventsp.type`` names the eventsp node); :func:`from_nir` reads them back
exactly. A foreign tool that ignores the metadata sees an approximation; ``docs/model-format.md``
lists each case. ``to_nir(graph, strict=True)`` refuses such nodes instead.

Norse up to 1.1 writes ``tau = dt / tau_mem_inv`` instead of ``1 / tau_mem_inv`` (norse issue
#411, fixed after 1.1): read such graphs with
``from_nir(g, dt=0.001, time_convention="norse-1.1")``.

``nir`` is imported inside the functions, so this module imports without the ``nir`` extra.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from eventsp.model.graph import (
    IF,
    LIF,
    Add,
    AvgPool2d,
    CausalConv1d,
    Conv2d,
    Dense,
    Flatten,
    Graph,
    GraphError,
    Identity,
    Input,
    LMUMemory,
    MultiSpike,
    Node,
    Output,
    Readout,
    ReLU,
    SumPool2d,
)

if TYPE_CHECKING:
    import nir

__all__ = ["NIRConversionError", "from_nir", "to_nir"]

TimeConvention = Literal["nir", "norse-1.1"]
PREFIX = "eventsp."
# Nodes whose meaning NIR cannot carry: exported with eventsp.* metadata, refused when strict.
EXTENDED = (IF, ReLU, MultiSpike, Readout, LMUMemory, CausalConv1d)


class NIRConversionError(ValueError):
    """A graph that cannot be converted between NIR and eventsp."""


def _nir() -> Any:
    try:
        import nir
    except ImportError:  # pragma: no cover - the dev install has nir
        raise ImportError(
            "NIR interchange needs the nir package: pip install 'eventsp[nir]'"
        ) from None
    return nir


# ------------------------------------------------------------------------------------ export


def to_nir(graph: Graph, *, dt: float = 1e-4, strict: bool = False) -> nir.NIRGraph:
    """An ``nir.NIRGraph`` for ``graph``; leaky neurons are written for time step ``dt`` (s).

    ``strict=True`` raises :class:`NIRConversionError` for nodes that only eventsp metadata
    can describe (IF with reset by subtraction, ReLU, MultiSpike, Readout, LMUMemory,
    CausalConv1d) instead of writing an approximation for foreign tools.
    """
    nir = _nir()
    _check_dt(dt)
    shapes = graph.shapes()
    nodes: dict[str, Any] = {}
    for name in graph.order():
        node = graph.nodes[name]
        if strict and isinstance(node, EXTENDED) and not _is_leaky_integrator(node):
            raise NIRConversionError(
                f"node {name!r} is a {node.type}, which NIR cannot express; pass strict=False to "
                "write it with eventsp.* metadata that only eventsp reads back"
            )
        preds = graph.predecessors(name)
        in_shape = shapes[preds[0]] if preds else shapes[name]
        nodes[name] = _export_node(nir, node, in_shape, shapes[name], dt)
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges))


def _is_leaky_integrator(node: Node) -> bool:
    """An order-1 LMUMemory with ``0 <= A_d < 1``: exactly a NIR ``LI``."""
    return isinstance(node, LMUMemory) and node.order == 1 and 0 <= node.A_d[0, 0] < 1


def _export_node(nir: Any, node: Node, in_shape: tuple, out_shape: tuple, dt: float) -> Any:
    extra: dict[str, Any] = {"type": node.type}
    ones = np.ones(out_shape, dtype=np.float32)
    zeros = 0 * ones

    def meta(**more: Any) -> dict[str, Any]:
        return {f"{PREFIX}{key}": value for key, value in {**extra, **more}.items()}

    if isinstance(node, Input):
        if node.quant_bits is not None:
            extra.update(quant_bits=node.quant_bits, quant_scale=node.quant_scale)
        return nir.Input(input_type=np.array(node.shape), metadata=meta())
    if isinstance(node, Output):
        return nir.Output(output_type=np.array(node.shape), metadata=meta())
    if isinstance(node, Dense | Conv2d | CausalConv1d):
        extra["has_bias"] = int(node.bias is not None)
        if node.weight_bits is not None:
            extra.update(weight_bits=node.weight_bits, weight_scale=node.weight_scale)
        if node.acc_shift:  # fixed-point rounding only: the real weights below are unchanged
            extra["acc_shift"] = node.acc_shift
        weight = node.real_weight()
        bias = np.zeros(weight.shape[0], np.float32) if node.bias is None else node.bias
        if isinstance(node, Conv2d):
            # nir types a conv's input as weight.shape[1] channels, wrong for groups > 1:
            # leave those untyped and let NIR's type inference take the predecessor's type.
            shape = tuple(in_shape[1:]) if node.groups == 1 else None
            return nir.Conv2d(
                shape, weight, node.stride, node.padding, (1, 1), node.groups, bias, metadata=meta()
            )
        if isinstance(node, CausalConv1d):
            # The current tap is the instantaneous affine map; the full kernel is metadata.
            m = meta(weight=weight, dilation=node.dilation)
            return nir.Affine(weight=weight[:, :, -1].copy(), bias=bias, metadata=m)
        if node.bias is None:
            return nir.Linear(weight=weight, metadata=meta())
        return nir.Affine(weight=weight, bias=bias, metadata=meta())
    if isinstance(node, AvgPool2d | SumPool2d):
        cls = nir.AvgPool2d if isinstance(node, AvgPool2d) else nir.SumPool2d
        pad = np.zeros(2, dtype=np.int64)
        return cls(np.array(node.kernel), np.array(node.stride), pad, metadata=meta())
    if isinstance(node, Flatten):
        shape_in = {"input": np.array(in_shape)}
        return nir.Flatten(input_type=shape_in, start_dim=0, end_dim=-1, metadata=meta())
    if isinstance(node, LIF | IF):
        threshold = ones * node.threshold
        if isinstance(node, IF):
            return nir.IF(ones, threshold, zeros, metadata=meta(reset="subtract"))
        if node.decay >= 1.0:
            return nir.IF(ones, threshold, zeros, metadata=meta())
        tau = dt / (1.0 - node.decay)
        return nir.LIF(ones * tau, ones * (tau / dt), zeros, threshold, zeros, metadata=meta())
    if isinstance(node, LMUMemory):
        extra.update(order=node.order, theta=node.theta, A_d=node.A_d, B_d=node.B_d)
        if _is_leaky_integrator(node):  # exact as NIR LI
            step = 1.0 - float(node.A_d[0, 0])
            r = float(node.B_d[0]) / step
            return nir.LI(tau=ones * dt / step, r=ones * r, v_leak=zeros, metadata=meta())
        weight = np.kron(np.eye(in_shape[0], dtype=np.float32), node.B_d[:, None])
        return nir.Linear(weight=weight, metadata=meta())
    if isinstance(node, MultiSpike):
        extra["dt"] = node.dt
    elif isinstance(node, Readout):
        extra["mode"] = node.mode
    # Add (NIR sums a node's inputs), Identity, and the approximations above: y = x.
    return nir.Scale(scale=ones, metadata=meta())


# ------------------------------------------------------------------------------------ import


def from_nir(
    nir_graph: Any,
    *,
    dt: float = 1e-4,
    time_convention: TimeConvention = "nir",
    input_shape: tuple[int, ...] | None = None,
) -> Graph:
    """An eventsp :class:`Graph` from an ``nir.NIRGraph`` (or a path to a ``.nir`` file).

    ``dt`` is the step (s) that maps NIR time constants onto per-frame decays: 1e-4 for graphs
    from snnTorch, 1e-3 (its default) for Norse. ``time_convention="norse-1.1"`` reads the
    time constants Norse up to 1.1 writes (``tau / dt`` is the real one). A leading batch axis
    of size 1 on the NIR input is dropped; ``input_shape`` overrides the per-sample shape.
    Raises :class:`NIRConversionError` naming the node that eventsp cannot run.
    """
    nir = _nir()
    _check_dt(dt)
    if time_convention not in ("nir", "norse-1.1"):
        raise NIRConversionError(
            f"time_convention is {time_convention!r}; expected 'nir' or 'norse-1.1'"
        )
    if isinstance(nir_graph, str) or hasattr(nir_graph, "__fspath__"):
        # No type check: nir's own inference mistypes grouped convolutions (see _export_node).
        nir_graph = nir.read(nir_graph, type_check=False)
    if not isinstance(nir_graph, nir.NIRGraph):
        raise NIRConversionError(f"expected an nir.NIRGraph, got {type(nir_graph).__name__}")
    tau_scale = dt if time_convention == "norse-1.1" else 1.0
    names = _order(nir_graph)
    preds = {n: [a for a, b in nir_graph.edges if b == n] for n in names}
    sums = _insert_sums(nir, nir_graph, names, preds)
    nodes: dict[str, Node] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    batched = False
    for name in names:
        raw = nir_graph.nodes.get(name)
        key = _safe_name(name)
        in_shapes = [shapes[_safe_name(p)] for p in preds[name]]
        try:
            if name in sums:
                node: Node = Add()
            elif isinstance(raw, nir.Input):
                shape, batched = _input_shape(nir_graph, name, raw, input_shape)
                node = Input(shape, **_quant(raw))
            elif isinstance(raw, nir.Output):
                node = Output(in_shapes[0])
            else:
                node = _import_node(nir, name, raw, in_shapes, batched, dt, tau_scale, nodes, preds)
            shapes[key] = node.out_shape(in_shapes)
        except GraphError as exc:
            raise NIRConversionError(f"NIR node {name!r}: {exc}") from None
        nodes[key] = node
    edges = [(_safe_name(a), _safe_name(b)) for b in names for a in preds[b]]
    return Graph({_safe_name(n): nodes[_safe_name(n)] for n in names}, edges)


def _insert_sums(nir: Any, g: Any, names: list[str], preds: dict[str, list[str]]) -> set[str]:
    """NIR sums the inputs of a node with several incoming edges; eventsp says so with an
    explicit :class:`Add`. Insert one before each such node (in place); return their names."""
    sums = set()
    for name in list(names):
        raw = g.nodes[name]
        if len(preds[name]) < 2 or (isinstance(raw, nir.Scale) and _is_unit(raw.scale)):
            continue
        sum_name = f"{name}.sum"
        while sum_name in g.nodes or sum_name in sums:
            sum_name += "_"
        names.insert(names.index(name), sum_name)
        preds[sum_name], preds[name] = preds[name], [sum_name]
        sums.add(sum_name)
    return sums


def _is_unit(scale: Any) -> bool:
    return bool(np.all(_arr(scale) == 1.0))


def _check_dt(dt: float) -> None:
    if not (isinstance(dt, int | float) and math.isfinite(dt) and dt > 0):
        raise NIRConversionError(f"dt is {dt!r}; expected a time step in seconds > 0")


def _safe_name(name: str) -> str:
    return str(name).replace("/", ".")


def _order(g: Any) -> list[str]:
    """Node names in topological order (NIR edge lists come in any order)."""
    names = list(g.nodes)
    indegree = {n: 0 for n in names}
    for a, b in g.edges:
        if a not in indegree or b not in indegree:
            raise NIRConversionError(f"NIR edge ({a!r}, {b!r}) names a node that does not exist")
        indegree[b] += 1
    ready = [n for n in names if indegree[n] == 0]
    order = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for a, b in g.edges:
            if a == n:
                indegree[b] -= 1
                if indegree[b] == 0:
                    ready.append(b)
    if len(order) != len(names):
        cyclic = sorted(set(names) - set(order))
        raise NIRConversionError(
            f"the NIR graph has a cycle through {cyclic} (a recurrent layer); eventsp runs "
            "feed-forward graphs only"
        )
    return order


def _meta(raw: Any) -> dict[str, Any]:
    """The node's eventsp.* metadata with bytes (from HDF5 files) decoded to str."""
    out = {}
    for key, value in (getattr(raw, "metadata", None) or {}).items():
        if isinstance(key, str) and key.startswith(PREFIX):
            if isinstance(value, np.ndarray | np.generic) and np.ndim(value) == 0:
                value = value.item()  # HDF5 gives numpy scalars
            if isinstance(value, bytes):
                value = value.decode("utf-8")  # and bytes for strings
            out[key[len(PREFIX) :]] = value
    return out


def _arr(value: Any) -> np.ndarray:
    """A float32 array from numpy, torch (without importing it) or Python numbers."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def _uniform(name: str, field: str, value: Any) -> float:
    arr = np.asarray(value, dtype=np.float64).ravel()
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise NIRConversionError(f"NIR node {name!r} has {field}={arr!r}; expected finite values")
    if not np.allclose(arr, arr[0], rtol=1e-6, atol=0.0):
        raise NIRConversionError(
            f"NIR node {name!r} has {field} varying over neurons ({arr.min():g}..{arr.max():g}); "
            "eventsp neurons have one value per layer, so give the layer one value"
        )
    return float(arr[0])


def _quant(raw: Any) -> dict[str, Any]:
    meta = _meta(raw)
    if "quant_bits" in meta:
        return {"quant_bits": int(meta["quant_bits"]), "quant_scale": float(meta["quant_scale"])}
    return {}


def _input_shape(
    g: Any, name: str, raw: Any, override: tuple[int, ...] | None
) -> tuple[tuple, bool]:
    shape = tuple(int(v) for v in np.asarray(raw.input_type["input"]).ravel())
    if override is not None:
        return tuple(int(v) for v in override), len(shape) == len(override) + 1
    consumers = [g.nodes[b] for a, b in g.edges if a == name]
    nir = _nir()
    want = None
    for node in consumers:
        if isinstance(node, nir.Affine | nir.Linear):
            want = 1
        elif isinstance(node, nir.Conv2d | nir.AvgPool2d | nir.SumPool2d):
            want = 3
    if want is not None and len(shape) == want + 1 and shape[0] == 1:
        return shape[1:], True
    return shape, False


def _import_node(nir, name, raw, in_shapes, batched, dt, tau_scale, nodes, preds) -> Node:
    meta = _meta(raw)
    kind = meta.get("type")
    if kind is not None:
        node = _import_extended(kind, name, raw, meta)
        if node is not None:
            return node
    if isinstance(raw, nir.Affine | nir.Linear):
        bias = _arr(raw.bias) if isinstance(raw, nir.Affine) and meta.get("has_bias", 1) else None
        weight, kw = _weights(raw, meta)
        return Dense(weight, bias, **kw)
    if isinstance(raw, nir.Conv2d):
        if np.any(np.asarray(raw.dilation) != 1):
            raise NIRConversionError(
                f"NIR Conv2d {name!r} has dilation {raw.dilation}; eventsp needs 1"
            )
        weight, kw = _weights(raw, meta)
        padding = raw.padding
        if isinstance(padding, str):
            padding = _str_padding(name, padding, weight.shape[-2:], raw.stride)
        bias = _arr(raw.bias) if meta.get("has_bias", 1) else None
        return Conv2d(
            weight,
            bias,
            stride=_pair(raw.stride),
            padding=_pair(padding),
            groups=int(raw.groups),
            **kw,
        )
    if isinstance(raw, nir.AvgPool2d | nir.SumPool2d):
        if np.any(np.asarray(raw.padding) != 0):
            raise NIRConversionError(
                f"NIR {type(raw).__name__} {name!r} has padding {raw.padding}; eventsp pools "
                "without padding, so pad in the layer before it"
            )
        cls = AvgPool2d if isinstance(raw, nir.AvgPool2d) else SumPool2d
        return cls(kernel=_pair(raw.kernel_size), stride=_pair(raw.stride))
    if isinstance(raw, nir.Flatten):
        start = 1 if batched else 0
        ndim = len(in_shapes[0]) + start if in_shapes else 0
        if raw.start_dim != start or raw.end_dim not in (-1, ndim - 1):
            raise NIRConversionError(
                f"NIR Flatten {name!r} flattens dims {raw.start_dim}..{raw.end_dim}; eventsp "
                "flattens every per-sample axis"
            )
        return Flatten()
    if isinstance(raw, nir.Scale) and _is_unit(raw.scale):
        return Add() if len(in_shapes) > 1 else Identity()
    if isinstance(raw, nir.IF | nir.LIF):
        return _neuron(nir, name, raw, meta, dt, tau_scale, nodes, preds)
    if isinstance(raw, nir.LI):
        return _leaky_integrator(name, raw, in_shapes, dt, tau_scale, nodes, preds)
    raise NIRConversionError(
        f"NIR node {name!r} is a {type(raw).__name__}, which eventsp cannot run; supported are "
        "Input, Output, Affine, Linear, Scale(1), Conv2d, AvgPool2d, SumPool2d, Flatten, IF, LIF "
        "and LI"
    )


def _import_extended(kind: str, name: str, raw: Any, meta: dict[str, Any]) -> Node | None:
    """Nodes exported with eventsp.* metadata; ``None`` for those read as plain NIR."""
    if kind == "IF" and meta.get("reset") == "subtract":
        return IF(threshold=_uniform(name, "v_threshold", _arr(raw.v_threshold)))
    if kind == "ReLU":
        return ReLU()
    if kind == "Identity":
        return Identity()
    if kind == "Add":
        return Add()
    if kind == "MultiSpike":
        return MultiSpike(dt=float(meta["dt"]))
    if kind == "Readout":
        return Readout(mode=str(meta["mode"]))
    if kind == "LMUMemory":
        return LMUMemory(
            order=int(meta["order"]),
            theta=float(meta["theta"]),
            A_d=_arr(meta["A_d"]),
            B_d=_arr(meta["B_d"]),
        )
    if kind == "CausalConv1d":
        weight, kw = _weights(raw, meta, _arr(meta["weight"]))
        bias = _arr(raw.bias) if meta.get("has_bias", 1) else None
        return CausalConv1d(weight, bias, dilation=int(meta["dilation"]), **kw)
    return None


def _weights(raw: Any, meta: dict[str, Any], weight: np.ndarray | None = None) -> tuple:
    weight = _arr(raw.weight) if weight is None else weight
    if "weight_bits" not in meta:
        return weight, {}
    bits, scale = int(meta["weight_bits"]), float(meta["weight_scale"])
    dtype = np.int8 if bits <= 8 else np.int16
    integer = np.rint(weight.astype(np.float64) / scale).astype(dtype)
    shift = int(meta.get("acc_shift", 0))
    return integer, {"weight_bits": bits, "weight_scale": scale, "acc_shift": shift}


def _pair(value: Any) -> tuple[int, int]:
    arr = np.asarray(value).ravel()
    return (int(arr[0]), int(arr[0])) if arr.size == 1 else (int(arr[0]), int(arr[1]))


def _str_padding(name: str, padding: str, kernel: tuple, stride: Any) -> tuple[int, int]:
    if padding == "valid":
        return (0, 0)
    if padding == "same" and _pair(stride) == (1, 1) and all(k % 2 for k in kernel):
        return (kernel[0] // 2, kernel[1] // 2)
    raise NIRConversionError(
        f"NIR Conv2d {name!r} has padding {padding!r} with kernel {tuple(kernel)}; eventsp pads "
        "symmetrically: use 'valid', or 'same' with odd kernels and stride 1"
    )


def _neuron(nir, name, raw, meta, dt, tau_scale, nodes, preds) -> Node:
    threshold = _uniform(name, "v_threshold", _arr(raw.v_threshold))
    v_reset = _arr(raw.v_reset if raw.v_reset is not None else 0.0)
    if np.any(v_reset != 0):
        raise NIRConversionError(
            f"NIR node {name!r} resets to v_reset={v_reset.ravel()[:3]}...; eventsp neurons reset "
            "to 0 (shift v_threshold and v_leak by -v_reset to use it)"
        )
    r = _uniform(name, "r", _arr(raw.r))
    if isinstance(raw, nir.IF):
        decay, gain, leak = 1.0, r, 0.0
    else:
        step = _euler_step(name, raw, dt, tau_scale)
        decay, gain = 1.0 - step, r * step
        leak = _uniform(name, "v_leak", _arr(raw.v_leak)) / r if r else 0.0
    if not gain > 0:
        raise NIRConversionError(f"NIR node {name!r} has input gain {gain:g}; expected > 0")
    if abs(gain - 1.0) < 1e-5:  # float32 round-off of an exporter's r = tau/dt
        gain = 1.0
    if leak != 0.0:
        _add_leak(name, leak, nodes, preds)
    return LIF(decay=decay, threshold=threshold / gain)


def _euler_step(name: str, raw: Any, dt: float, tau_scale: float) -> float:
    """``dt / tau``: the fraction of the way to its target a neuron moves in one step."""
    tau = _uniform(name, "tau", _arr(raw.tau)) / tau_scale
    step = dt / tau
    if not 0 < step <= 1:
        raise NIRConversionError(
            f"NIR {type(raw).__name__} {name!r} has tau={tau:g} s, so one step of dt={dt:g} s "
            f"decays by dt/tau={step:g}, outside (0, 1]; pass the dt the model was trained "
            "with, and time_convention='norse-1.1' for graphs written by Norse up to 1.1 "
            "(their tau is dt/tau_mem_inv)"
        )
    return step


def _leaky_integrator(name, raw, in_shapes, dt, tau_scale, nodes, preds) -> Node:
    """NIR ``LI`` (non-spiking): ``v <- (1 - dt/tau) v + (r dt/tau) I``, which is exactly an
    order-1 :class:`LMUMemory` with ``A_d = [[1 - dt/tau]]``, ``B_d = [r dt/tau]``."""
    if len(in_shapes[0]) != 1:
        raise NIRConversionError(
            f"NIR LI {name!r} has input shape {in_shapes[0]}; eventsp's leaky integrator (an "
            "order-1 LMUMemory) takes vectors, so flatten before it"
        )
    step = _euler_step(name, raw, dt, tau_scale)
    r = _uniform(name, "r", _arr(raw.r))
    leak = _uniform(name, "v_leak", _arr(raw.v_leak))
    if leak != 0.0:
        if r == 0:
            raise NIRConversionError(f"NIR LI {name!r} has r=0 and v_leak={leak:g}")
        _add_leak(name, leak / r, nodes, preds)
    return LMUMemory(
        order=1,
        theta=1.0 / step,
        A_d=np.array([[1.0 - step]], np.float32),
        B_d=np.array([r * step], np.float32),
    )


def _add_leak(name: str, leak: float, nodes: dict[str, Node], preds: dict[str, list]) -> None:
    """Fold a constant input ``v_leak / r`` per step into the bias of the synaptic node before."""
    (before,) = preds[name] if len(preds[name]) == 1 else (None,)
    node = nodes.get(_safe_name(before)) if before is not None else None
    consumers = [b for b, ps in preds.items() if before in ps]
    if not isinstance(node, Dense | Conv2d) or consumers != [name]:
        raise NIRConversionError(
            f"NIR node {name!r} has v_leak != 0 but no Affine or Conv2d of its own in front to "
            "carry it as a bias; set v_leak to 0 or add the layer"
        )
    bias = np.zeros(node.weight.shape[0], np.float32) if node.bias is None else node.bias
    nodes[_safe_name(before)] = _replace(node, bias=(bias + np.float32(leak)).astype(np.float32))


def _replace(node: Node, **changes: Any) -> Node:
    import dataclasses

    return dataclasses.replace(node, **changes)
