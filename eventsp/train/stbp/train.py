"""Train a spiking ResNet with STBP-tdBN on event data, and export it for the runtime.

Run (one process, or several under torchrun with DDP: gloo on CPU, NCCL on GPU)::

    python -m eventsp.train.stbp --arch nmnist --sim 8000 --epochs 6 --out runs/stbp
    torchrun --nproc-per-node 2 -m eventsp.train.stbp --arch nmnist --out runs/stbp-ddp
    python -m eventsp.train.stbp --out runs/stbp --resume        # continue from last.pt
    python -m eventsp.train.stbp --init runs/stbp/best.pt --lr 5e-4 --out runs/stbp-ft  # fine-tune

Data: the real N-MNIST small set split into train / validation / held-out test
(:func:`eventsp.train.data.events.nmnist_small_split`), plus ``--sim N`` MNIST training digits
turned into saccade recordings by the simulator (cached under ``RUN/cache``), or a full tonic
dataset with ``--tonic NAME --tonic-root ROOT``.

Selection: validation is the 100 real validation recordings plus ``--val-sim N`` (default
5,000) simulated recordings of MNIST TEST digits
(:func:`eventsp.train.data.events.simulated_validation`, never trained on). The score is the
mean of the two accuracies (``val_acc``; ``val_real_acc`` and ``val_sim_acc`` are logged too),
ties broken by the mean of the two losses. The best epoch is kept (``best.pt``) and exported
(``--export``, default ``RUN/model.esp``). The held-out test split is not looked at unless
``--test`` is given: then it is evaluated once, on that model, and its accuracy is recorded in
the model's metadata. Compare candidate runs on validation
(``python -m eventsp.train.stbp.validate``) and measure only the chosen one on test
(``--test``, or ``python -m eventsp.train.stbp.evaluate MODEL --bundle DST`` on the runtime), so
that no test figure takes part in the choice.

Outputs in ``RUN``: ``last.pt`` / ``best.pt`` (checkpoints, resumable), ``metrics.csv``,
``metrics.jsonl``, ``curves.png`` (loss and accuracies per epoch), ``model.esp``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from eventsp.train import loop
from eventsp.train.data.events import (
    FrameSet,
    load_recordings,
    nmnist_small_split,
    simulated_mnist_frames,
    simulated_validation,
)
from eventsp.train.stbp.model import ARCHS, ArchConfig, SpikingResNet, build

__all__ = ["FramesDataset", "Validation", "evaluate", "main", "parse_args", "train", "validate"]


class FramesDataset(Dataset):
    """``(frames float32 (T, P, H, W), label)`` from a :class:`FrameSet`; ``shift`` px jitter."""

    def __init__(self, data: FrameSet, shift: int = 0, seed: int = 0) -> None:
        self.data, self.shift = data, int(shift)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        f = self.data.frames[i].astype(np.float32)
        if self.shift:
            dy, dx = self.rng.integers(-self.shift, self.shift + 1, size=2)
            f = np.roll(f, (dy, dx), axis=(2, 3))
            if dy > 0:
                f[:, :, :dy] = 0
            elif dy < 0:
                f[:, :, dy:] = 0
            if dx > 0:
                f[:, :, :, :dx] = 0
            elif dx < 0:
                f[:, :, :, dx:] = 0
        return torch.from_numpy(f), int(self.data.labels[i])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m eventsp.train.stbp", description=__doc__)
    p.add_argument("--arch", default="nmnist", choices=sorted(ARCHS))
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--sim", type=int, default=0, help="simulated MNIST recordings to add")
    p.add_argument("--real-repeat", type=int, default=1, help="repeat the real train split")
    p.add_argument(
        "--val-sim", type=int, default=5000, help="simulated MNIST-test recordings in validation"
    )
    p.add_argument("--tonic", default=None, help="train on a full tonic dataset instead")
    p.add_argument("--tonic-root", type=Path, default=None)
    p.add_argument("--time-steps", type=int, default=10)
    p.add_argument("--window-us", type=int, default=30_000)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--shift", type=int, default=2, help="random shift augmentation (pixels)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", dest="run", type=Path, default=Path("runs/stbp"), help="run folder")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--init", type=Path, default=None, help="start from a checkpoint's weights")
    p.add_argument("--export", type=Path, default=None, help="model file (default RUN/model.esp)")
    p.add_argument("--max-batches", type=int, default=0, help="stop epochs early (tests)")
    p.add_argument("--limit", type=int, default=0, help="first N recordings per split (tests)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--test",
        action="store_true",
        help="measure the held-out test split at the end (only for the run you chose)",
    )
    args = p.parse_args(argv)
    if args.time_steps < 1 or args.window_us < 1 or args.epochs < 1 or args.batch_size < 1:
        p.error("--time-steps, --window-us, --epochs and --batch-size must be >= 1")
    if not 0 <= args.val_sim <= 10_000:
        p.error(f"--val-sim {args.val_sim}: expected 0..10000 (MNIST has 10,000 test digits)")
    return args


class Validation(NamedTuple):
    """The real validation split and the simulated MNIST-test part (None with ``--val-sim 0``)."""

    real: FrameSet
    sim: FrameSet | None


def validation_set(args: argparse.Namespace, items: list | None = None) -> Validation:
    """The validation data of ``args``: the real split (``items``, or read from the data
    folder), and the simulated part cached under ``RUN/cache``."""
    if items is None:
        items = nmnist_small_split(args.data / "nmnist_small" / "train")["val"]
        items = items[: args.limit or None]
    n = min(args.val_sim, args.limit) if args.limit else args.val_sim
    real = load_recordings(items, args.window_us, args.time_steps)
    if n == 0:
        return Validation(real, None)
    sim = _cached_frames(
        args.run / "cache" / f"valsim{n}_T{args.time_steps}_w{args.window_us}.npz",
        "mnist-test-sim",
        lambda: simulated_validation(
            args.data / "mnist" / "mnist.npz", n, args.window_us, args.time_steps
        ),
    )
    return Validation(real, sim)


def _cached_frames(cache: Path, prefix: str, make: Callable[[], FrameSet]) -> FrameSet:
    """``make()``'s frames, saved to ``cache`` the first time and read from it afterwards;
    recordings are named ``{prefix}-{i}``."""
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            frames, labels = z["frames"], z["labels"]
    else:
        data = make()
        frames, labels = data.frames, data.labels
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, frames=frames, labels=labels)
    return FrameSet(frames, labels, tuple(f"{prefix}-{i}" for i in range(len(labels))))


def selection_score(metrics: Mapping[str, float]) -> float:
    """The model-selection rule (trainer and ``validate``'s ranking): validation accuracy,
    ties broken by the lower validation loss."""
    return metrics["val_acc"] - 1e-6 * min(metrics["val_loss"], 1e3)


def validate(model: SpikingResNet, val: Validation) -> dict[str, float]:
    """Selection metrics: ``val_acc`` (mean of the real and simulated accuracies), ``val_loss``
    (mean of the losses), and each part's accuracy and loss."""
    real_acc, real_loss = evaluate(model, val.real)
    out = {"val_real_acc": real_acc, "val_real_loss": real_loss}
    if val.sim is None:
        out.update(val_acc=real_acc, val_loss=real_loss)
        return out
    sim_acc, sim_loss = evaluate(model, val.sim)
    out.update(
        val_sim_acc=sim_acc,
        val_sim_loss=sim_loss,
        val_acc=(real_acc + sim_acc) / 2,
        val_loss=(real_loss + sim_loss) / 2,
    )
    return out


def _datasets(
    args: argparse.Namespace, main: bool = True
) -> tuple[Dataset, Validation | None, FrameSet | None]:
    """Training data, and (``main``: the rank that validates) validation and test data."""
    split = nmnist_small_split(args.data / "nmnist_small" / "train")
    if args.limit:
        split = {k: v[: args.limit] for k, v in split.items()}
    val = validation_set(args, split["val"]) if main else None
    test = None
    if main and args.test:
        test = load_recordings(split["test"], args.window_us, args.time_steps)
    if args.tonic:
        from eventsp.train.data.events import tonic_dataset

        if args.tonic_root is None:
            raise SystemExit("--tonic needs --tonic-root ROOT (the folder holding the dataset)")
        train = _TonicFrames(tonic_dataset(args.tonic, args.tonic_root, train=True), args)
        return train, val, test
    real = load_recordings(split["train"], args.window_us, args.time_steps)
    parts: list[Dataset] = [FramesDataset(real, args.shift, args.seed)] * args.real_repeat
    if args.sim:
        parts.append(FramesDataset(_simulated(args), args.shift, args.seed + 1))
    return ConcatDataset(parts), val, test


def _simulated(args: argparse.Namespace) -> FrameSet:
    def make() -> FrameSet:
        mnist = np.load(args.data / "mnist" / "mnist.npz", allow_pickle=False)
        # MNIST *training* digits beyond the first 1,000 (those are the real N-MNIST recordings).
        images = mnist["x_train"][1000 : 1000 + args.sim]
        labels = mnist["y_train"][1000 : 1000 + args.sim]
        return simulated_mnist_frames(images, labels, args.window_us, args.time_steps, args.seed)

    cache = args.run / "cache" / f"sim{args.sim}_T{args.time_steps}_w{args.window_us}.npz"
    return _cached_frames(cache, "mnist-sim", make)


class _TonicFrames(Dataset):
    """Frames of a tonic dataset. For N-MNIST, recordings of the first 1,000 MNIST training
    digits (files ``00001.bin`` .. ``01000.bin``: the small set, whose validation and test
    splits must stay unseen) are left out."""

    def __init__(self, dataset: Dataset, args: argparse.Namespace) -> None:
        self.dataset, self.args = dataset, args
        files = getattr(dataset, "data", None)
        self.index = list(range(len(dataset)))
        if args.tonic == "nmnist" and files is not None:
            self.index = [i for i in self.index if int(Path(files[i]).stem) > 1000]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        i = self.index[i]
        from eventsp.apps.classify_events import recording_frames
        from eventsp.events import EVENT_DTYPE

        events, label = self.dataset[i]
        ev = np.zeros(len(events), dtype=EVENT_DTYPE)
        for k in "xytp":
            ev[k] = events[k]
        f = recording_frames(
            ev, self.dataset.sensor_size, self.args.window_us, self.args.time_steps
        )
        return torch.from_numpy(f), int(label)


@torch.no_grad()
def evaluate(model: SpikingResNet, data: FrameSet, batch_size: int = 64) -> tuple[float, float]:
    """``(accuracy, mean loss)`` of ``model`` (eval mode) on ``data``."""
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(data), batch_size):
        x = torch.from_numpy(data.frames[i : i + batch_size].astype(np.float32)).transpose(0, 1)
        y = torch.from_numpy(data.labels[i : i + batch_size])
        logits = model(x).mean(0)
        loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    return correct / len(data), loss / len(data)


