"""Train the two-talker separation network: ANN first, then directly as an SNN; export both.

::

    python -m eventsp.train.separation.train --data ../shared/data --out runs/separation2
    # the bundled model: these defaults (12 ANN + 1 SNN epochs of 200 steps of 16 mixtures,
    # hidden 192, dilations 1..32; 35-65 s per epoch on one core of the shared dev machine),
    # except that its first 3 epochs ran under a 20-epoch cosine schedule before --resume;
    # installed with its test-speaker evaluation (``evaluate``) in the metadata
    torchrun --nproc-per-node 2 -m eventsp.train.separation.train ...   # DDP, same flags

Stages (``eventsp.train.separation.model``): ``ann`` trains the mask estimator with ReLU
activations; ``snn`` continues from it with the runtime's ``MultiSpike(dt)`` neurons in the
forward pass (straight-through gradient) at a lower learning rate. Loss: negative PIT SI-SNR.
Mixtures are made on the fly from "train" speakers (``eventsp.train.data.mixtures``); after
every epoch the validation SI-SNRi on a fixed set of "val"-speaker mixtures is logged.

Writes to ``--out``: ``metrics.csv``/``metrics.jsonl``, ``curves.png``, ``last.pt`` (resume
with ``--resume``), ``ann.esp`` and ``snn.esp`` (runtime models; the SNN is the one to ship).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from eventsp.train.data.mixtures import (
    Clips,
    MixConfig,
    list_clips,
    list_noise,
    load_clips,
    make_mixture,
)
from eventsp.train.loop import (
    MetricsLog,
    all_reduce_sum,
    load_checkpoint,
    make_loader,
    progress,
    save_checkpoint,
    seed_everything,
    set_epoch,
    setup_distributed,
    teardown_distributed,
    unwrap,
    wrap_ddp,
)
from eventsp.train.separation.export import export_model
from eventsp.train.separation.model import (
    SeparationNet,
    SepConfig,
    pit_si_snr,
    set_standardisation,
    si_snr,
)

__all__ = ["MixtureDataset", "fixed_mixtures", "main", "validate"]


class MixtureDataset(Dataset):
    """``size`` random mixtures; item ``i`` of epoch ``e`` is seeded by ``(seed, e, i)``."""

    def __init__(
        self,
        clips: Clips,
        config: MixConfig,
        size: int,
        seed: int,
        noise: np.ndarray | None = None,
    ) -> None:
        self.clips, self.config, self.size, self.seed, self.noise = clips, config, size, seed, noise
        self.epoch = 0

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        mix = make_mixture(rng, self.clips, self.config, self.noise)
        return torch.from_numpy(mix.mixture), torch.from_numpy(mix.sources)


def fixed_mixtures(
    clips: Clips, config: MixConfig, n: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` reproducible mixtures ``(n, L)`` and sources ``(n, 2, L)``."""
    rng = np.random.default_rng(seed)
    mixes = [make_mixture(rng, clips, config) for _ in range(n)]
    return (
        torch.from_numpy(np.stack([m.mixture for m in mixes])),
        torch.from_numpy(np.stack([m.sources for m in mixes])),
    )


