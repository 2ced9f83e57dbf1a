"""Train the keyword-spotting hybrid LMU on Speech Commands (``python -m eventsp.train.lmu.kws``).

    python -m eventsp.train.lmu.kws --data ../shared/data --run-dir runs/kws-lmu --epochs 80
    python -m eventsp.train.lmu.kws ... --export eventsp/models/kws_lmu.esp

Data: ``speech/speech_commands_v2_test_dev`` (12 classes, one-second FLAC clips), split BY
SPEAKER (the hash in ``<speaker>_nohash_<n>``; ``_silence_`` clips by file name) into train,
validation (model selection) and test (reported only) with :func:`speaker_split`. Every epoch
re-augments the training waveforms (time shift, gain, background noise from the training
``_silence_`` clips) and recomputes their log-mel features with ``eventsp.audio`` (the same
streaming front-end the application runs). Features are standardised per mel band with the
training set's mean and std, folded into the exported graph's input layers (the graph takes
raw log-mel frames) and also recorded in the metadata.

The network is :class:`HybridLMU` with the "last" readout: the logits at frame t classify the
last ``theta`` frames, so the same model gives one posterior per 10 ms hop on a continuous
stream (``eventsp.apps.kws``). The quantizer's ``dt`` is annealed as in the psMNIST trainer.
``--frames K`` supervises the last K frames of each clip with its label (the posteriors a
stream sees once the word is inside the window), not only the last one. ``--stack S`` feeds
S consecutive frames side by side as one input, so the network runs once every S hops (S
times fewer synaptic operations per second for the same network; the front-end keeps its
10 ms hops); ``--frames`` and ``--smooth-frames`` then count network steps.

Extra data (``kws_data``, ``kws_synth``): the real v0.01 clips of the training speakers
(``--no-v1-subset`` leaves them out), espeak-ng speech made once by ``python -m
eventsp.train.lmu.kws_synth --out DIR`` (``--synth-dir DIR``; the trainer runs without it),
mixing with other training clips (``--mix-prob``) and SpecAugment masks (``--spec-augment``).
Validation accuracy is logged for the whole-clip answer of the app (the last frame's arg-max,
``val_acc``, used for selection) and for the mean posterior of the last ``--smooth-frames``
frames (``val_acc_smooth``); ``--ann-every N`` also logs the non-spiking network's.
``--teacher RUN/best.pt`` distils from non-spiking teachers trained by ``kws_teacher``
(``kws_distill``: ``--distill-weight``, ``--distill-temperature``); ``--hidden3`` adds a third
quantized layer; ``--memory2-d`` makes a stacked LMU, whose second layer also reads a Legendre
memory (``--order2``, ``--theta2``) of the first layer's output, and ``--theta`` shortens the
first memory's window.
The test split is evaluated only with ``--test`` (measure it once, for the chosen model:
``--init RUN/best.pt --epochs 0 --test``).
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
from eventsp.train.lmu.export import export_model
from eventsp.train.lmu.kws_data import (
    KWS_LABELS,
    SAMPLE_RATE,
    TrainingData,
    add_data_arguments,
    features,
    load_training_data,
    spec_augment,
    stack_frames,
)
from eventsp.train.lmu.kws_distill import distill_loss, load_teachers, teacher_posteriors
from eventsp.train.lmu.model import HybridLMU, LMUConfig
from eventsp.train.lmu.quantizer import BitsAccumulator, DtSchedule

__all__ = ["StudentRun", "build_parser", "clip_posteriors", "main", "normalise", "train_student"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eventsp.train.lmu.kws", description=__doc__)
    add_data_arguments(p, mix_prob=0.0, noise_max=0.5)
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--memory-d", type=int, default=4)
    p.add_argument("--order", type=int, default=24)
    p.add_argument("--hidden", type=int, default=96)
    p.add_argument("--hidden2", type=int, default=0, help="a second quantized layer (0: none)")
    p.add_argument("--hidden3", type=int, default=0, help="a third one (needs --hidden2)")
    p.add_argument(
        "--theta", type=float, default=0.0, help="the memory's window in steps (0: the clip)"
    )
    p.add_argument(
        "--memory2-d",
        type=int,
        default=0,
        help="a stacked LMU: the second layer also reads a memory of this many channels of the "
        "first layer's output (needs --hidden2)",
    )
    p.add_argument("--order2", type=int, default=16, help="the second memory's order")
    p.add_argument("--theta2", type=float, default=0.0, help="its window in steps (0: the clip)")
    p.add_argument("--dt-start", type=float, default=1000.0)
    p.add_argument("--dt-end", type=float, default=1.0)
    p.add_argument("--anneal-until", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--frames", type=int, default=1, help="supervise the last K steps")
    p.add_argument("--stack", type=int, default=1, help="log-mel frames per network step")
    p.add_argument(
        "--no-input-to-hidden", action="store_true", help="the hidden layer reads the memory only"
    )
    p.add_argument("--spec-augment", action="store_true")
    p.add_argument("--label-smoothing", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--smooth-frames", type=int, default=20)
    p.add_argument(
        "--clip-decision",
        choices=("last", "smoothed"),
        default="last",
        help="whole-clip answer the app gives and selection uses (see eventsp.apps.kws)",
    )
    p.add_argument("--ann-every", type=int, default=0, help="log non-spiking val every N")
    p.add_argument(
        "--average-last",
        type=int,
        default=0,
        help="also try the mean weights of the last N epochs (kept if validation says so)",
    )
    p.add_argument(
        "--teacher",
        type=Path,
        nargs="+",
        default=None,
        help="distil from these kws_teacher checkpoints (their mean posterior)",
    )
    p.add_argument("--distill-weight", type=float, default=0.5, help="weight of the teacher KL")
    p.add_argument("--distill-temperature", type=float, default=2.0)
    p.add_argument("--init", type=Path, default=None, help="start from this checkpoint")
    p.add_argument("--test", action="store_true", help="evaluate the test split at the end")
    p.add_argument("--export", type=Path, default=None, help="also write the model here")
    p.add_argument("--no-progress", action="store_true")
    return p


def clip_posteriors(
    model: HybridLMU, x: np.ndarray, dt: float | None, smooth: int, bits=None
) -> tuple[np.ndarray, np.ndarray]:
    """``(last, smoothed)``, both ``(N, classes)``: the softmax at each clip's last frame, and
    its mean over the last ``smooth`` frames (the two whole-clip answers of ``--clip-decision``;
    ``x`` is normalised and stacked). ``bits`` accumulates the spike counts."""
    model.eval()
    logits, counts = model.simulate(torch.from_numpy(x), dt, all_frames=True)
    if bits is not None and dt is not None:
        bits.update(counts.numpy())
    post = torch.softmax(logits, dim=2)
    return post[:, -1].numpy(), post[:, -smooth:].mean(1).numpy()


def _evaluate(model, x, y, dt, smooth: int = 20, bits=None) -> tuple[float, float]:
    """Accuracy of the last frame's arg-max and of the mean posterior of the last frames."""
    last, mean = clip_posteriors(model, x, dt, smooth, bits)
    return float((last.argmax(1) == y).mean()), float((mean.argmax(1) == y).mean())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    env = loop.setup_distributed("cpu")
    try:
        return _train(args, env)
    finally:
        loop.teardown_distributed(env)