def train(args: argparse.Namespace) -> dict:
    """Train, keep the best epoch by validation accuracy, export it; returns a summary."""
    torch.set_num_threads(args.threads)
    env = loop.setup_distributed(args.device)
    try:
        loop.seed_everything(args.seed + env.rank)
        train_set, val, test = _datasets(args, main=env.is_main)
        model = build(args.arch).to(env.device)
        ddp = loop.wrap_ddp(model, env)
        opt = torch.optim.Adam(ddp.parameters(), lr=args.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
        loader = loop.make_loader(
            train_set, args.batch_size, env, shuffle=True, seed=args.seed, drop_last=True
        )
        start, best = 0, -1.0
        if args.init is not None and not args.resume:
            loop.load_checkpoint(args.init, model=model, restore_rng=False)
            loop.broadcast_module(model, env)
        if args.resume:
            ck = loop.load_checkpoint(
                args.run / "last.pt", model=model, optimizer=opt, scheduler=sched
            )
            start, best = ck.epoch + 1, ck.best_metric if ck.best_metric is not None else -1.0
            loop.broadcast_module(model, env)
        log = loop.MetricsLog(args.run, enabled=env.is_main, resume=args.resume)
        for epoch in range(start, args.epochs):
            ddp.train()
            loop.set_epoch(loader, epoch)
            sums = [0.0, 0.0, 0.0]
            t0 = time.perf_counter()
            bar = loop.progress(loader, env, desc=f"epoch {epoch}", enabled=not args.no_progress)
            for b, (x, y) in enumerate(bar):
                if args.max_batches and b >= args.max_batches:
                    break
                x, y = x.transpose(0, 1).to(env.device), y.to(env.device)
                logits = ddp(x).mean(0)
                loss = torch.nn.functional.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sums[0] += loss.item() * len(y)
                sums[1] += int((logits.argmax(1) == y).sum())
                sums[2] += len(y)
            sched.step()
            loss_sum, correct, seen = loop.all_reduce_sum(sums, env)
            if env.is_main:  # validation and selection: the main rank only
                metrics = validate(model, val)
                row = {
                    "epoch": epoch,
                    "train_loss": loss_sum / max(seen, 1),
                    "train_acc": correct / max(seen, 1),
                    **metrics,
                    "samples": int(seen),
                    "lr": opt.param_groups[0]["lr"],
                    "seconds": time.perf_counter() - t0,
                }
                log.log(**row)
                log.plot(
                    "epoch", ["train_acc", "val_acc", "train_loss", "val_loss"], title="STBP-tdBN"
                )
                print(json.dumps(row), flush=True)
                score = selection_score(metrics)
                if score > best:
                    best = score
                    loop.save_checkpoint(
                        args.run / "best.pt",
                        model=model,
                        epoch=epoch,
                        best_metric=best,
                        state=metrics,
                    )
                loop.save_checkpoint(
                    args.run / "last.pt",
                    model=model,
                    optimizer=opt,
                    scheduler=sched,
                    epoch=epoch,
                    best_metric=best,
                )
            loop.barrier(env)
        summary: dict = {"best_score": best}
        if env.is_main:
            summary.update(_finish(args, model, val, test))
        return summary
    finally:
        loop.teardown_distributed(env)


def _finish(
    args: argparse.Namespace, model: SpikingResNet, val_set: Validation, test: FrameSet | None
) -> dict:
    from eventsp.train.stbp.export import export_model

    ck = loop.load_checkpoint(args.run / "best.pt", model=model, restore_rng=False)
    heldout = {} if test is None else {"test_acc": evaluate(model, test)[0]}  # only with --test
    val_acc = ck.state.get("val_acc", ck.best_metric)
    parts = {k: ck.state[k] for k in ("val_real_acc", "val_sim_acc") if k in ck.state}
    n_sim = 0 if val_set.sim is None else len(val_set.sim)
    path = args.export or args.run / "model.esp"
    cfg: ArchConfig = model.cfg
    export_model(
        model,
        path,
        labels=[str(d) for d in range(cfg.classes)],
        sensor_size=(34, 34, 2) if args.tonic is None else None,
        time_steps=args.time_steps,
        window_us=args.window_us,
        extra={
            "training": {
                "method": "STBP-tdBN (Zheng et al., AAAI 2021)",
                "arch": args.arch,
                "epochs": ck.epoch + 1,
                "simulated_mnist": args.sim,
                "init": None if args.init is None else str(args.init),
                "command": "python -m eventsp.train.stbp " + " ".join(sys.argv[1:]),
                "data": "nmnist_small train split (700) + simulated MNIST saccades",
                "selection": "best epoch by validation score: mean of the accuracies on the "
                f"real validation split ({len(val_set.real)}) and on simulated MNIST-test "
                f"digits ({n_sim}); ties by the mean "
                "validation loss",
                "split_seed": "eventsp.train.data.events.SPLIT_SEED",
            },
            "accuracy": {
                "val": val_acc,
                **parts,
                "n_val_real": len(val_set.real),
                "n_val_sim": n_sim,
                **(
                    {"test_heldout_trainer": heldout["test_acc"], "n_test": len(test)}
                    if heldout
                    else {}
                ),
            },
        },
    )
    print(
        json.dumps(
            {
                "best_epoch": ck.epoch,
                "val_acc": val_acc,
                **heldout,
                "model": str(path),
            }
        ),
        flush=True,
    )
    return {**heldout, "model": str(path)}


def main(argv: list[str] | None = None) -> int:
    train(parse_args(argv))
    return 0
