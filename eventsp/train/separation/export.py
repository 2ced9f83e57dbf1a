"""Export a trained :class:`SeparationNet` to the runtime graph and an ``.esp`` file.

The graph is the mask estimator, one STFT frame per runtime step::

    input (129,) raw log|X_t| -> inp Dense (H,)  [standardisation folded in]
      -> relu0 -> spikes0 MultiSpike(dt)
      -> conv{i} CausalConv1d(H, H, k, dilation d_i) -> relu{i+1} -> spikes{i+1}   (each block)
      -> out Dense (2 * 129,) -> Output "logits"

With ``spiking=False`` the MultiSpike nodes are left out (the ANN). ``metadata["frontend"]``
records the STFT the application must compute around the graph (``kind: "stft"``); the masks
are ``sigmoid(logits)`` reshaped ``(2, 129)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eventsp.model import CausalConv1d, Dense, Graph, Input, MultiSpike, Output, ReLU
from eventsp.model.format import save_model
from eventsp.train.separation.model import LOG_FLOOR, SeparationNet, SepConfig

__all__ = ["export_checkpoint", "export_model", "frontend_metadata", "to_graph"]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


def to_graph(model: SeparationNet, spiking: bool) -> Graph:
    """The runtime graph of ``model`` (module docstring)."""
    c = model.config
    mean, std = _np(model.feat_mean), _np(model.feat_std)
    w = _np(model.inp.weight) / std
    b = _np(model.inp.bias) - w @ mean
    nodes: dict[str, Any] = {
        "input": Input(shape=(c.n_freq,)),
        "inp": Dense(weight=w.astype(np.float32), bias=b.astype(np.float32)),
    }
    edges: list[tuple[str, str]] = [("input", "inp")]
    last = "inp"

    def neuron(i: int) -> None:
        nonlocal last
        nodes[f"relu{i}"] = ReLU()
        edges.append((last, f"relu{i}"))
        last = f"relu{i}"
        if spiking:
            nodes[f"spikes{i}"] = MultiSpike(dt=float(c.dt))
            edges.append((last, f"spikes{i}"))
            last = f"spikes{i}"

    neuron(0)
    for i, conv in enumerate(model.convs):
        nodes[f"conv{i}"] = CausalConv1d(
            weight=_np(conv.weight).astype(np.float32),
            bias=_np(conv.bias).astype(np.float32),
            dilation=int(conv.dilation[0]),
        )
        edges.append((last, f"conv{i}"))
        last = f"conv{i}"
        neuron(i + 1)
    nodes["out"] = Dense(
        weight=_np(model.out.weight).astype(np.float32), bias=_np(model.out.bias).astype(np.float32)
    )
    nodes["logits"] = Output(shape=(2 * c.n_freq,))
    edges += [(last, "out"), ("out", "logits")]
    return Graph(nodes, edges)


def frontend_metadata(model: SeparationNet) -> dict[str, Any]:
    c = model.config
    return {
        "kind": "stft",
        "n_fft": c.n_fft,
        "hop_length": c.hop,
        "window": "sqrt_hann",
        "log_floor": LOG_FLOOR,
        "sources": 2,
    }


def export_model(
    path: str | os.PathLike, model: SeparationNet, spiking: bool, metadata: dict[str, Any]
) -> Path:
    """Write ``model`` as an ``.esp`` file with task ``"separate"``."""
    c = model.config
    meta = dict(metadata)
    meta.update(
        task="separate",
        sample_rate_hz=c.sample_rate,
        frontend=frontend_metadata(model),
        latency_s=c.latency_s,
        spiking=spiking,
        separation={
            "hidden": c.hidden,
            "kernel": c.kernel,
            "dilations": list(c.dilations),
            "dt": c.dt if spiking else None,
        },
    )
    return save_model(path, to_graph(model, spiking), meta)


def export_checkpoint(
    checkpoint: str | os.PathLike,
    path: str | os.PathLike,
    config: SepConfig,
    spiking: bool,
    metadata: dict[str, Any],
) -> Path:
    """Export the model in a trainer checkpoint (``RUN/last.pt``) built with ``config``."""
    from eventsp.train.loop import load_checkpoint

    model = SeparationNet(config)
    load_checkpoint(checkpoint, model=model, restore_rng=False)
    return export_model(path, model, spiking, metadata)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(description="export a separation checkpoint to .esp")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--hidden", type=int, default=192)
    p.add_argument("--dilations", default="1,2,4,8,16,32")
    p.add_argument("--dt", type=float, default=8.0)
    p.add_argument("--ann", action="store_true", help="export without spiking neurons")
    p.add_argument("--metadata", default="{}", help="JSON merged into the metadata")
    args = p.parse_args(argv)
    dilations = tuple(int(d) for d in args.dilations.split(","))
    config = SepConfig(hidden=args.hidden, dilations=dilations, dt=args.dt)
    meta = json.loads(args.metadata)
    print(export_checkpoint(args.checkpoint, args.out, config, not args.ann, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