@dataclass
class StudentRun:
    """What :func:`train_student` gives back: the network with its chosen weights, the
    quantizer's final ``dt``, the validation figure that chose them (``args.clip_decision``),
    the chosen epoch (1-based; ``None`` when the mean of the last epochs won, or no epoch ran
    at the final ``dt``) and the epoch of ``--init`` (``None`` without it)."""

    model: HybridLMU
    dt: float
    best: float | None
    best_epoch: int | None
    init_epoch: int | None


def normalise(data: TrainingData, stack: int, logmel: np.ndarray) -> np.ndarray:
    """Log-mel clips standardised with ``data``'s training statistics, then ``stack`` frames
    side by side: ``(N, T // stack, stack * n_mels)`` float32, the network's input."""
    return stack_frames(((logmel - data.mean) / data.std).astype(np.float32), stack)


def train_student(
    args: argparse.Namespace, data: TrainingData, teachers: list, env: loop.DistEnv
) -> StudentRun:
    """Train :class:`HybridLMU` on ``data`` (this module's flags, :func:`build_parser`),
    choosing its epoch (or the mean of the last epochs) on ``data.sets["val"]`` and distilling
    from ``teachers`` (:func:`~eventsp.train.lmu.kws_distill.load_teachers`; none: plain
    cross-entropy). Writes checkpoints and metrics to ``args.run_dir``; never reads the test
    split."""
    if args.frames < 1:
        raise ValueError(f"--frames is {args.frames}; expected >= 1 (frames supervised)")
    if args.stack < 1:
        raise ValueError(f"--stack is {args.stack}; expected >= 1 (frames per network step)")
    loop.seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)
    front = data.front
    val = data.sets["val"]

    def norm(f: np.ndarray) -> np.ndarray:
        return normalise(data, args.stack, f)

    x_val = norm(features(val.audio, front))
    frames = data.frames // args.stack  # network steps per clip
    config = LMUConfig(
        input_size=front.n_mels * args.stack,
        memory_d=args.memory_d,
        order=args.order,
        theta=float(args.theta or frames),
        hidden=args.hidden,
        classes=len(KWS_LABELS),
        steps=frames,
        input_to_hidden=not args.no_input_to_hidden,
        hidden2=args.hidden2,
        hidden3=args.hidden3,
        readout="last",
        memory2_d=args.memory2_d,
        order2=args.order2,
        theta2=float(args.theta2 or frames),
    )
    if args.frames > frames:
        raise ValueError(f"--frames is {args.frames}; a clip has only {frames} frames")
    torch.manual_seed(args.seed)
    model = HybridLMU(config)
    init_epoch = None
    if args.init is not None:
        init_epoch = loop.load_checkpoint(args.init, model=model, restore_rng=False).epoch
    net = loop.wrap_ddp(model, env)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, args.epochs))
    schedule = DtSchedule(args.dt_start, args.dt_end, args.anneal_until)
    log = loop.MetricsLog(args.run_dir, enabled=env.is_main)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    generator = torch.Generator().manual_seed(args.seed)
    best, best_state, best_epoch = None, None, None
    averaged: dict[str, torch.Tensor] | None = None
    n_averaged = 0
    for epoch in range(args.epochs):
        tic = time.perf_counter()
        model.train()
        waves, labels = data.epoch(args, rng)
        logmel = features(waves, front)
        x_train = torch.from_numpy(norm(logmel))
        y_train = torch.from_numpy(labels)
        soft = None
        if teachers:  # the teachers see the same augmented clips, without SpecAugment masks
            soft = teacher_posteriors(teachers, logmel, args.distill_temperature)
        order = torch.randperm(len(x_train), generator=generator)
        batches = list(order.split(args.batch_size))
        supervised = None if args.frames == 1 else args.frames
        loss_sum = 0.0
        for step, idx in enumerate(loop.progress(batches, env, enabled=not args.no_progress)):
            dt = schedule((epoch + step / len(batches)) / args.epochs)
            x = x_train[idx]
            if args.spec_augment:
                x = spec_augment(x, generator)
            # (batch, classes), or (batch, K, classes) for the last K steps: each has the label
            logits = net(x, dt, generator=generator, frames=supervised)
            if soft is not None:
                loss = distill_loss(
                    logits,
                    y_train[idx],
                    soft[idx],
                    args.distill_weight,
                    args.distill_temperature,
                    args.label_smoothing,
                )
            else:
                target = y_train[idx, None].expand(-1, args.frames)
                loss = loss_fn(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(idx)
        scheduler.step()
        dt_now = schedule((epoch + 1) / args.epochs)
        val_acc, val_smooth = _evaluate(model, x_val, val.labels, dt_now, args.smooth_frames)
        final = dt_now == schedule(1.0)
        chosen = val_acc if args.clip_decision == "last" else val_smooth
        if final and (best is None or chosen > best):
            best, best_epoch = chosen, epoch + 1
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
            if env.is_main:
                loop.save_checkpoint(
                    args.run_dir / "best.pt", model=model, epoch=epoch, best_metric=best
                )
        if final and args.average_last and epoch >= args.epochs - args.average_last:
            weights = model.state_dict()
            if averaged is None:
                averaged = {k: v.detach().clone().double() for k, v in weights.items()}
            else:
                for k, v in weights.items():
                    averaged[k] += v.double()
            n_averaged += 1
        row = {
            "epoch": epoch + 1,
            "dt": dt_now,
            "train_loss": loss_sum / len(x_train),
            "val_acc": val_acc,
            "val_acc_smooth": val_smooth,
            "clips": len(x_train),
            "seconds": time.perf_counter() - tic,
        }
        if args.ann_every and (epoch + 1) % args.ann_every == 0:
            row["val_acc_ann"] = _evaluate(model, x_val, val.labels, None)[0]
        log.log(**row)
        if env.is_main and ((epoch + 1) % 10 == 0 or epoch + 1 == args.epochs):
            log.plot("epoch", ["train_loss", "val_acc"], title="KWS hybrid LMU")
            loop.save_checkpoint(
                args.run_dir / "last.pt", model=model, optimizer=optimizer, epoch=epoch
            )
        print(json.dumps(row), flush=True)
    dt = schedule(1.0)
    if averaged is not None:
        ref = model.state_dict()
        model.load_state_dict({k: (v / n_averaged).to(ref[k].dtype) for k, v in averaged.items()})
        mean_last, mean_smooth = _evaluate(model, x_val, val.labels, dt, args.smooth_frames)
        mean_acc = mean_last if args.clip_decision == "last" else mean_smooth
        print(
            json.dumps(
                {"averaged_epochs": n_averaged, "val_acc": mean_last, "val_acc_smooth": mean_smooth}
            ),
            flush=True,
        )
        if best is None or mean_acc > best:
            best, best_state = mean_acc, {k: v.clone() for k, v in model.state_dict().items()}
            best_epoch = None
            if env.is_main:
                loop.save_checkpoint(
                    args.run_dir / "best.pt", model=model, epoch=args.epochs, best_metric=best
                )
    if best_state is not None:
        model.load_state_dict(best_state)
    return StudentRun(model, schedule(1.0), best, best_epoch, init_epoch)


def _train(args: argparse.Namespace, env: loop.DistEnv) -> int:
    data = load_training_data(args)
    run = train_student(args, data, load_teachers(args.teacher) if args.teacher else [], env)
    model, dt, best, init_epoch = run.model, run.dt, run.best, run.init_epoch
    front, mean, std, synth = data.front, data.mean, data.std, data.synth
    val, test = data.sets["val"], data.sets["test"]

    def norm(f: np.ndarray) -> np.ndarray:
        return normalise(data, args.stack, f)

    x_val = norm(features(val.audio, front))
    bits = BitsAccumulator()
    val_final, val_final_smooth = _evaluate(model, x_val, val.labels, dt, args.smooth_frames, bits)
    accuracy: dict[str, float] = {"val_spiking": val_final, "val_spiking_smooth": val_final_smooth}
    if args.test:
        x_test = norm(features(test.audio, front))
        test_last, test_smooth = _evaluate(model, x_test, test.labels, dt, args.smooth_frames)
        accuracy["test_spiking_unseen_speakers"] = (
            test_last if args.clip_decision == "last" else test_smooth
        )
    summary = {
        **accuracy,
        "best_val_acc": best,
        "dt": dt,
        "clips": {k: len(s.labels) for k, s in data.sets.items()},
        "clips_v1_subset": data.v1_clips,
        "clips_synth": 0 if synth is None else len(synth["labels"]),
        **bits.result(),
    }
    metadata = {
        "task": "kws",
        "labels": list(KWS_LABELS),
        "sample_rate_hz": SAMPLE_RATE,
        "frontend": {"kind": "logmel", **front.to_dict()},
        "feature_standardisation": "folded into the input Dense layers (mean and std below)",
        "feature_mean": mean.astype(float).tolist(),
        "feature_std": std.astype(float).tolist(),
        "clip_decision": args.clip_decision,
        "frame_stack": args.stack,
        "smooth_frames": args.smooth_frames,
        "accuracy": accuracy,
        "efficiency": bits.result(),
        "provenance": {
            "trainer": "eventsp.train.lmu.kws",
            "data": "speech_commands_v2_test_dev, split by speaker (crc32 buckets 15/15/70)",
            "extra_data": {
                "v1_subset_train_speakers": data.v1_clips,
                "espeak_ng_clips": summary["clips_synth"],
            },
            "epochs": args.epochs,
            "frames_supervised": args.frames,
            "teachers": [str(t) for t in args.teacher or ()],
            "distill_weight": args.distill_weight if args.teacher else 0.0,
            "distill_temperature": args.distill_temperature,
            "init": None if args.init is None else str(args.init),
            "init_epoch": init_epoch,
            "seed": args.seed,
        },
    }
    args.run_dir.mkdir(parents=True, exist_ok=True)
    for path in (args.run_dir / "kws_lmu.esp", args.export):
        if path is not None:
            export_model(
                path,
                model,
                dt,
                metadata,
                input_mean=np.tile(mean, args.stack),
                input_std=np.tile(std, args.stack),
            )
    (args.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
