"""Train the non-spiking keyword-spotting teacher (``python -m eventsp.train.lmu.kws_teacher``).

    python -m eventsp.train.lmu.kws_teacher --run-dir runs/kws-teacher --epochs 40 \
        --synth-dir runs/kws-synth --synth-per-epoch 1500 --threads 1

A :class:`~eventsp.train.lmu.kws_distill.TeacherCNN` over whole one-second log-mel clips,
trained on the TRAINING speakers only (the same split, extra v0.01 clips, espeak-ng clips and
augmentation as the student's trainer ``kws``), its epoch chosen on the validation speakers.
The test split is never read. ``RUN/best.pt`` is what the student's ``--teacher`` takes.
It runs as one process (a few minutes on a core); the student trainer is the one that scales
out under ``torchrun``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from eventsp.train import loop
from eventsp.train.lmu.kws_data import (
    KWS_LABELS,
    TrainingData,
    add_data_arguments,
    features,
    load_training_data,
    spec_augment,
)
from eventsp.train.lmu.kws_distill import (
    TeacherCNN,
    TeacherConfig,
    save_teacher,
    teacher_posteriors,
)

__all__ = ["TeacherRun", "build_parser", "main", "parse_args", "train_teacher"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eventsp.train.lmu.kws_teacher", description=__doc__)
    add_data_arguments(p, mix_prob=0.1, noise_max=0.3)
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--channels", type=int, nargs="+", default=[64, 96, 128])
    p.add_argument("--kernel", type=int, default=9)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--no-spec-augment", action="store_true")
    p.add_argument("--label-smoothing", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    return p


def accuracy(model: TeacherCNN, logmel: np.ndarray, labels: np.ndarray) -> float:
    """Arg-max accuracy of ``model`` on raw log-mel clips (eval mode, through
    :func:`teacher_posteriors`)."""
    pred = teacher_posteriors([model], logmel, 1.0).argmax(1).numpy()
    return float((pred == labels).mean())


@dataclass(frozen=True)
class TeacherRun:
    """What :func:`train_teacher` found: the chosen epoch (1-based) and its validation
    accuracy, and the network's sizes (one row per epoch is in ``metrics.jsonl``)."""

    best_epoch: int
    best_val_acc: float
    config: TeacherConfig


def train_teacher(args: argparse.Namespace, data: TrainingData, run_dir: Path) -> TeacherRun:
    """Train a :class:`TeacherCNN` on ``data``'s epochs, choosing its epoch on its "val" set.

    ``args`` holds this module's flags (:func:`build_parser`). Writes ``run_dir/best.pt``
    (the chosen epoch, for :func:`~eventsp.train.lmu.kws_distill.load_teachers`), the
    metrics and ``curves.png``. Seeded from ``args.seed`` alone, so that every call with the
    same data trains the same network.
    """
    loop.seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)
    front = data.front
    val = data.sets["val"]
    x_val = features(val.audio, front)
    config = TeacherConfig(
        n_mels=front.n_mels,
        channels=tuple(args.channels),
        kernel=args.kernel,
        classes=len(KWS_LABELS),
        dropout=args.dropout,
    )
    torch.manual_seed(args.seed)
    model = TeacherCNN(config, data.mean, data.std)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs, pct_start=0.1
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    generator = torch.Generator().manual_seed(args.seed)
    log = loop.MetricsLog(run_dir)
    env = loop.DistEnv()  # one process: the teacher is small and trains in minutes
    best, best_epoch = None, 0
    for epoch in range(args.epochs):
        tic = time.perf_counter()
        waves, labels = data.epoch(args, rng)
        x_train = torch.from_numpy(features(waves, front))
        y_train = torch.from_numpy(labels)
        batches = list(torch.randperm(len(x_train), generator=generator).split(args.batch_size))
        model.train()
        loss_sum = 0.0
        for idx in loop.progress(batches, env, enabled=not args.no_progress):
            z = model.standardise(x_train[idx])
            if not args.no_spec_augment:
                z = spec_augment(z, generator)
            loss = loss_fn(model.classify(z), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(idx)
        scheduler.step()
        val_acc = accuracy(model, x_val, val.labels)
        if best is None or val_acc > best:
            best, best_epoch = val_acc, epoch + 1
            save_teacher(run_dir / "best.pt", model, epoch, best)
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / len(x_train),
            "val_acc": val_acc,
            "clips": len(x_train),
            "seconds": time.perf_counter() - tic,
        }
        log.log(**row)
        print(json.dumps(row), flush=True)
    log.plot("epoch", ["train_loss", "val_acc"], title="KWS teacher")
    return TeacherRun(best_epoch, best, config)


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser``'s flags (this module's or a superset), checked before any data is read;
    ``--threads`` applied."""
    args = parser.parse_args(argv)
    if args.epochs < 1:
        raise ValueError(f"--epochs is {args.epochs}; expected >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    data = load_training_data(args)
    run = train_teacher(args, data, args.run_dir)
    config = {**vars(run.config), "channels": list(args.channels)}
    summary = {"best_val_acc": run.best_val_acc, "config": config}
    (args.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
