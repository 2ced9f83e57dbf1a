"""``eventsp classify-images``: classify images with a spiking model on the eventsp runtime.

The model (by default the bundled MNIST network trained by progressive tandem learning,
``eventsp/models/mnist_ptl.esp``) sees each image as the same input frame (raw pixel values
0..255) for ``T`` steps; the class is the argmax of the readout after the last step. The
last line printed is always ``accuracy=<fraction> T=<steps> synops_per_image=<n>``
(``accuracy=n/a`` when the file has no labels); ``--json`` first prints one JSON line per
image. Synaptic operations are the runtime's effective synops (spikes x fan-out, plus the
multiply-accumulates of the analog input layer).
"""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

import numpy as np

from eventsp.cli import UsageError

HELP = "classify images (.npz) with a spiking model on the runtime (default: bundled MNIST)"

DEFAULT_MODEL = "mnist_ptl.esp"


def default_model_path() -> Path:
    """The bundled MNIST model file."""
    return Path(str(resources.files("eventsp.models") / DEFAULT_MODEL))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--npz", type=Path, required=True, help="images: x_<split> (+ y_<split>)")
    parser.add_argument("--split", default="test", help="which split of the file (default: test)")
    parser.add_argument("--model", type=Path, default=None, help="an .esp model (default: MNIST)")
    parser.add_argument("--json", action="store_true", help="print one JSON line per image")
    parser.add_argument("--limit", type=int, default=None, help="classify the first N images")
    parser.add_argument("--batch", type=int, default=250, help="images run side by side")


def classify(net, images: np.ndarray, T: int, batch: int = 250):
    """Scores ``(N, classes)`` (the readout after T steps) and total effective synops."""
    scores = np.empty((len(images), *net.output_shape), np.float32)
    synops = 0.0
    for i in range(0, len(images), batch):
        x = images[i : i + batch].astype(np.float32)
        state = net.init_state(batch=len(x))
        outs, state = net.run(np.broadcast_to(x, (T, *x.shape)), state)
        scores[i : i + len(x)] = outs[-1]
        synops += sum(c["effective_synops"] for c in net.counters(state))
    return scores, synops


def run(args: argparse.Namespace) -> int:
    from eventsp.model.format import ModelFormatError, load_model
    from eventsp.runtime import Network
    from eventsp.train.data.images import read_images

    model_path = args.model or default_model_path()
    if not model_path.is_file():
        raise UsageError(f"model file {str(model_path)!r} does not exist; pass --model PATH")
    try:
        model = load_model(model_path)
    except ModelFormatError as exc:
        raise UsageError(f"cannot load {str(model_path)!r}: {exc}") from None
    meta = model.metadata
    if meta.get("task") != "classify-images":
        raise UsageError(
            f"{str(model_path)!r} is a {meta.get('task')!r} model; classify-images needs a "
            "'classify-images' model (e.g. one written by `eventsp train-ptl`)"
        )
    if args.batch < 1 or (args.limit is not None and args.limit < 1):
        raise UsageError(f"--batch {args.batch} and --limit {args.limit} must be >= 1")
    try:
        images, labels = read_images(args.npz, args.split)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if args.limit is not None:
        images = images[: args.limit]
        labels = None if labels is None else labels[: args.limit]
    net = Network(model.graph)
    if images.shape[1:] != tuple(net.input_shape):
        raise UsageError(
            f"images have shape {images.shape[1:]} (C, H, W) but the model takes "
            f"{tuple(net.input_shape)}; pass images of the model's size or another --model"
        )
    T = int(meta["T"])
    scores, synops = classify(net, images, T, args.batch)
    pred = scores.argmax(1)
    names = meta.get("labels")
    if args.json:
        for i, p in enumerate(pred):
            line = {"index": i, "class": int(p), "scores": [float(s) for s in scores[i]]}
            if names:
                line["label"] = names[int(p)]
            if labels is not None:
                line["true"] = int(labels[i])
            print(json.dumps(line))
    acc = "n/a" if labels is None else f"{float((pred == labels).mean()):.4f}"
    print(f"accuracy={acc} T={T} synops_per_image={synops / max(len(images), 1):.0f}")
    return 0
