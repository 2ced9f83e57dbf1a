"""Export a trained spiking ResNet to the runtime: fold tdBN into convolutions, build the graph.

Folding (eval-mode tdBN with running mean ``mu``, variance ``var``, weight ``lambda``, bias
``beta``, after a bias-free convolution ``W``)::

    s = lambda / sqrt(var + eps)
    W' = W * s[:, None, None, None],    b' = beta - mu * s

so ``conv(x; W', b') == tdBN(conv(x; W))`` exactly in real arithmetic. The graph mirrors
:class:`~eventsp.train.stbp.model.SpikingResNet` node for node; LIF nodes carry the names of
``model.spiking_layers()`` (e.g. ``stem_lif``, ``blocks_0_lif2``), so per-layer spike counts
of the trainer and the runtime can be compared by name. The output is ``Readout("mean")`` of
the last Dense layer's logits, the trainer's prediction.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eventsp.model.format import save_model
from eventsp.model.graph import (
    LIF,
    Add,
    AvgPool2d,
    Conv2d,
    Dense,
    Flatten,
    Graph,
    Input,
    Node,
    Output,
    Readout,
)
from eventsp.train.stbp import neurons
from eventsp.train.stbp.model import ConvBN, SpikingResNet

__all__ = ["export_model", "fold_conv_bn", "to_graph"]


def fold_conv_bn(unit: ConvBN) -> Conv2d:
    """The Conv2d node equal to ``unit`` (conv + eval-mode tdBN)."""
    conv, bn = unit.conv, unit.bn
    with torch.no_grad():
        w = conv.weight.detach().double()
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        weight = (w * scale[:, None, None, None]).float().numpy()
        bias = (bn.bias.double() - bn.running_mean.double() * scale).float().numpy()
    return Conv2d(
        weight=weight, bias=bias, stride=conv.stride, padding=conv.padding, groups=conv.groups
    )


def _lif(m: neurons.LIF) -> LIF:
    return LIF(decay=m.decay, threshold=m.threshold)


def _dense(fc: torch.nn.Linear) -> Dense:
    return Dense(weight=fc.weight.detach().float().numpy(), bias=fc.bias.detach().float().numpy())


def to_graph(model: SpikingResNet) -> Graph:
    """The runtime graph of ``model`` (its tdBN running statistics folded in)."""
    cfg = model.cfg
    nodes: dict[str, Node] = {}
    edges: list[tuple[str, str]] = []

    def add(name: str, node: Node, *sources: str) -> str:
        nodes[name] = node
        edges.extend((s, name) for s in sources)
        return name

    x = add("input", Input(shape=(cfg.in_channels, *cfg.input_size)))
    x = add("stem", fold_conv_bn(model.stem), x)
    x = add("stem_lif", _lif(model.stem_lif), x)
    if model.stem_pool is not None:
        x = add("stem_pool", AvgPool2d(kernel=cfg.stem_pool), x)
    for i, block in enumerate(model.blocks):
        p = f"blocks_{i}"
        y = add(f"{p}_conv1", fold_conv_bn(block.conv1), x)
        y = add(f"{p}_lif1", _lif(block.lif1), y)
        y = add(f"{p}_conv2", fold_conv_bn(block.conv2), y)
        short = (
            x if block.shortcut is None else add(f"{p}_shortcut", fold_conv_bn(block.shortcut), x)
        )
        y = add(f"{p}_add", Add(), y, short)
        x = add(f"{p}_lif2", _lif(block.lif2), y)
    if model.pool is not None:
        x = add("pool", AvgPool2d(kernel=model.feature_shape[1:]), x)
    x = add("flatten", Flatten(), x)
    if model.fc_hidden is not None:
        x = add("fc_hidden", _dense(model.fc_hidden), x)
        x = add("hidden_lif", _lif(model.hidden_lif), x)
    x = add("fc", _dense(model.fc), x)
    x = add("readout", Readout(mode="mean"), x)
    add("output", Output(shape=(cfg.classes,)), x)
    return Graph(nodes, edges)


def export_model(
    model: SpikingResNet,
    path: str | os.PathLike,
    *,
    labels: list[str],
    time_steps: int,
    window_us: int,
    sensor_size: tuple[int, int, int] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` as an ``.esp`` file for ``eventsp classify-events``.

    Metadata: ``task="classify-events"``, ``labels``, ``time_steps`` (windows the model was
    trained on), ``sensor_size`` ``[W, H, P]``, ``frontend`` (``{"kind": "count-frames",
    "window_us": ...}``, see :mod:`eventsp.apps.classify_events`), the architecture, ``extra``.
    """
    cfg = model.cfg
    if len(labels) != cfg.classes:
        raise ValueError(f"{len(labels)} labels for a model of {cfg.classes} classes")
    h, w = cfg.input_size
    meta: dict[str, Any] = {
        "task": "classify-events",
        "labels": [str(x) for x in labels],
        "time_steps": int(time_steps),
        "sensor_size": list(sensor_size or (w, h, cfg.in_channels)),
        "frontend": {"kind": "count-frames", "window_us": int(window_us), "layout": "TPHW"},
        "arch": cfg.to_dict(),
    }
    meta.update(extra or {})
    meta = _plain(meta)
    model.eval()
    return save_model(Path(path), to_graph(model), meta)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
