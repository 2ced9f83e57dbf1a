"""Weight quantisation shared by the fixed-point runtime and the trainers (numpy only).

``quantize_weights(w, bits)`` is symmetric, per layer::

    scale = max|w| / (2**(bits-1) - 1)          (1.0 when w is all zeros)
    q     = clip(floor(w / scale + 0.5), -(2**(bits-1) - 1), 2**(bits-1) - 1)   as int8

so ``q * scale`` approximates ``w``. All rounding in eventsp's fixed-point mode is
``floor(v + 0.5)`` (round half up), computed in float64; see ``eventsp.runtime.fixed``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from eventsp.model import graph as g

__all__ = ["quantize_graph", "quantize_weights", "round_half_up"]


def round_half_up(v: np.ndarray | float) -> np.ndarray:
    """``floor(v + 0.5)`` in float64 (the one rounding rule of the fixed-point mode)."""
    return np.floor(np.asarray(v, dtype=np.float64) + 0.5)


def quantize_weights(w: np.ndarray, bits: int) -> tuple[np.ndarray, float]:
    """Symmetric per-layer quantisation of ``w`` to ``bits`` (2..8): ``(q int8, scale)``."""
    if int(bits) != bits or not 2 <= bits <= 8:
        raise ValueError(f"bits is {bits!r}; expected an int in 2..8")
    w = np.asarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError("weights hold NaN or inf; quantise finite weights")
    top = 2 ** (int(bits) - 1) - 1
    peak = float(np.max(np.abs(w))) if w.size else 0.0
    scale = peak / top if peak > 0 else 1.0
    q = np.clip(round_half_up(w / scale), -top, top).astype(np.int8)
    return q, scale


def quantize_graph(graph: g.Graph, bits: int) -> g.Graph:
    """A copy of ``graph`` with every Dense, Conv2d and CausalConv1d weight quantised."""
    nodes = {}
    for name, node in graph.nodes.items():
        if isinstance(node, g.Dense | g.Conv2d | g.CausalConv1d) and not node.quantized:
            q, scale = quantize_weights(node.weight, bits)
            node = dataclasses.replace(node, weight=q, weight_bits=bits, weight_scale=scale)
        nodes[name] = node
    return g.Graph(nodes, graph.edges)
