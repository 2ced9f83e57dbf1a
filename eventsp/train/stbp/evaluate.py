"""Evaluate an exported event classifier on the held-out N-MNIST split, on the RUNTIME.

::

    python -m eventsp.train.stbp.evaluate eventsp/models/nmnist_stbp.esp [--data ../shared/data]

Streams each held-out recording (:func:`eventsp.train.data.events.nmnist_small_split`,
``"test"``, never used for training or model selection) through
:class:`eventsp.apps.classify_events.EventClassifier` in packets and prints one JSON object:
final accuracy, accuracy of the early answers, how many recordings got one and when,
effective synaptic operations per recording (the runtime's counters) and throughput. No torch.

``--bundle DST`` also writes the model to ``DST`` with those test figures in its metadata
(``accuracy.test_heldout_runtime``, ``effective_synops_per_recording``): how the bundled
``eventsp/models/nmnist_stbp.esp`` is made, once the model was chosen by
:mod:`eventsp.train.stbp.validate` (validation only).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from eventsp.apps.classify_events import EventClassifier
from eventsp.events import init_order, open_recording, order_packet
from eventsp.model.format import load_model, save_model
from eventsp.train.data.events import nmnist_small_split

__all__ = ["bundle", "evaluate_heldout", "main"]


def evaluate_heldout(
    model: str | Path, data: str | Path, split: str = "test", chunk_events: int = 1024
) -> dict:
    """Metrics of ``model`` on one split of the small N-MNIST set (see the module docstring)."""
    clf = EventClassifier(model)
    items = nmnist_small_split(Path(data) / "nmnist_small" / "train")[split]
    right = early_n = early_right = 0
    synops, decided = [], []
    start = time.perf_counter()
    for path, label in items:
        state, order = clf.init_state(), init_order()
        for packet in open_recording(path, chunk_events=chunk_events).packets():
            packet, order = order_packet(packet, order)
            state = clf.feed(packet, state)
        final, early, state = clf.finish(state)
        right += final.label == str(label)
        if early is not None:
            early_n += 1
            early_right += early.label == str(label)
        decided.append(early.decided_at_us if early is not None else final.decided_at_us)
        synops.append(clf.counters(state)[0]["effective_synops"])
    took = time.perf_counter() - start
    n = len(items)
    return {
        "model": str(model),
        "split": split,
        "recordings": n,
        "accuracy": right / n,
        "early_answers": early_n,
        "early_accuracy": early_right / early_n if early_n else None,
        "median_decision_us": float(np.median(decided)),
        "effective_synops_per_recording": float(np.mean(synops)),
        "time_steps": clf.time_steps,
        "window_us": clf.window_us,
        "recordings_per_s": n / took,
    }


def bundle(model: str | Path, dst: str | Path, result: dict) -> dict:
    """Write ``model`` to ``dst`` with the test figures of ``result`` (:func:`evaluate_heldout`,
    split ``"test"``) in its metadata; returns the new metadata."""
    if result["split"] != "test":
        raise ValueError(f"result is on split {result['split']!r}; bundle needs the test split")
    m = load_model(model)
    meta = json.loads(json.dumps(dict(m.metadata)))
    acc = meta.setdefault("accuracy", {})
    acc["test_heldout_runtime"] = result["accuracy"]
    acc["n_test"] = result["recordings"]
    acc["note"] = (
        f"held-out test split ({result['recordings']} recordings, never used for training or "
        "model selection), measured once on the eventsp runtime by eventsp.train.stbp.evaluate"
    )
    meta["effective_synops_per_recording"] = round(result["effective_synops_per_recording"], 2)
    save_model(dst, m.graph, meta)
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eventsp.train.stbp.evaluate")
    p.add_argument("model", type=Path)
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--split", default="test", choices=["test", "val", "train"])
    p.add_argument("--bundle", type=Path, default=None, help="write the model here with metrics")
    args = p.parse_args(argv)
    if args.bundle is not None and args.split != "test":
        p.error(f"--bundle records test figures; drop --split {args.split}")
    result = evaluate_heldout(args.model, args.data, args.split)
    print(json.dumps(result), flush=True)
    if args.bundle is not None:
        bundle(args.model, args.bundle, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
