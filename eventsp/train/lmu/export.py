"""Export a trained :class:`HybridLMU` to the streaming runtime's graph and ``.esp`` file.

The graph runs the network of ``eventsp.train.lmu.model`` one frame at a time::

    input (F,) -> encoder Dense (D,) -> LMUMemory (D*order,) -> memory_to_hidden Dense (H,)
    input (F,) -> input_to_hidden Dense (H,)          [only with input_to_hidden]
    Add -> ReLU -> MultiSpike(dt) -> output Dense (classes,) -> Readout(last|mean) -> Output

With ``hidden2 > 0`` a second layer ``hidden2 Dense -> ReLU -> MultiSpike(dt)`` sits between
the first ``MultiSpike`` and the output Dense; with ``hidden3 > 0`` a third one
(``hidden3``, ``relu3``, ``spikes3``) follows it. With ``memory2_d > 0`` (a stacked LMU) the
second layer also reads a second memory of the first layer's output::

    spikes -> encoder2 Dense (D2,) -> memory2 LMUMemory (D2*order2,) -> memory2_to_hidden Dense
    spikes -> hidden2 Dense;  Add (hidden2_sum) -> relu2 -> spikes2

``MultiSpike`` is the diffused-error quantizer (``n = floor(v)``, ``out = n / dt``); with
``dt=None`` it is left out (the non-spiking network). A model trained on standardised
features ``(x - mean) / std`` is exported for raw features by folding the standardisation
into the two Dense layers that read the input (``W / std`` and a bias ``-W mean / std``).
The memory's ``A_d``/``B_d`` are the trainer's own float64 ZOH matrices, rounded once to
float32.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eventsp.model import (
    Add,
    Dense,
    Graph,
    Input,
    LMUMemory,
    MultiSpike,
    Output,
    Readout,
    ReLU,
)
from eventsp.model.format import save_model
from eventsp.train.lmu.memory import legendre_ab, zoh
from eventsp.train.lmu.model import HybridLMU

__all__ = ["export_model", "to_graph"]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy().copy()


def _fold(
    weight: torch.Tensor, bias: torch.Tensor | None, mean: np.ndarray | None, std: np.ndarray | None
) -> Dense:
    """``W (x - mean) / std + b`` as one Dense on raw ``x``."""
    w = weight.detach().cpu().to(torch.float64).numpy()
    b = np.zeros(w.shape[0]) if bias is None else bias.detach().cpu().to(torch.float64).numpy()
    if mean is None and std is None:
        return Dense(
            weight=w.astype(np.float32), bias=None if bias is None else b.astype(np.float32)
        )
    mean = np.zeros(w.shape[1]) if mean is None else np.asarray(mean, np.float64)
    std = np.ones(w.shape[1]) if std is None else np.asarray(std, np.float64)
    if mean.shape != (w.shape[1],) or std.shape != (w.shape[1],) or np.any(std <= 0):
        raise ValueError(
            f"input mean {mean.shape} and std {std.shape} must be ({w.shape[1]},) with std > 0"
        )
    folded = w / std
    return Dense(weight=folded.astype(np.float32), bias=(b - folded @ mean).astype(np.float32))


def _memory(order: int, theta: float) -> LMUMemory:
    """A Legendre memory node with the trainer's own float64 ZOH matrices, rounded once."""
    A_d, B_d = zoh(*legendre_ab(order, theta))
    return LMUMemory(order=order, theta=theta, A_d=_np(A_d), B_d=_np(B_d))


