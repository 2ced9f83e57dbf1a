"""Train the hybrid-spiking LMU on psMNIST (``python -m eventsp.train.lmu.train``, or torchrun).

    python -m eventsp.train.lmu.train --data ../shared/data --run-dir runs/psmnist-lmu --epochs 30
    torchrun --nproc_per_node=4 -m eventsp.train.lmu.train --data ../shared/data --run-dir RUN
    python -m eventsp.train.lmu.train --run-dir RUN --resume        # continue from RUN/last.pt

The quantizer's ``dt`` follows :class:`DtSchedule` over the run (non-spiking at first, the
final spiking ``--dt-end`` from ``--anneal-until`` of the run on). Every epoch validates the
streaming spiking network (``HybridLMU.simulate``) at the current ``dt`` on ``--val-limit``
held-out training digits, writes ``metrics.csv``/``curves.png`` and ``last.pt``; ``best.pt``
is the best validation accuracy once ``dt`` is final. At the end the best model is tested on
the MNIST test set (spiking), its efficiency measured (bits per activity, significant bits per
multiplication) and exported to ``RUN/psmnist_lmu.esp`` with the permutation in its metadata.
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

from eventsp.train import loop
from eventsp.train.data.psmnist import load_psmnist, to_sequence
from eventsp.train.lmu.export import export_model
from eventsp.train.lmu.model import HybridLMU, LMUConfig
from eventsp.train.lmu.quantizer import BitsAccumulator, DtSchedule

__all__ = ["evaluate", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eventsp.train.lmu.train", description=__doc__)
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="shared data root")
    p.add_argument(
        "--run-dir", type=Path, required=True, help="run folder (checkpoints, logs, model)"
    )
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=100, help="per process")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--order", type=int, default=256)
    p.add_argument("--hidden", type=int, default=212)
    p.add_argument("--dt-start", type=float, default=1000.0)
    p.add_argument("--dt-end", type=float, default=1.0)
    p.add_argument("--anneal-until", type=float, default=0.7)
    p.add_argument("--permutation-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-limit", type=int, default=2000, help="digits validated per epoch")
    p.add_argument("--train-limit", type=int, default=0, help="use only N digits (0: all)")
    p.add_argument("--test-limit", type=int, default=0, help="test only N digits (0: all)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None)
    p.add_argument("--resume", action="store_true", help="continue from RUN/last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _batches(x: np.ndarray, size: int):
    for i in range(0, len(x), size):
        yield i, torch.from_numpy(to_sequence(x[i : i + size]))


@torch.no_grad()
def evaluate(
    model: HybridLMU,
    x: np.ndarray,
    y: np.ndarray,
    dt: float | None,
    env: loop.DistEnv,
    *,
    batch_size: int = 250,
    bits: BitsAccumulator | None = None,
) -> float:
    """Accuracy of the streaming network (``simulate``) on ``x (N, T) uint8``, over ranks."""
    model.eval()
    shard = slice(env.rank, None, env.world_size)
    x, y = x[shard], y[shard]
    correct = 0
    for i, xb in _batches(x, batch_size):
        logits, counts = model.simulate(xb.to(env.device), dt)
        correct += int((logits.argmax(1).cpu().numpy() == y[i : i + len(xb)]).sum())
        if bits is not None and dt is not None:
            bits.update(counts.cpu().numpy())
    total_correct, total = loop.all_reduce_sum([correct, len(x)], env)
    return total_correct / max(total, 1)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    env = loop.setup_distributed(args.device)
    try:
        return _train(args, env)
    finally:
        loop.teardown_distributed(env)


def _train(args: argparse.Namespace, env: loop.DistEnv) -> int:
    loop.seed_everything(args.seed + env.rank)
    data = load_psmnist(args.data / "mnist" / "mnist.npz", seed=args.permutation_seed)
    x_train, y_train = data.x_train, data.y_train
    if args.train_limit:
        x_train, y_train = x_train[: args.train_limit], y_train[: args.train_limit]
    x_val, y_val = data.x_val[: args.val_limit], data.y_val[: args.val_limit]
    config = LMUConfig(order=args.order, hidden=args.hidden, theta=784.0, steps=784)
    torch.manual_seed(args.seed)  # the same initial weights on every rank
    model = HybridLMU(config).to(env.device)
    net = loop.wrap_ddp(model, env)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    schedule = DtSchedule(args.dt_start, args.dt_end, args.anneal_until)
    run: Path = args.run_dir
    start_epoch, best = 0, None
    if args.resume:
        ckpt = loop.load_checkpoint(
            run / "last.pt", model=model, optimizer=optimizer, scheduler=scheduler
        )
        start_epoch, best = ckpt.epoch + 1, ckpt.best_metric
        loop.broadcast_module(model, env)
    log = loop.MetricsLog(run, enabled=env.is_main, resume=args.resume)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
    loader = loop.make_loader(
        dataset, args.batch_size, env, shuffle=True, seed=args.seed, drop_last=True
    )
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(args.seed * 1000 + env.rank)
    steps_per_epoch = len(loader)
    for epoch in range(start_epoch, args.epochs):
        loop.set_epoch(loader, epoch)
        model.train()
        tic = time.perf_counter()
        loss_sum = correct = seen = 0.0
        bar = loop.progress(
            loader, env, desc=f"epoch {epoch + 1}/{args.epochs}", enabled=not args.no_progress
        )
        for step, (xb, yb) in enumerate(bar):
            dt = schedule((epoch + step / steps_per_epoch) / args.epochs)
            xs = (xb.to(env.device).float() / 255.0)[:, :, None]
            yb = yb.to(env.device)
            logits = net(xs, dt, generator=generator)
            loss = loss_fn(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(yb)
            correct += float((logits.argmax(1) == yb).sum())
            seen += len(yb)
        scheduler.step()
        loss_sum, correct, seen = loop.all_reduce_sum([loss_sum, correct, seen], env)
        dt_now = schedule((epoch + 1) / args.epochs)
        val_acc = evaluate(model, x_val, y_val, dt_now, env)
        final = dt_now == schedule(1.0)
        improved = final and (best is None or val_acc > best)
        if improved:
            best = val_acc
        row = {
            "epoch": epoch + 1,
            "dt": dt_now,
            "lr": scheduler.get_last_lr()[0],
            "train_loss": loss_sum / seen,
            "train_acc": correct / seen,
            "val_acc": val_acc,
            "seconds": time.perf_counter() - tic,
        }
        if env.is_main:
            log.log(**row)
            log.plot("epoch", ["train_loss", "train_acc", "val_acc"], title="psMNIST hybrid LMU")
            print(json.dumps(row), flush=True)
            state = {"dt": dt_now, "permutation_seed": args.permutation_seed}
            loop.save_checkpoint(
                run / "last.pt",
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                epoch=epoch,
                best_metric=best,
                state=state,
            )
            if improved:
                loop.save_checkpoint(
                    run / "best.pt", model=model, epoch=epoch, best_metric=best, state=state
                )
        loop.barrier(env)
    return _finish(args, env, model, data, schedule(1.0), best)


def _finish(args, env, model, data, dt, best) -> int:
    """Test the best spiking model, measure its bits, export it."""
    best_path = args.run_dir / "best.pt"
    if best_path.is_file():
        loop.load_checkpoint(best_path, model=model, restore_rng=False)
    x_test, y_test = data.x_test, data.y_test
    if args.test_limit:
        x_test, y_test = x_test[: args.test_limit], y_test[: args.test_limit]
    bits = BitsAccumulator()
    test_acc = evaluate(model, x_test, y_test, dt, env, bits=bits)
    measures = bits.result() if bits.max_per_neuron is not None else {}
    summary = {
        "test_acc_spiking": test_acc,
        "best_val_acc": best,
        "dt": dt,
        **measures,
        "test_digits": len(x_test),
        "note": "bits measured on rank 0's share of the test set" if env.distributed else "",
    }
    if env.is_main:
        metadata = {
            "labels": [str(d) for d in range(10)],
            "benchmark": "psmnist",
            "permutation": data.permutation.tolist(),
            "permutation_seed": data.seed,
            "input_scale": 1.0 / 255.0,
            "accuracy": {"test_spiking": test_acc, "val_spiking": best},
            "efficiency": measures,
            "provenance": {
                "trainer": "eventsp.train.lmu.train",
                "epochs": args.epochs,
                "dt_schedule": [args.dt_start, args.dt_end, args.anneal_until],
                "world_size": env.world_size,
            },
        }
        export_model(args.run_dir / "psmnist_lmu.esp", model, dt, metadata)
        (args.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
