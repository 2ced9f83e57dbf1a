"""``eventsp train-ptl``: train an image classifier by progressive tandem learning (PTL).

Runs the whole schedule (ANN, layer-by-layer conversion, fan-in and weight-precision stages,
final phase; see ``eventsp.train.ptl.schedule``), then measures the spiking network (the exact
simulation the runtime reproduces), its ANN, and optionally the classic conversion of that ANN,
and exports the runtime model (``.esp``). It measures on the validation split, unless ``--test``
asks for the held-out test split: compare candidate runs on validation, then measure the one
you chose once with ``--test`` (``--skip-train --test`` measures a finished run again without
training), so that no test figure takes part in the choice. Under ``torchrun
--nproc_per_node N eventsp train-ptl ...`` (or ``python -m torch.distributed.run``) it trains
with DDP (gloo on CPU, NCCL on GPU). The run folder holds checkpoints (``--resume``),
``metrics.csv``, ``curves.png``, ``results.json`` (the latest measurement) and
``results-val.json`` / ``results-test.json`` (the latest on each split).

Examples::

    eventsp train-ptl --dataset mnist --T 8 --bits 8 --ann-epochs 10 --epoch-samples 12000 \\
        --dropout 0.2 --compare-classic 8 16 32 64 --out runs/mnist --test  # the bundled model
    eventsp train-ptl --dataset mnist --bits 8 4 --fan-in 64 --no-readout-fan-in \\
        --init-ann runs/mnist/ann.pt --stage-epochs 1 --epoch-samples 4000 --out runs/mnist4
    eventsp train-ptl --dataset cifar10 --cifar-root ~/data/cifar-10-batches-py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from eventsp.cli import UsageError

HELP = "train an image classifier SNN by progressive tandem learning; export it for the runtime"

DATASETS = ("mnist", "cifar10-subset", "cifar10")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--dataset", choices=DATASETS, default="mnist")
    a("--data", type=Path, default=Path("../shared/data"), help="shared data folder")
    a("--cifar-root", type=Path, default=None, help="full CIFAR-10 (data_batch_1..5, test_batch)")
    a(
        "--arch",
        default=None,
        help="network (default: mnist32 for MNIST, cifar for CIFAR-10); "
        "mnist-ae is the spiking autoencoder (image reconstruction, PSNR)",
    )
    a(
        "--augment",
        choices=("auto", "none", "shift", "shift-flip"),
        default="auto",
        help="training augmentation; auto: shift (+-2 px, +-8 deg) for MNIST, shift-flip "
        "for CIFAR-10",
    )
    a("--dropout", type=float, default=0.0, help="dropout on the readout's input (training)")
    a("--T", type=int, default=8, help="time steps per image (default: %(default)s)")
    a("--bits", type=int, nargs="*", default=[8], help="weight precision stages, e.g. 8 4 2")
    a("--fan-in", type=int, default=None, help="max incoming connections per neuron")
    a(
        "--acc-shift",
        type=int,
        default=None,
        help="extra fractional bits of quantised layers' membranes (0..16; default: per layer, "
        "the fewest that round the threshold within 1%%)",
    )
    a(
        "--prune-first",
        action="store_true",
        help="prune every layer to --fan-in on the ANN (fine-tuned) before converting any layer",
    )
    a(
        "--prune-epochs",
        type=int,
        default=None,
        help="prune every layer to --fan-in at once after the ANN stage, then retrain the "
        "whole ANN for this many full epochs (cosine learning rate from --prune-lr); writes "
        "OUT/pruned.pt, which --init-ann accepts (its prune stage is then skipped)",
    )
    a("--prune-lr", type=float, default=1e-3, help="peak learning rate of --prune-epochs")
    a("--no-readout-fan-in", action="store_true", help="--fan-in spares the readout layer")
    a(
        "--equalise",
        choices=("none", "weights", "activations"),
        default="none",
        help="before the first layer spikes, rescale the ANN's channels (its function is "
        "unchanged): 'activations' gives every channel the same activation range under its "
        "layer's one threshold, 'weights' equalises weight ranges (Nagel et al. 2019)",
    )
    a(
        "--equalise-strength",
        type=float,
        default=1.0,
        help="exponent (0, 1] of --equalise activations: below 1 keeps weights less spread",
    )
    a("--batch-size", type=int, default=128)
    a("--lr", type=float, default=2e-3, help="ANN learning rate")
    a("--stage-lr", type=float, default=2e-4, help="conversion/constraint stages")
    a("--final-lr", type=float, default=5e-5, help="final phase")
    a("--ann-epochs", type=int, default=8, help="max epochs of ANN pre-training")
    a("--stage-epochs", type=int, default=2, help="max epochs per later stage")
    a("--final-epochs", type=int, default=None, help="max epochs of the final phase")
    a("--patience", type=int, default=1, help="epochs without improvement that end a stage")
    a("--epoch-samples", type=int, default=None, help="samples per epoch after the ANN stage")
    a("--init-ann", type=Path, default=None, help="start from this ann.pt (skip ANN training)")
    a(
        "--compare-classic",
        type=int,
        nargs="*",
        default=[],
        metavar="T",
        help="also measure classic conversion of the ANN at these T",
    )
    a("--out", type=Path, default=Path("runs/ptl"), help="run folder")
    a("--export", type=Path, default=None, help="model file (default: OUT/model.esp)")
    a("--resume", action="store_true", help="continue from OUT/last.pt")
    a("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    a("--threads", type=int, default=1, help="torch CPU threads per process")
    a("--seed", type=int, default=0)
    a("--no-progress", action="store_true", help="no progress bars")
    a("--skip-train", action="store_true", help="measure and export OUT/final.pt again")
    a("--limit-train", type=int, default=None, help="use the first N training images (quick runs)")
    a("--limit-val", type=int, default=None, help="use the first N validation images")
    a("--limit-test", type=int, default=None, help="measure on the first N test images")
    a("--test", action="store_true", help="measure on the held-out test split (the chosen run)")


def load_dataset(args: argparse.Namespace):
    from eventsp.train.data.images import CIFAR10_LABELS, load_cifar10, load_image_npz, load_mnist

    try:
        if args.dataset == "mnist":
            return load_mnist(args.data / "mnist" / "mnist.npz", seed=args.seed)
        if args.dataset == "cifar10-subset":
            path = args.data / "cifar10_subset" / "cifar10_subset_train2000_test1000.npz"
            return load_image_npz(path, seed=args.seed, labels=CIFAR10_LABELS)
        if args.cifar_root is None:
            raise UsageError(
                "--dataset cifar10 needs --cifar-root (the cifar-10-batches-py folder)"
            )
        return load_cifar10(args.cifar_root, seed=args.seed)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _limit(splits, args: argparse.Namespace):
    import dataclasses

    cut = {}
    for name in ("train", "val", "test"):
        n = getattr(args, f"limit_{name}")
        if n is not None:
            if n < 1:
                raise UsageError(f"--limit-{name} is {n}; expected a number of images >= 1")
            cut[f"x_{name}"] = getattr(splits, f"x_{name}")[:n]
            cut[f"y_{name}"] = getattr(splits, f"y_{name}")[:n]
    return dataclasses.replace(splits, **cut)


def run(args: argparse.Namespace) -> int:
    import torch

    from eventsp.train import loop
    from eventsp.train.ptl.evaluate import (
        ann_accuracy,
        classic_conversion,
        reconstruction_psnr,
        snn_metrics,
        synops_ratio_at_equal_accuracy,
    )
    from eventsp.train.ptl.export import export_model
    from eventsp.train.ptl.network import build
    from eventsp.train.ptl.trainer import PTLConfig, is_autoencoder, train_ptl

    torch.set_num_threads(args.threads)
    splits = _limit(load_dataset(args), args)
    arch = args.arch or ("mnist32" if args.dataset == "mnist" else "cifar")
    augment = args.augment
    if augment == "auto":
        augment = "shift" if args.dataset == "mnist" else "shift-flip"
    try:
        config = PTLConfig(
            arch=arch,
            T=args.T,
            batch_size=args.batch_size,
            lr=args.lr,
            stage_lr=args.stage_lr,
            final_lr=args.final_lr,
            ann_epochs=args.ann_epochs,
            stage_epochs=args.stage_epochs,
            final_epochs=args.final_epochs,
            patience=args.patience,
            bits=tuple(args.bits),
            fan_in=args.fan_in,
            acc_shift=args.acc_shift,
            readout_fan_in=not args.no_readout_fan_in,
            prune_first=args.prune_first,
            prune_epochs=args.prune_epochs,
            prune_lr=args.prune_lr,
            equalise=args.equalise,
            equalise_strength=args.equalise_strength,
            epoch_samples=args.epoch_samples,
            augment=augment,
            dropout=args.dropout,
            seed=args.seed,
            device=args.device,
            progress=not args.no_progress,
            init_ann=None if args.init_ann is None else str(args.init_ann),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.resume and not (args.out / "last.pt").is_file():
        raise UsageError(f"--resume: {str(args.out / 'last.pt')!r} does not exist")
    if args.skip_train:
        final = args.out / "final.pt"
        if not final.is_file():
            raise UsageError(f"--skip-train: {str(final)!r} does not exist; train first")
        model = build(arch, splits.shape, args.T, len(splits.labels))
        loop.load_checkpoint(final, model=model, restore_rng=False)
        model.eval()
    else:
        model = train_ptl(
            config, splits, args.out, resume=args.resume, log=lambda *a: print(*a, flush=True)
        )
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 measures, exports
        return 0
    model = model.cpu()
    results = {"dataset": args.dataset, "arch": arch, "config": vars(config) | {"bits": args.bits}}
    ann_ckpt = config.init_ann or str(args.out / "ann.pt")
    split = "test" if args.test else "val"
    x_eval, y_eval = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
    results["split"] = split
    name = "test" if args.test else "validation"
    if is_autoencoder(model):  # image reconstruction: PSNR of the SNN against its ANN
        results["snn"] = reconstruction_psnr(model, x_eval)
        if Path(ann_ckpt).is_file():
            ann = build(arch, splits.shape, args.T, len(splits.labels))
            loop.load_checkpoint(ann_ckpt, model=ann, restore_rng=False)
            results["ann"] = reconstruction_psnr(ann, x_eval)
            print(f"ANN {name} PSNR {results['ann']['psnr_db']:.2f} dB")
        print(f"SNN {name} PSNR {results['snn']['psnr_db']:.2f} dB at T={args.T}")
        _write_results(args.out, results)
        return 0
    snn = snn_metrics(model, x_eval, y_eval)
    results["snn"] = snn.as_dict()
    print(
        f"SNN {name} accuracy {snn.accuracy:.4f} at T={snn.T}; "
        f"{snn.synops_per_image:.0f} synops/image, {snn.input_macs_per_image:.0f} input MACs"
    )
    export = args.export or args.out / "model.esp"
    meta = {
        "labels": list(splits.labels),
        "accuracy": {split: snn.accuracy, f"{split}_images": len(x_eval)},
        "dataset": args.dataset,
        "training": {"method": "progressive tandem learning", **results["config"]},
    }
    export_model(model, export, meta)
    print(f"model written to {export}")
    _write_results(args.out, results)
    if Path(ann_ckpt).is_file():
        ann = build(arch, splits.shape, args.T, len(splits.labels))
        loop.load_checkpoint(ann_ckpt, model=ann, restore_rng=False)
        results["ann_accuracy"] = ann_accuracy(ann, x_eval, y_eval)
        print(f"ANN {name} accuracy {results['ann_accuracy']:.4f}")
        classic = []
        for T in args.compare_classic:
            m = snn_metrics(classic_conversion(ann, splits.x_train[:2000], T), x_eval, y_eval)
            classic.append(m.as_dict())
            results["classic"] = classic
            _write_results(args.out, results)
            print(
                f"classic conversion T={T}: accuracy {m.accuracy:.4f}, "
                f"{m.synops_per_image:.0f} synops/image"
            )
        results["classic"] = classic
        ratio = synops_ratio_at_equal_accuracy(results["snn"], classic)
        if classic:
            results["classic_ratio"] = ratio
            print(
                "no classic conversion reaches the SNN's accuracy; try larger --compare-classic T"
                if ratio is None
                else f"classic T={ratio['classic_T']} reaches the SNN's accuracy with "
                f"{ratio['ratio']:.1f}x its synops ({ratio['ratio_with_input']:.1f}x counting "
                "the input layer's MACs)"
            )
    _write_results(args.out, results)
    return 0


def _write_results(out: Path, results: dict) -> None:
    """``results.json`` (the latest measurement) and ``results-<split>.json``, so that
    measuring the test split does not overwrite the validation record, nor the reverse."""
    text = json.dumps(results, indent=1, default=str)
    (out / "results.json").write_text(text)
    (out / f"results-{results['split']}.json").write_text(text)
