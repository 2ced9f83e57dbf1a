"""Shared training infrastructure: distributed set-up, loaders, progress, checkpoints, logs.

Every trainer in ``eventsp.train`` builds on these pieces:

- ``setup_distributed()`` / ``teardown_distributed(env)``: under ``torchrun`` (``WORLD_SIZE``
  set in the environment) initialise ``torch.distributed`` from ``env://`` with gloo on CPU
  or NCCL on CUDA; otherwise a single process. Returns a ``DistEnv`` (rank, world size,
  device) that the other helpers take.
- ``wrap_ddp(model, env)`` / ``unwrap(model)``: DistributedDataParallel when distributed
  (gradients are averaged over ranks on ``backward``), the model itself otherwise.
- ``make_loader(dataset, batch_size, env, ...)``: a ``DataLoader`` with a
  ``DistributedSampler`` when distributed; call ``set_epoch(loader, epoch)`` every epoch.
- ``progress(iterable, env, ...)``: a tqdm bar on rank 0 only.
- ``all_reduce_sum(values, env)``: sum of metric counters over ranks (e.g. correct, total).
- ``save_checkpoint(path, ...)`` / ``load_checkpoint(path, ...)``: model, optimizer,
  scheduler, epoch, best metric, free-form trainer state (e.g. the stage of a schedule) and
  every RNG state, written atomically (temporary file + ``os.replace``); only rank 0 writes.
  Loading uses ``torch.load(weights_only=True)``: checkpoints hold tensors and plain
  containers only.
- ``MetricsLog(folder)``: appends one row per call to ``metrics.csv`` and ``metrics.jsonl``
  and draws ``curves.png`` (matplotlib, Agg) with ``plot_curves``.

Typical use (keep the model in a function: ``teardown_distributed`` collects the dropped
``DistributedDataParallel``, which sits in a reference cycle, while the process group is alive; one
still alive at interpreter exit can abort the process when gloo's threads die late)::

    def train(env):
        model = wrap_ddp(Net().to(env.device), env)
        loader = make_loader(train_set, 64, env, shuffle=True, seed=0)
        for epoch in range(start, epochs):
            set_epoch(loader, epoch)
            for x, y in progress(loader, env, desc=f"epoch {epoch}"):
                ...
            if env.is_main:
                save_checkpoint(run / "last.pt", model=model, optimizer=opt, epoch=epoch)

    env = setup_distributed()
    try:
        train(env)
    finally:
        teardown_distributed(env)
"""

from __future__ import annotations

