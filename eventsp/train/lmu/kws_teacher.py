"""Train the non-spiking keyword-spotting teacher (``python -m eventsp.train.lmu.kws_teacher``).

    python -m eventsp.train.lmu.kws_teacher --run-dir runs/kws-teacher --epochs 40 \
        --synth-dir runs/kws-synth --synth-per-epoch 1500 --threads 1

A :class:`~eventsp.train.lmu.kws_distill.TeacherCNN` over whole one-second log-mel clips,
trained on the TRAINING speakers only (the same split, extra v0.01 clips, espeak-ng clips and
augmentation as the student's trainer ``kws``), its epoch chosen on the validation speakers.
The test split is never read. ``RUN/best.pt`` is what the student's ``--teacher`` takes.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from eventsp.audio import LogMelConfig
from eventsp.train import loop
from eventsp.train.lmu.kws_data import (
    KWS_LABELS,
    SAMPLE_RATE,
    epoch_clips,
    features,
    limit_sets,
    load_speech_commands,
    load_v1_subset,
    spec_augment,
)
from eventsp.train.lmu.kws_distill import TeacherCNN, TeacherConfig, save_teacher
from eventsp.train.lmu.kws_synth import load_synth

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eventsp.train.lmu.kws_teacher", description=__doc__)
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--channels", type=int, nargs="+", default=[64, 96, 128])
    p.add_argument("--kernel", type=int, default=9)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--synth-dir", type=Path, default=None, help="espeak-ng clips (kws_synth)")
    p.add_argument("--synth-per-epoch", type=int, default=0, help="0: every synthetic clip")
    p.add_argument("--no-v1-subset", action="store_true", help="leave out the v0.01 clips")
    p.add_argument("--mix-prob", type=float, default=0.1)
    p.add_argument("--noise-max", type=float, default=0.3)
    p.add_argument("--no-spec-augment", action="store_true")
    p.add_argument("--label-smoothing", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="use only N clips per split (tests)")
    p.add_argument("--no-progress", action="store_true")
    return p


@torch.no_grad()
def accuracy(model: TeacherCNN, logmel: np.ndarray, labels: np.ndarray) -> float:
    """Arg-max accuracy of ``model`` (eval mode) on raw log-mel clips."""
    model.eval()
    x = torch.from_numpy(logmel)
    pred = torch.cat([model(x[i : i + 256]).argmax(1) for i in range(0, len(x), 256)])
    return float((pred.numpy() == labels).mean())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.epochs < 1:
        raise ValueError(f"--epochs is {args.epochs}; expected >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    loop.seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)
    sets = load_speech_commands(args.data / "speech" / "speech_commands_v2_test_dev")
    sets = limit_sets(sets, args.limit)
    train, val = sets["train"], sets["val"]
    front = LogMelConfig(sample_rate=SAMPLE_RATE)
    noise = train.audio[train.labels == KWS_LABELS.index("_silence_")]
    clean = features(train.audio, front)
    mean, std = clean.mean(axis=(0, 1)), clean.std(axis=(0, 1)) + 1e-3
    folder = args.data / "speech" / "speech_commands_v1_subset"
    v1_audio, v1_labels, _ = load_v1_subset(folder, KWS_LABELS, SAMPLE_RATE, args.no_v1_subset)
    real_audio = np.concatenate([train.audio, v1_audio])
    real_labels = np.concatenate([train.labels, v1_labels])
    synth = load_synth(args.synth_dir) if args.synth_dir is not None else None
    x_val = features(val.audio, front)
    config = TeacherConfig(
        n_mels=front.n_mels,
        channels=tuple(args.channels),
        kernel=args.kernel,
        classes=len(KWS_LABELS),
        dropout=args.dropout,
    )
    torch.manual_seed(args.seed)
    model = TeacherCNN(config, mean, std)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs, pct_start=0.1
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    generator = torch.Generator().manual_seed(args.seed)
    log = loop.MetricsLog(args.run_dir)
    env = loop.setup_distributed("cpu")
    best = None
    try:
        for epoch in range(args.epochs):
            tic = time.perf_counter()
            waves, labels = epoch_clips(
                real_audio,
                real_labels,
                synth,
                args.synth_per_epoch,
                noise,
                rng,
                mix_prob=args.mix_prob,
                noise_max=args.noise_max,
            )
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
                best = val_acc
                save_teacher(args.run_dir / "best.pt", model, epoch, best)
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
    finally:
        loop.teardown_distributed(env)
    summary = {"best_val_acc": best, "config": {**vars(config), "channels": list(args.channels)}}
    (args.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