def to_graph(
    model: HybridLMU,
    dt: float | None,
    *,
    input_mean: np.ndarray | None = None,
    input_std: np.ndarray | None = None,
) -> Graph:
    """The runtime graph of ``model`` with the quantizer at ``dt`` (None: non-spiking).

    ``input_mean``/``input_std`` ``(input_size,)``: the standardisation the model was trained
    with, folded in so the graph takes raw features.
    """
    c = model.config
    nodes: dict[str, Any] = {
        "input": Input(shape=(c.input_size,)),
        "encoder": _fold(model.encoder.weight, None, input_mean, input_std),
        "memory": _memory(c.order, c.theta),
        "memory_to_hidden": Dense(
            weight=_np(model.memory_to_hidden.weight), bias=_np(model.memory_to_hidden.bias)
        ),
    }
    edges = [("input", "encoder"), ("encoder", "memory"), ("memory", "memory_to_hidden")]
    if c.input_to_hidden:
        nodes["input_to_hidden"] = _fold(model.input_to_hidden.weight, None, input_mean, input_std)
        nodes["hidden_sum"] = Add()
        edges += [
            ("input", "input_to_hidden"),
            ("memory_to_hidden", "hidden_sum"),
            ("input_to_hidden", "hidden_sum"),
        ]
        last = "hidden_sum"
    else:
        last = "memory_to_hidden"
    nodes["relu"] = ReLU()
    edges.append((last, "relu"))
    last = "relu"
    if dt is not None:
        nodes["spikes"] = MultiSpike(dt=dt)
        edges.append((last, "spikes"))
        last = "spikes"
    for k, layer in enumerate(model.deeper_layers(), start=2):
        nodes[f"hidden{k}"] = Dense(weight=_np(layer.weight), bias=_np(layer.bias))
        nodes[f"relu{k}"] = ReLU()
        edges.append((last, f"hidden{k}"))
        if k == 2 and model.encoder2 is not None:
            nodes["encoder2"] = Dense(weight=_np(model.encoder2.weight), bias=None)
            nodes["memory2"] = _memory(c.order2, c.theta2)
            nodes["memory2_to_hidden"] = Dense(
                weight=_np(model.memory2_to_hidden.weight), bias=None
            )
            nodes["hidden2_sum"] = Add()
            edges += [
                (last, "encoder2"),
                ("encoder2", "memory2"),
                ("memory2", "memory2_to_hidden"),
                ("hidden2", "hidden2_sum"),
                ("memory2_to_hidden", "hidden2_sum"),
                ("hidden2_sum", "relu2"),
            ]
        else:
            edges.append((f"hidden{k}", f"relu{k}"))
        last = f"relu{k}"
        if dt is not None:
            nodes[f"spikes{k}"] = MultiSpike(dt=dt)
            edges.append((last, f"spikes{k}"))
            last = f"spikes{k}"
    nodes["output"] = Dense(weight=_np(model.output.weight), bias=_np(model.output.bias))
    nodes["readout"] = Readout(mode=c.readout)
    nodes["logits"] = Output(shape=(c.classes,))
    edges += [(last, "output"), ("output", "readout"), ("readout", "logits")]
    return Graph(nodes, edges)


def export_model(
    path: str | os.PathLike,
    model: HybridLMU,
    dt: float | None,
    metadata: dict[str, Any],
    *,
    input_mean: np.ndarray | None = None,
    input_std: np.ndarray | None = None,
) -> Path:
    """Write ``model`` as an ``.esp`` file; ``metadata`` gains the LMU's configuration."""
    c = model.config
    meta = dict(metadata)
    meta.setdefault("time_steps", c.steps)
    meta["lmu"] = {
        "input_size": c.input_size,
        "memory_d": c.memory_d,
        "order": c.order,
        "theta": c.theta,
        "hidden": c.hidden,
        "classes": c.classes,
        "input_to_hidden": c.input_to_hidden,
        "hidden2": c.hidden2,
        "hidden3": c.hidden3,
        "memory2_d": c.memory2_d,
        "order2": c.order2,
        "theta2": c.theta2,
        "readout": c.readout,
        "dt": dt,
    }
    graph = to_graph(model, dt, input_mean=input_mean, input_std=input_std)
    return save_model(path, graph, meta)
