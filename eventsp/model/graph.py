"""The model graph: validation, topological order and shape inference over named nodes.

The node dataclasses and their type registry live in ``eventsp.model.nodes`` (the neuron family
in ``eventsp.model.neurons``) and are re-exported here, so ``from eventsp.model.graph import
Dense, Graph`` keeps working.

A :class:`Graph` is a directed acyclic graph of named nodes. Shapes are per sample, without the
batch axis: a frame entering ``Input(shape=(2, 34, 34))`` is ``(batch, 2, 34, 34)`` at run time.
Exactly one :class:`Input` and one :class:`Output`; every other node has one predecessor,
except :class:`Add`, which has two or more (in the order their edges are listed).

Serialisation splits each node into a JSON-able spec and its arrays::

    spec, arrays = node.to_dict()      # {"type": "Dense", "bias": "bias", ...}, {"weight": ...}
    node = node_from_dict(spec, arrays)

An array field appears in the spec as its own name (or ``None`` when absent) and in ``arrays``
under that name. :meth:`Graph.to_dict` prefixes array names with ``"<node>/"``.

Fixed-point fields (synaptic nodes :class:`Dense`, :class:`Conv2d`, :class:`CausalConv1d`):
``weight_bits`` (2..8) and ``weight_scale`` (> 0). When set, ``weight`` holds integers (int8 or
int16) in ``[-2**(bits-1), 2**(bits-1) - 1]`` and the real weight is ``weight * weight_scale``.
Biases and thresholds stay real numbers; the fixed-point runtime derives their integer forms
(see ``eventsp.runtime.fixed``). ``acc_shift`` (0..16, default 0, only with quantised weights)
gives the fixed-point accumulator that many extra fractional bits: ``acc = (sum(q_w * x) <<
acc_shift) + rnd(bias / s_acc)``, ``s_acc = weight_scale * s_in / 2**acc_shift``; float mode
ignores it, and ``to_dict`` leaves the default out, so older files are unchanged.
:class:`Input` may carry ``quant_bits``/``quant_scale``, which say how an analog input is
quantised in fixed-point mode.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from eventsp.model.nodes import (
    IF,
    LIF,
    NODE_TYPES,
    Add,
    AvgPool2d,
    CausalConv1d,
    Conv2d,
    Dense,
    Flatten,
    GraphError,
    Identity,
    Input,
    LMUMemory,
    MultiSpike,
    Node,
    Output,
    Readout,
    ReLU,
    Shape,
    SumPool2d,
    node_from_dict,
)

__all__ = [
    "IF",
    "LIF",
    "NODE_TYPES",
    "Add",
    "AvgPool2d",
    "CausalConv1d",
    "Conv2d",
    "Dense",
    "Flatten",
    "Graph",
    "GraphError",
    "Identity",
    "Input",
    "LMUMemory",
    "MultiSpike",
    "Node",
    "Output",
    "ReLU",
    "Readout",
    "SumPool2d",
    "node_from_dict",
]


@dataclass(frozen=True, eq=False)
class Graph:
    """Named nodes and directed edges ``(source, target)``; validated on construction."""

    nodes: dict[str, Node]
    edges: list[tuple[str, str]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", dict(self.nodes))
        object.__setattr__(self, "edges", [(str(a), str(b)) for a, b in self.edges])
        for name, node in self.nodes.items():
            if not isinstance(name, str) or not name or "/" in name:
                raise GraphError(f"node name {name!r} must be a non-empty string without '/'")
            if not isinstance(node, Node):
                raise GraphError(f"node {name!r} is a {type(node).__name__}, not a graph Node")
        for a, b in self.edges:
            for end in (a, b):
                if end not in self.nodes:
                    raise GraphError(f"edge ({a!r}, {b!r}) names {end!r}, which is not a node")
        if len(set(self.edges)) != len(self.edges):
            raise GraphError("edges are listed more than once; list each edge once")
        for cls in (Input, Output):
            found = [n for n, node in self.nodes.items() if type(node) is cls]
            if len(found) != 1:
                raise GraphError(f"a graph needs exactly one {cls.__name__} node, found {found}")
        object.__setattr__(self, "_order", self._topological())
        object.__setattr__(self, "_shapes", self._infer_shapes())

    @property
    def input_name(self) -> str:
        return next(n for n, node in self.nodes.items() if type(node) is Input)

    @property
    def output_name(self) -> str:
        return next(n for n, node in self.nodes.items() if type(node) is Output)

    def predecessors(self, name: str) -> list[str]:
        """Sources of the edges into ``name``, in edge order."""
        return [a for a, b in self.edges if b == name]

    def successors(self, name: str) -> list[str]:
        return [b for a, b in self.edges if a == name]

    def order(self) -> list[str]:
        """Node names in a topological order (deterministic: follows node and edge order)."""
        return list(self._order)

    def shapes(self) -> dict[str, Shape]:
        """Per-sample output shape of every node."""
        return dict(self._shapes)

    def _topological(self) -> list[str]:
        indegree = {n: len(self.predecessors(n)) for n in self.nodes}
        ready = [n for n in self.nodes if indegree[n] == 0]
        order: list[str] = []
        while ready:
            name = ready.pop(0)
            order.append(name)
            for succ in self.successors(name):
                indegree[succ] -= 1
                if indegree[succ] == 0:
                    ready.append(succ)
        if len(order) != len(self.nodes):
            cyclic = sorted(set(self.nodes) - set(order))
            raise GraphError(f"the graph has a cycle through {cyclic}; graphs must be acyclic")
        for name in order:
            if type(self.nodes[name]) is not Output and not self.successors(name):
                raise GraphError(f"node {name!r} feeds nothing; connect it or remove it")
            if type(self.nodes[name]) is not Input and not self.predecessors(name):
                raise GraphError(f"node {name!r} has no input; connect it or remove it")
        return order

    def _infer_shapes(self) -> dict[str, Shape]:
        shapes: dict[str, Shape] = {}
        for name in self._order:
            node = self.nodes[name]
            try:
                shapes[name] = node.out_shape([shapes[p] for p in self.predecessors(name)])
            except GraphError as exc:
                raise GraphError(f"node {name!r}: {exc}") from None
        return shapes

    def to_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(spec, arrays)``: spec is JSON-able; array names are ``"<node>/<field>"``."""
        spec_nodes: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {}
        for name, node in self.nodes.items():
            spec, node_arrays = node.to_dict()
            for field, arr in node_arrays.items():
                spec[field] = f"{name}/{field}"
                arrays[f"{name}/{field}"] = arr
            spec_nodes[name] = spec
        return {"nodes": spec_nodes, "edges": [list(e) for e in self.edges]}, arrays

    @classmethod
    def from_dict(cls, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> Graph:
        if not isinstance(spec, dict) or set(spec) != {"nodes", "edges"}:
            keys = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
            raise GraphError(f"graph spec has {keys}; expected exactly 'nodes' and 'edges'")
        nodes = {}
        for name, node_spec in spec["nodes"].items():
            try:
                nodes[name] = node_from_dict(node_spec, arrays)
            except GraphError as exc:
                raise GraphError(f"node {name!r}: {exc}") from None
        edges = [_edge(e) for e in spec["edges"]]
        return cls(nodes, edges)

    @classmethod
    def chain(cls, nodes: Iterable[tuple[str, Node]]) -> Graph:
        """A sequential graph from ``(name, node)`` pairs, first an Input, last an Output."""
        items = list(nodes)
        return cls(dict(items), [(a, b) for (a, _), (b, _) in itertools.pairwise(items)])


def _edge(value: Any) -> tuple[str, str]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise GraphError(f"edge {value!r} must be a pair [source, target]")
    return (str(value[0]), str(value[1]))
