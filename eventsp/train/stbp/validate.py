"""Rank trained checkpoints on the VALIDATION data only (never the held-out test split).

::

    python -m eventsp.train.stbp.validate runs/stbp-nmnist/best.pt runs/stbp-nmnist-ft3/best.pt

Prints one JSON object per checkpoint with the selection metrics of
:func:`eventsp.train.stbp.train.validate` (real validation split plus ``--val-sim`` simulated
MNIST-test recordings, cached under ``--cache``), best first. This is how runs are compared
and the bundled model is chosen; the test split is then evaluated once, on the chosen model,
with :mod:`eventsp.train.stbp.evaluate`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from eventsp.train import loop
from eventsp.train.stbp.model import ARCHS, build
from eventsp.train.stbp.train import parse_args as train_args
from eventsp.train.stbp.train import selection_score, validate, validation_set

__all__ = ["main", "rank_checkpoints"]


def rank_checkpoints(
    checkpoints: list[Path], args: argparse.Namespace, arch: str = "nmnist"
) -> list[dict]:
    """Selection metrics of each checkpoint (``args``: the trainer's data options), best first."""
    val = validation_set(args)
    rows = []
    for path in checkpoints:
        model = build(arch)
        ck = loop.load_checkpoint(path, model=model, restore_rng=False)
        rows.append({"checkpoint": str(path), "epoch": ck.epoch, **validate(model, val)})
    return sorted(rows, key=selection_score, reverse=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eventsp.train.stbp.validate")
    p.add_argument("checkpoints", type=Path, nargs="+")
    p.add_argument("--arch", default="nmnist", choices=sorted(ARCHS))
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    defaults = train_args([])  # the trainer's framing unless the run used another
    p.add_argument("--val-sim", type=int, default=defaults.val_sim)
    p.add_argument("--window-us", type=int, default=defaults.window_us)
    p.add_argument("--time-steps", type=int, default=defaults.time_steps)
    p.add_argument("--cache", type=Path, default=Path("runs/stbp-val"), help="cache folder")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    missing = [str(c) for c in args.checkpoints if not c.is_file()]
    if missing:
        p.error(f"checkpoint(s) not found: {', '.join(missing)}")
    torch.set_num_threads(args.threads)
    data_args = train_args(
        ["--data", str(args.data), "--val-sim", str(args.val_sim), "--out", str(args.cache),
         "--window-us", str(args.window_us), "--time-steps", str(args.time_steps)]
    )  # fmt: skip
    for row in rank_checkpoints(args.checkpoints, data_args, args.arch):
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