import atexit
import csv
import gc
import json
import math
import os
import random
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class DistEnv:
    """Where this process runs: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None  # "gloo" / "nccl" when distributed, None when single process

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"rank {self.rank} of world size {self.world_size} is impossible; expected "
                "0 <= rank < world_size (check RANK and WORLD_SIZE set by torchrun)"
            )

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str | None = None) -> DistEnv:
    """Initialise ``torch.distributed`` when launched by torchrun, else a single process.

    ``device``: "cpu", "cuda" or None (CUDA when available). Under torchrun each rank uses
    ``cuda:LOCAL_RANK`` with NCCL, or the CPU with gloo.
    """
    if device not in (None, "cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported; pass 'cpu', 'cuda' or None")
    use_cuda = torch.cuda.is_available() if device is None else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but CUDA is not available; use 'cpu'")
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        dev = torch.device("cuda") if use_cuda else torch.device("cpu")
        return DistEnv(device=dev)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")
        # DistributedDataParallel sits in a reference cycle, so a dropped DDP model lives on
        # until the garbage collector runs, holding the process group. Freed during interpreter
        # finalization, the gloo group's threads abort the process ("terminate called without
        # an active exception"); collect while the interpreter is still whole.
        atexit.register(gc.collect)
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, device=dev, backend=backend)


def teardown_distributed(env: DistEnv) -> None:
    """Destroy the process group made by ``setup_distributed`` (no-op for one process)."""
    if env.distributed and dist.is_initialized():
        gc.collect()  # free DDP models dropped by the caller while the group is alive (above)
        dist.barrier()
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def wrap_ddp(model: torch.nn.Module, env: DistEnv) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` when distributed, else ``model`` unchanged."""
    if not env.distributed:
        return model
    ids = [env.device.index] if env.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def make_loader(
    dataset: Dataset,
    batch_size: int,
    env: DistEnv,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader; each rank sees its own ``1/world_size`` share when distributed."""
    if batch_size < 1:
        raise ValueError(f"batch_size {batch_size} must be >= 1")
    if env.distributed:
        sampler = DistributedSampler(
            dataset,
            num_replicas=env.world_size,
            rank=env.rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=num_workers,
        )
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        generator=generator if shuffle else None,
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Reshuffle a distributed sampler for ``epoch`` (no-op otherwise)."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)


def progress(
    iterable: Iterable,
    env: DistEnv,
    *,
    desc: str = "",
    total: int | None = None,
    enabled: bool = True,
) -> Iterable:
    """A tqdm progress bar on rank 0 (to stderr); the bare iterable elsewhere."""
    if not (enabled and env.is_main):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


def all_reduce_sum(values: Sequence[float], env: DistEnv) -> list[float]:
    """Sum counters (correct, total, loss sums, ...) over ranks; float64 on every rank."""
    if not env.distributed:
        return [float(v) for v in values]
    device = env.device if env.backend == "nccl" else torch.device("cpu")
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def broadcast_module(module: torch.nn.Module, env: DistEnv) -> None:
    """Copy rank 0's parameters and buffers to every rank (after a restore on rank 0)."""
    if not env.distributed:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the legacy global generator, for user code)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state(legacy=True)  # noqa: NPY002
    state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state(  # noqa: NPY002
        ("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass(frozen=True)
class Checkpoint:
    """What ``load_checkpoint`` restored besides the module/optimizer/scheduler states."""

    epoch: int
    best_metric: float | None
    state: dict[str, Any]


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    epoch: int = 0,
    best_metric: float | None = None,
    state: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (a crash never leaves a half-written file at ``path``).

    ``state``: trainer state made of tensors, numbers, strings, lists and dicts (e.g. the
    stage of a schedule). Call on rank 0 only (``env.is_main``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": CHECKPOINT_VERSION,
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": int(epoch),
        "best_metric": None if best_metric is None else float(best_metric),
        "state": dict(state or {}),
        "rng": _rng_state(),
    }
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Restore what ``save_checkpoint`` wrote into the given objects; return the rest."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {str(path)!r} does not exist; pass the path of a file written by "
            "save_checkpoint (e.g. RUN/last.pt), or start without --resume"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint {str(path)!r} cannot be read ({exc}); it is corrupt") from exc
    if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
        found = payload.get("version") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"checkpoint {str(path)!r} has version {found!r}, expected {CHECKPOINT_VERSION}; "
            "it was not written by eventsp.train.loop.save_checkpoint"
        )
    if model is not None:
        unwrap(model).load_state_dict(payload["model"])
    if optimizer is not None and payload["optimizer"] is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None and payload["scheduler"] is not None:
        scheduler.load_state_dict(payload["scheduler"])
    if restore_rng:
        _set_rng_state(payload["rng"])
    return Checkpoint(
        epoch=payload["epoch"], best_metric=payload["best_metric"], state=payload["state"]
    )


class MetricsLog:
    """Training metrics as ``metrics.csv`` + ``metrics.jsonl`` in ``folder`` (rank 0 writes).

    Rows are dicts of numbers/strings; the CSV header is the union of keys seen so far (the
    file is rewritten when a new key appears). ``resume=True`` keeps existing rows.
    """

    def __init__(
        self, folder: str | os.PathLike, *, enabled: bool = True, resume: bool = False
    ) -> None:
        self.folder = Path(folder)
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        if not enabled:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        jsonl = self.folder / "metrics.jsonl"
        if resume and jsonl.is_file():
            self.rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line]
        else:
            jsonl.write_text("")
        self._write_csv()

    @property
    def keys(self) -> list[str]:
        keys: dict[str, None] = {}
        for row in self.rows:
            keys.update(dict.fromkeys(row))
        return list(keys)

    def log(self, **row: Any) -> None:
        if not self.enabled:
            return
        clean = {
            k: (v.item() if isinstance(v, torch.Tensor | np.generic) else v) for k, v in row.items()
        }
        self.rows.append(clean)
        with open(self.folder / "metrics.jsonl", "a") as f:
            f.write(json.dumps(clean) + "\n")
        self._write_csv()

    def truncate(self, n_rows: int) -> None:
        """Keep the first ``n_rows`` rows (on resume: drop rows logged after the checkpoint)."""
        if not self.enabled or n_rows >= len(self.rows):
            return
        self.rows = self.rows[: max(0, n_rows)]
        with open(self.folder / "metrics.jsonl", "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in self.rows)
        self._write_csv()

    def _write_csv(self) -> None:
        with open(self.folder / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.keys)
            writer.writeheader()
            writer.writerows(self.rows)

    def plot(
        self,
        x: str,
        ys: Sequence[str],
        *,
        stage_key: str | None = None,
        name: str = "curves.png",
        title: str = "",
    ) -> Path | None:
        if not self.enabled:
            return None
        return plot_curves(
            self.rows, self.folder / name, x=x, ys=ys, stage_key=stage_key, title=title
        )


def plot_curves(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    x: str,
    ys: Sequence[str],
    stage_key: str | None = None,
    title: str = "",
) -> Path:
    """PNG of each ``ys`` column against ``x``; ``stage_key`` shades and labels the stages."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    try:
        for key in ys:
            pts = [(r[x], r[key]) for r in rows if _is_number(r.get(key)) and x in r]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker=".", label=key)
        if stage_key is not None:
            _shade_stages(ax, rows, x, stage_key)
        ax.set_xlabel(x)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="lower right", fontsize="small")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _shade_stages(ax: Any, rows: Sequence[Mapping[str, Any]], x: str, stage_key: str) -> None:
    spans: list[tuple[str, float, float]] = []
    for r in rows:
        if stage_key not in r or x not in r:
            continue
        stage, pos = str(r[stage_key]), float(r[x])
        if spans and spans[-1][0] == stage:
            spans[-1] = (stage, spans[-1][1], pos)
        else:
            spans.append((stage, pos, pos))
    for i, (stage, lo, hi) in enumerate(spans):
        ax.axvspan(lo - 0.5, hi + 0.5, color=f"C{i % 10}", alpha=0.08)
        ax.annotate(
            stage,
            xy=((lo + hi) / 2, 1.0),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="bottom",
            fontsize="x-small",
            rotation=30,
        )