@torch.no_grad()
def validate(model: SeparationNet, mixtures: torch.Tensor, sources: torch.Tensor) -> float:
    """Mean SI-SNR improvement (dB) of ``model`` over the mixtures (PIT)."""
    model.eval()
    est = torch.cat([model(mixtures[i : i + 16]) for i in range(0, len(mixtures), 16)])
    best, _ = pit_si_snr(est, sources)
    base = (si_snr(mixtures, sources[:, 0]) + si_snr(mixtures, sources[:, 1])) / 2
    model.train()
    return float((best - base).mean())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path("runs/separation"))
    p.add_argument("--ann-epochs", type=int, default=12)
    p.add_argument("--snn-epochs", type=int, default=1)
    p.add_argument("--steps-per-epoch", type=int, default=200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--snn-lr", type=float, default=3e-4)
    p.add_argument("--hidden", type=int, default=192)
    p.add_argument("--dilations", type=str, default="1,2,4,8,16,32")
    p.add_argument("--dt", type=float, default=8.0, help="MultiSpike resolution 1/dt")
    p.add_argument("--noise", action="store_true", help="add _silence_ noise at 10..30 dB SNR")
    p.add_argument("--val-mixtures", type=int, default=64)
    p.add_argument("--max-clips", type=int, default=0, help="use only this many train clips")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    env = setup_distributed(args.device)
    try:
        return _train(args, env)
    finally:
        teardown_distributed(env)


def _train(args: argparse.Namespace, env) -> int:
    seed_everything(args.seed + env.rank)
    mix_config = MixConfig(noise_snr_db=(10.0, 30.0) if args.noise else None)
    train_paths = list_clips(args.data, "train")
    if args.max_clips:
        train_paths = train_paths[: args.max_clips]
    train_clips = load_clips(train_paths, mix_config.length)
    val_clips = load_clips(list_clips(args.data, "val"), mix_config.length)
    noise = load_clips(list_noise(args.data), mix_config.length).audio if args.noise else None
    dilations = tuple(int(d) for d in args.dilations.split(","))
    config = SepConfig(hidden=args.hidden, dilations=dilations, dt=args.dt)
    model = SeparationNet(config)
    steps = args.steps_per_epoch * args.batch
    dataset = MixtureDataset(train_clips, mix_config, steps, args.seed, noise)
    calib = fixed_mixtures(train_clips, mix_config, 64, args.seed + 1)[0]
    set_standardisation(model, [calib])
    val_mix, val_src = fixed_mixtures(val_clips, MixConfig(), args.val_mixtures, 1234)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    args.out.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(args.out, enabled=env.is_main, resume=args.resume)
    start, best = 0, -math.inf
    if args.resume:
        ck = load_checkpoint(args.out / "last.pt", model=model, optimizer=opt)
        start, best = ck.epoch + 1, ck.best_metric or -math.inf
        log.truncate(start)
    ddp = wrap_ddp(model.to(env.device), env)
    loader = make_loader(dataset, args.batch, env, shuffle=True, seed=args.seed, drop_last=True)
    total = args.ann_epochs + args.snn_epochs
    for epoch in range(start, total):
        stage = "ann" if epoch < args.ann_epochs else "snn"
        model.spiking = stage == "snn"
        if epoch == args.ann_epochs and env.is_main:
            export_model(args.out / "ann.esp", model, False, _meta(args, log, "ann"))
        if stage == "ann":  # cosine decay over the ANN stage
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * epoch / args.ann_epochs))
        else:
            lr = args.snn_lr
        for group in opt.param_groups:
            group["lr"] = lr
        dataset.epoch = epoch
        set_epoch(loader, epoch)
        t0, loss_sum, n = time.perf_counter(), 0.0, 0
        for mix, src in progress(loader, env, desc=f"{stage} epoch {epoch}"):
            mix, src = mix.to(env.device), src.to(env.device)
            best_pit, _ = pit_si_snr(ddp(mix), src)
            loss = -best_pit.mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            loss_sum += float(loss.detach()) * len(mix)
            n += len(mix)
        loss_sum, n = all_reduce_sum([loss_sum, n], env)
        val = validate(unwrap(ddp), val_mix.to(env.device), val_src.to(env.device))
        best = max(best, val) if stage == "snn" else best
        row = dict(
            epoch=epoch,
            stage=stage,
            train_si_snr=-loss_sum / n,
            val_si_snri=val,
            lr=opt.param_groups[0]["lr"],
            seconds=time.perf_counter() - t0,
        )
        log.log(**row)
        if env.is_main:
            print(
                " ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                ),
                flush=True,
            )
            save_checkpoint(
                args.out / "last.pt", model=model, optimizer=opt, epoch=epoch, best_metric=best
            )
            log.plot(
                "epoch", ["train_si_snr", "val_si_snri"], stage_key="stage", title="separation"
            )
    if env.is_main:
        model.spiking = False
        if args.snn_epochs == 0:
            export_model(args.out / "ann.esp", model, False, _meta(args, log, "ann"))
        export_model(args.out / "snn.esp", model, True, _meta(args, log, "snn"))
    return 0


def _meta(args: argparse.Namespace, log: MetricsLog, stage: str) -> dict:
    rows = [r for r in log.rows if r.get("stage") == stage]
    return {
        "version": "0.1",
        "training": {
            "trainer": "eventsp.train.separation.train",
            "stage": stage,
            "data": "speech_commands_v2_test_dev, train speakers (crc32 split)",
            "ann_epochs": args.ann_epochs,
            "snn_epochs": args.snn_epochs,
            "steps_per_epoch": args.steps_per_epoch,
            "batch": args.batch,
            "seed": args.seed,
            "noise": bool(args.noise),
            "val_si_snri_db": rows[-1]["val_si_snri"] if rows else None,
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
