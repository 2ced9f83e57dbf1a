"""The PTL training driver: stages, tandem epochs, checkpoints/resume, logs, DDP.

``train_ptl(config, splits, run_dir)`` runs the schedule of ``eventsp.train.ptl.schedule``
on one process or under ``torchrun`` (gradients averaged by DDP; validation counts summed over
ranks). The run folder gets ``last.pt`` (resume point, written every epoch), ``stage_best.pt``
(best state of the current stage), ``ann.pt`` (the pre-trained ANN), ``metrics.csv`` /
``metrics.jsonl`` and ``curves.png`` (validation accuracy across the stages). With
``prune_epochs`` the run also writes ``pruned.pt``: the ANN pruned to the fan-in limit and
retrained (a later run's ``init_ann`` can start from it; its ``prune`` stage is then skipped).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch name)
from torch.utils.data import TensorDataset

from eventsp.train import loop
from eventsp.train.data.images import ImageSplits
from eventsp.train.ptl.equalise import EQUALISE_MODES, equalise
from eventsp.train.ptl.network import MAX_ACC_SHIFT, TandemNet, build
from eventsp.train.ptl.schedule import Patience, Stage, plan_stages


@dataclass(frozen=True)
class PTLConfig:
    """Hyper-parameters of a PTL run (see ``eventsp train-ptl --help``)."""

    arch: str = "mnist"
    T: int = 8
    batch_size: int = 64
    lr: float = 1e-3  # ANN pre-training
    stage_lr: float = 2e-4  # conversion and constraint stages
    final_lr: float = 5e-5  # final phase
    ann_epochs: int = 10  # at most, for the ANN
    stage_epochs: int = 4  # at most, per later stage
    final_epochs: int | None = None  # at most, for the final phase (None: stage_epochs)
    patience: int = 2
    bits: tuple[int, ...] = ()
    fan_in: int | None = None
    acc_shift: int | None = None  # accumulator shift of quantised layers (None: automatic)
    readout_fan_in: bool = True  # False: the fan-in limit spares the non-spiking readout
    prune_first: bool = False  # True: prune every layer's fan-in on the ANN, before spiking
    prune_epochs: int | None = None  # set: prune all layers at once, retrain the ANN this long
    prune_lr: float = 1e-3  # peak (cosine) learning rate of that retraining
    equalise: str = "none"  # "weights" / "activations": equalise the ANN before spike:0
    equalise_strength: float = 1.0  # exponent of the activation equalisation, in (0, 1]
    epoch_samples: int | None = None  # samples per epoch after the ANN stage (None: all)
    init_ann: str | None = None  # an ann.pt of an earlier run: skip ANN pre-training
    calib_samples: int = 2000
    augment: str = "none"  # "none", "shift" (digits: shifts, small rotations), "shift-flip"
    dropout: float = 0.0  # on the readout's input, training only (the SNN never drops)
    seed: int = 0
    device: str | None = "cpu"
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", tuple(int(b) for b in self.bits))
        for name in ("T", "batch_size", "ann_epochs", "stage_epochs", "patience", "calib_samples"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} is {getattr(self, name)!r}; expected an int >= 1")
        if self.final_epochs is not None and self.final_epochs < 1:
            raise ValueError(f"final_epochs is {self.final_epochs!r}; expected an int >= 1 or None")
        if self.epoch_samples is not None and self.epoch_samples < self.batch_size:
            raise ValueError(
                f"epoch_samples {self.epoch_samples} is below batch_size {self.batch_size}"
            )
        plan_stages(2, self.bits, self.fan_in)  # validates bits and fan-in
        if self.prune_epochs is not None and (self.prune_epochs < 1 or self.fan_in is None):
            raise ValueError(
                f"prune_epochs is {self.prune_epochs!r} with fan_in {self.fan_in!r}; expected "
                "an int >= 1 together with a fan_in limit (or None)"
            )
        if self.acc_shift is not None and not 0 <= self.acc_shift <= MAX_ACC_SHIFT:
            raise ValueError(
                f"acc_shift is {self.acc_shift!r}; expected an int in 0..{MAX_ACC_SHIFT} "
                "(or None to choose it per layer)"
            )
        if self.equalise not in EQUALISE_MODES:
            raise ValueError(f"equalise is {self.equalise!r}; expected one of {EQUALISE_MODES}")
        if not 0.0 < self.equalise_strength <= 1.0:
            raise ValueError(
                f"equalise_strength is {self.equalise_strength}; expected a number in (0, 1]"
            )
        if self.augment not in AUGMENTATIONS:
            raise ValueError(
                f"augment is {self.augment!r}; expected one of {AUGMENTATIONS} "
                "('shift' for digits, 'shift-flip' for natural images)"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout is {self.dropout}; expected a probability in [0, 1)")


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, 1]."""
    return x.to(torch.float32) / 255.0


