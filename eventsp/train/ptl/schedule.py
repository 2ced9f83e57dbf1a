"""The progressive schedule of PTL: its stages and the adaptive (patience) scheduler.

Stages, in order::

    ann                      pre-train the ANN (batch norm, ReLU)
    for each hidden layer k:
        spike:k              fold BN, calibrate θ_k (99.9th percentile of activations), convert
        fanin:k              prune to ``fan_in`` incoming weights per neuron   (if fan_in set;
                             with prune_first, every fanin:k comes right after ann instead;
                             with prune_all, one ``prune:F`` stage right after ann prunes
                             every layer at once and retrains the whole ANN)
        bits:k:B             quantise to B bits, for each B in ``bits`` (e.g. 8, 4, 2)
    for the readout L:       fanin:L, bits:L:B (its constraints)
    final                    fine-tune every layer at the lower learning rate

Each stage trains until validation accuracy has not improved for ``patience`` epochs (or
``max_epochs``); then the best checkpoint of the stage is restored. A layer is frozen once its
last stage is over, so the layers above adapt to its spikes (tandem learning).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple


class Stage(NamedTuple):
    """One stage: ``action`` on ``layer`` (-1 for ann/final) with ``value`` (bits or fan-in)."""

    action: Literal["ann", "prune", "spike", "fanin", "bits", "final"]
    layer: int = -1
    value: int = 0

    @property
    def name(self) -> str:
        if self.action in ("ann", "final"):
            return self.action
        if self.action == "spike":
            return f"spike:{self.layer}"
        if self.action == "prune":
            return f"prune:{self.value}"
        return f"{self.action}:{self.layer}:{self.value}"


def plan_stages(
    n_layers: int,
    bits: tuple[int, ...] = (),
    fan_in: int | None = None,
    readout_fan_in: bool = True,
    prune_first: bool = False,
    prune_all: bool = False,
) -> list[Stage]:
    """The stage list for ``n_layers`` synaptic layers (the last is the readout).

    ``readout_fan_in=False`` leaves the (non-spiking) readout's fan-in unconstrained.
    ``prune_first=True`` puts every ``fanin`` stage right after ``ann``, so the whole ANN is
    pruned and fine-tuned (layer by layer, nothing frozen) before any layer spikes.
    ``prune_all=True`` replaces those stages by one ``prune`` stage that prunes every layer at
    once (the trainer then retrains the whole ANN with a cosine learning rate)."""
    if n_layers < 2:
        raise ValueError(f"n_layers is {n_layers}; PTL needs a hidden layer and a readout")
    for b in bits:
        if not 2 <= b <= 8:
            raise ValueError(f"bit width {b} is outside 2..8; pass e.g. --bits 8 4")
    if list(bits) != sorted(bits, reverse=True):
        raise ValueError(f"bits {bits} must decrease (8 then 4 then 2): precision only drops")
    if prune_all and fan_in is None:
        raise ValueError("prune_all needs a fan_in limit; pass e.g. --fan-in 64")
    if prune_all and prune_first:
        raise ValueError(
            "prune_all (--prune-epochs) and prune_first (--prune-first) both prune the ANN "
            "before any layer spikes; choose one"
        )
    stages = [Stage("ann")]
    pruned = [
        k for k in range(n_layers) if fan_in is not None and (readout_fan_in or k < n_layers - 1)
    ]
    if prune_all:
        stages.append(Stage("prune", -1, fan_in))
        pruned = []
    elif prune_first:
        stages.extend(Stage("fanin", k, fan_in) for k in pruned)
    for k in range(n_layers):
        if k < n_layers - 1:
            stages.append(Stage("spike", k))
        if k in pruned and not prune_first:
            stages.append(Stage("fanin", k, fan_in))
        stages.extend(Stage("bits", k, b) for b in bits)
    stages.append(Stage("final"))
    return stages


@dataclass
class Patience:
    """Adaptive scheduler: stop a stage when the metric has not improved for ``patience``."""

    patience: int
    max_epochs: int
    min_epochs: int = 1
    best: float = float("-inf")
    best_epoch: int = -1
    epochs: int = 0

    def __post_init__(self) -> None:
        if self.patience < 1 or self.max_epochs < 1 or self.min_epochs < 0:
            raise ValueError(
                f"patience {self.patience}, max_epochs {self.max_epochs} must be >= 1 and "
                f"min_epochs {self.min_epochs} >= 0"
            )

    def step(self, metric: float) -> bool:
        """Record one epoch's metric; True when it is the best so far (save a checkpoint)."""
        self.epochs += 1
        improved = metric > self.best
        if improved:
            self.best, self.best_epoch = metric, self.epochs
        return improved

    @property
    def done(self) -> bool:
        if self.epochs >= self.max_epochs:
            return True
        return self.epochs >= self.min_epochs and self.epochs - self.best_epoch >= self.patience

    def state(self) -> dict[str, float | int]:
        return {"best": self.best, "best_epoch": self.best_epoch, "epochs": self.epochs}

    def load(self, state: dict[str, float | int]) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.epochs = int(state["epochs"])