AUGMENTATIONS = ("none", "shift", "shift-flip")


def shift_batch(
    x: torch.Tensor, gen: torch.Generator, max_shift: float = 2.0, max_degrees: float = 8.0
) -> torch.Tensor:
    """Per image: a random translation of up to ``max_shift`` pixels in x and y and a rotation
    of up to ``max_degrees`` (bilinear, zero outside), for digits (no flips: they change
    digits). Pixels are rounded back to the 1/255 grid of the uint8 images the SNN sees."""
    b, _, h, w = x.shape
    u = torch.rand(b, 3, generator=gen) * 2.0 - 1.0
    angle = u[:, 0] * math.radians(max_degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid works in normalised coordinates [-1, 1]: one pixel is 2/w (2/h).
    tx, ty = u[:, 1] * max_shift * 2.0 / w, u[:, 2] * max_shift * 2.0 / h
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return torch.round(out.clamp(0.0, 1.0) * 255.0) / 255.0


def augment_batch(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 4 pixels (zero padded) and horizontal flips (natural images)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy, dx = torch.randint(0, 9, (2,), generator=gen).tolist()
    out = padded[:, :, dy : dy + h, dx : dx + w]
    flip = torch.rand(b, generator=gen) < 0.5
    return torch.where(flip.view(b, 1, 1, 1), out.flip(3), out)


@torch.no_grad()
def evaluate(
    model: TandemNet, x: np.ndarray, y: np.ndarray, env: loop.DistEnv, batch_size: int = 256
) -> float:
    """Accuracy of the tandem pass (eval mode), or PSNR in dB for an autoencoder; each rank
    takes its share, sums are reduced over ranks."""
    model.eval()
    idx = np.arange(env.rank, len(x), env.world_size)
    correct = 0.0
    for i in range(0, len(idx), batch_size):
        sel = idx[i : i + batch_size]
        xb = to_float(torch.from_numpy(x[sel])).to(env.device)
        out = model(xb)
        if is_autoencoder(model):
            correct += float(((out - xb.flatten(1)) ** 2).mean(1).sum())
        else:
            correct += int((out.argmax(1).cpu().numpy() == y[sel]).sum())
    c, n = loop.all_reduce_sum([correct, len(idx)], env)
    return psnr(c / n) if is_autoencoder(model) else c / n


def is_autoencoder(model: TandemNet) -> bool:
    """True when the readout reconstructs the input image (regression, MSE loss)."""
    return model.layers[-1].spec.out == math.prod(model.in_shape)


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1]."""
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


@torch.no_grad()
def calibrate(model: TandemNet, layer: int, x: np.ndarray, percentile: float = 99.9) -> float:
    """θ = the ``percentile`` of layer's positive ANN activations on images ``x``."""
    model.eval()
    acts = []
    for i in range(0, len(x), 256):
        a = model(to_float(torch.from_numpy(x[i : i + 256])), collect=layer)
        acts.append(a[a > 0].flatten())
    a = torch.cat(acts)
    if a.numel() == 0:
        return 1.0
    if a.numel() > 4_000_000:
        gen = torch.Generator().manual_seed(0)
        a = a[torch.randint(0, a.numel(), (4_000_000,), generator=gen)]
    return max(float(torch.quantile(a, percentile / 100.0)), 1e-6)


def apply_stage(
    model: TandemNet,
    stage: Stage,
    calib_x: np.ndarray,
    acc_shift: int | None = None,
    readout_fan_in: bool = True,
) -> None:
    """Do what entering ``stage`` does to the network (convert, prune, quantise).

    A ``bits`` stage also sets the layer's accumulator shift: ``acc_shift``, or the automatic
    choice of :meth:`TandemNet.set_acc_shift` when it is None. A ``prune`` stage prunes every
    layer (the readout too, unless ``readout_fan_in`` is False) to its fan-in."""
    if stage.action in ("ann", "final"):
        return
    if stage.action == "prune":
        for layer in model.layers:
            if readout_fan_in or not layer.readout:
                layer.set_fan_in(stage.value)
        return
    layer = model.layers[stage.layer]
    if stage.action == "spike":
        layer.fold_batch_norm()
        layer.threshold.fill_(calibrate(model, stage.layer, calib_x))
        layer.spiking.fill_(True)
    elif stage.action == "fanin":
        layer.set_fan_in(stage.value)
    elif stage.action == "bits":
        layer.bits.fill_(stage.value)
        model.set_acc_shift(stage.layer, acc_shift)


def set_trainable(model: TandemNet, stage: Stage, stages: list[Stage]) -> None:
    """Freeze layers whose stages are over; the others (and everything in final) train.

    A ``fanin`` stage while no layer spikes yet (``prune_first``) and a ``prune`` stage train
    the whole ANN."""
    ann_phase = stage.action == "prune" or (
        stage.action == "fanin" and not any(bool(la.spiking) for la in model.layers)
    )
    for k, layer in enumerate(model.layers):
        later = [s for s in stages[stages.index(stage) :] if s.layer == k]
        frozen = stage.action != "final" and stage.action != "ann" and not later
        frozen = frozen or (stage.action != "final" and k < stage.layer)
        frozen = frozen and not ann_phase
        layer.frozen.fill_(frozen)
        for p in layer.syn.parameters():
            p.requires_grad_(not frozen)
        if layer.bn is not None:
            for p in layer.bn.parameters():
                p.requires_grad_(not frozen and not bool(layer.folded))


def _stage_lr(config: PTLConfig, stage: Stage) -> float:
    lrs = {"ann": config.lr, "prune": config.prune_lr, "final": config.final_lr}
    return lrs.get(stage.action, config.stage_lr)


def _max_epochs(config: PTLConfig, stage: Stage) -> int:
    if stage.action == "final" and config.final_epochs is not None:
        return config.final_epochs
    if stage.action == "prune":
        return int(config.prune_epochs or 1)
    return config.ann_epochs if stage.action == "ann" else config.stage_epochs


def train_epoch(
    ddp: torch.nn.Module,
    loader,
    opt,
    env: loop.DistEnv,
    config: PTLConfig,
    gen: torch.Generator,
    desc: str,
) -> tuple[float, float]:
    ddp.train()
    for layer in loop.unwrap(ddp).layers:  # folded / frozen batch norms keep their statistics
        if layer.bn is not None and (bool(layer.folded) or bool(layer.frozen)):
            layer.bn.eval()
    loss_sum = correct = seen = 0.0
    autoencoder = is_autoencoder(loop.unwrap(ddp))
    for xb, yb in loop.progress(loader, env, desc=desc, enabled=config.progress):
        x = to_float(xb).to(env.device)
        if config.augment == "shift":
            x = shift_batch(x, gen)
        elif config.augment == "shift-flip":
            x = augment_batch(x, gen)
        y = yb.to(env.device)
        logits = ddp(x)
        loss = F.mse_loss(logits, x.flatten(1)) if autoencoder else F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += float(loss.detach()) * len(y)
        if not autoencoder:
            correct += float((logits.argmax(1) == y).sum())
        seen += len(y)
    loss_sum, correct, seen = loop.all_reduce_sum([loss_sum, correct, seen], env)
    if autoencoder:
        return loss_sum / seen, psnr(loss_sum / seen)
    return loss_sum / seen, correct / seen


def _loader(splits: ImageSplits, config: PTLConfig, env: loop.DistEnv, epoch: int, full: bool):
    n = len(splits.x_train)
    if not full and config.epoch_samples is not None and config.epoch_samples < n:
        rng = np.random.default_rng(config.seed * 100_003 + epoch)
        sel = np.sort(rng.choice(n, config.epoch_samples, replace=False))
    else:
        sel = np.arange(n)
    ds = TensorDataset(torch.from_numpy(splits.x_train[sel]), torch.from_numpy(splits.y_train[sel]))
    per_rank = max(1, config.batch_size // env.world_size)
    loader = loop.make_loader(ds, per_rank, env, shuffle=True, seed=config.seed + epoch)
    loop.set_epoch(loader, epoch)
    return loader


def train_ptl(
    config: PTLConfig, splits: ImageSplits, run_dir: str | Path, *, resume: bool = False, log=print
) -> TandemNet:
    """Run the whole PTL schedule; returns the (rank-local) trained :class:`TandemNet`."""
    run_dir = Path(run_dir)
    env = loop.setup_distributed(config.device)
    try:
        return _train(config, splits, run_dir, env, resume, log if env.is_main else _quiet)
    finally:
        loop.teardown_distributed(env)


def _quiet(*_args: Any, **_kwargs: Any) -> None:
    return None


def _train(config, splits, run_dir, env, resume, log) -> TandemNet:
    loop.seed_everything(config.seed)
    model = build(config.arch, splits.shape, config.T, len(splits.labels)).to(env.device)
    model.dropout = config.dropout
    stages = plan_stages(
        len(model.layers),
        config.bits,
        config.fan_in,
        config.readout_fan_in,
        config.prune_first,
        prune_all=config.prune_epochs is not None,
    )
    calib_x = splits.x_train[: config.calib_samples]
    metrics = loop.MetricsLog(run_dir, enabled=env.is_main, resume=resume)
    start, sched_state, epoch = 0, None, 0
    if resume:
        info = loop.load_checkpoint(run_dir / "last.pt", model=model)
        start, sched_state, epoch = info.state["stage"], info.state["scheduler"], info.epoch
        metrics.truncate(info.state.get("log_rows", len(metrics.rows)))
        log(f"resumed at stage {stages[start].name}, epoch {epoch}")
    elif config.init_ann is not None:
        info = loop.load_checkpoint(config.init_ann, model=model, restore_rng=False)
        start = 1
        log(f"ANN from {config.init_ann} (val_acc={info.best_metric})")
        if stages[1].action == "prune" and _meets_fan_in(model, config):
            start = 2
            log(f"{config.init_ann} is pruned to fan-in {config.fan_in} already: no prune stage")
    gen = torch.Generator().manual_seed(config.seed + env.rank)
    for index in range(start, len(stages)):
        stage = stages[index]
        # ANN pre-training and the pruned ANN's retraining: a cosine learning-rate schedule
        # over all their epochs; later stages stop adaptively (patience).
        ann = stage.action in ("ann", "prune")
        max_epochs = _max_epochs(config, stage)
        sched = Patience(config.patience, max_epochs, min_epochs=max_epochs if ann else 1)
        resuming = sched_state is not None
        if resuming:  # inside this stage: its best state is in stage_best.pt
            sched.load(sched_state)
            best_model = copy.deepcopy(model)
            loop.load_checkpoint(run_dir / "stage_best.pt", model=best_model, restore_rng=False)
            best = best_model.state_dict()
            sched_state = None
        else:
            t0 = time.perf_counter()
            if stage.action == "spike" and not any(bool(la.spiking) for la in model.layers):
                _equalise(model, config, calib_x, log)
            apply_stage(model, stage, calib_x, config.acc_shift, config.readout_fan_in)
            acc = evaluate(model, splits.x_val, splits.y_val, env)
            sched.best, sched.best_epoch = acc, 0
            best = copy.deepcopy(model.state_dict())
            if env.is_main:
                loop.save_checkpoint(run_dir / "stage_best.pt", model=model, epoch=epoch)
            thr = [round(float(layer.threshold), 4) for layer in model.layers[:-1]]
            shifts = [int(layer.acc_shift) for layer in model.layers]
            log(
                f"[{stage.name}] entered: val_acc={acc:.4f} thresholds={thr} shifts={shifts} "
                f"({time.perf_counter() - t0:.1f} s)"
            )
            metrics.log(epoch=epoch, stage=stage.name, val_acc=acc, event="enter")
        set_trainable(model, stage, stages)
        params = [p for p in model.parameters() if p.requires_grad]
        ddp = loop.wrap_ddp(model, env)
        opt = torch.optim.Adam(params, lr=_stage_lr(config, stage))
        lr_sched = None
        if ann:
            lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max_epochs)
        if resuming:
            loop.load_checkpoint(run_dir / "last.pt", optimizer=opt, scheduler=lr_sched)
        while not sched.done:
            t0 = time.perf_counter()
            loader = _loader(splits, config, env, epoch, full=ann)
            loss, train_acc = train_epoch(
                ddp, loader, opt, env, config, gen, desc=f"{stage.name} e{sched.epochs + 1}"
            )
            lr = opt.param_groups[0]["lr"]
            if lr_sched is not None:
                lr_sched.step()
            acc = evaluate(model, splits.x_val, splits.y_val, env)
            epoch += 1
            if sched.step(acc):
                best = copy.deepcopy(model.state_dict())
                if env.is_main:
                    loop.save_checkpoint(run_dir / "stage_best.pt", model=model, epoch=epoch)
            metrics.log(
                epoch=epoch,
                stage=stage.name,
                val_acc=acc,
                train_acc=train_acc,
                loss=loss,
                lr=lr,
            )
            log(
                f"[{stage.name}] epoch {sched.epochs}: loss={loss:.4f} train_acc={train_acc:.4f}"
                f" val_acc={acc:.4f} best={sched.best:.4f} ({time.perf_counter() - t0:.1f} s)"
            )
            if env.is_main:
                loop.save_checkpoint(
                    run_dir / "last.pt",
                    model=model,
                    optimizer=opt,
                    scheduler=lr_sched,
                    epoch=epoch,
                    best_metric=sched.best,
                    state={
                        "stage": index,
                        "scheduler": sched.state(),
                        "config": _jsonable(config),
                        "log_rows": len(metrics.rows),
                    },
                )
        del ddp, opt  # the next stage wraps the model anew (its trainable set changes)
        model.load_state_dict(best)  # restore the stage's best checkpoint
        log(f"[{stage.name}] done: restored best val_acc={sched.best:.4f}")
        if ann and env.is_main:
            name = "ann.pt" if stage.action == "ann" else "pruned.pt"
            loop.save_checkpoint(run_dir / name, model=model, epoch=epoch, best_metric=sched.best)
        if env.is_main and index + 1 < len(stages):
            loop.save_checkpoint(
                run_dir / "last.pt",
                model=model,
                epoch=epoch,
                best_metric=sched.best,
                state={
                    "stage": index + 1,
                    "log_rows": len(metrics.rows),
                    "scheduler": None,
                    "config": _jsonable(config),
                },
            )
        metrics.plot(
            "epoch",
            ["val_acc", "train_acc"],
            stage_key="stage",
            title=f"PTL {config.arch} T={config.T}",
        )
    for layer in model.layers:
        layer.frozen.fill_(True)
    model.eval()
    if env.is_main:
        loop.save_checkpoint(
            run_dir / "final.pt", model=model, epoch=epoch, state={"config": _jsonable(config)}
        )
    return model


def _equalise(model: TandemNet, config: PTLConfig, calib_x: np.ndarray, log) -> None:
    """Equalise the ANN's channels (``config.equalise``) before its first layer spikes."""
    if config.equalise == "none":
        return
    factors = equalise(model, config.equalise, calib_x[:500], config.equalise_strength)
    spread = [round(float(f.max() / f.min()), 2) for f in factors]
    mode = f"{config.equalise}, strength {config.equalise_strength}"
    log(f"equalised ({mode}): channel factors' max/min per hidden layer {spread}")


def _meets_fan_in(model: TandemNet, config: PTLConfig) -> bool:
    """True when every layer the fan-in limit covers has at most ``fan_in`` inputs per neuron."""
    return all(
        layer.fan_in() <= int(config.fan_in or 0)
        for layer in model.layers
        if config.readout_fan_in or not layer.readout
    )


def _jsonable(config: PTLConfig) -> dict[str, Any]:
    d = asdict(config)
    d["bits"] = list(config.bits)
    return d
