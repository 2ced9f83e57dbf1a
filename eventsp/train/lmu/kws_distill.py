"""Knowledge distillation for the keyword-spotting LMU: a non-spiking teacher and the loss.

The student (the budgeted hybrid-spiking LMU of ``kws``) is small and trained on few clips;
a larger non-spiking teacher without a synaptic-operation budget, trained once on the same
training speakers (``python -m eventsp.train.lmu.kws_teacher``), gives soft posteriors for
every augmented training clip, and the student learns from a mix of its label and the
teacher's posteriors (Hinton, Vinyals, Dean 2015):

    loss = (1 - w) * CE(student, label) + w * T^2 * KL(teacher_T || student_T)

where ``_T`` is a softmax at temperature ``T``. With ``--frames K`` every supervised step of
the student is matched to the teacher's one posterior for the whole clip.

- :class:`TeacherCNN`: a residual 1-D convolutional network over the whole log-mel clip
  (time convolutions with the mel bands as channels, as TC-ResNet), standardising its raw
  log-mel input with the training set's mean and std held in buffers.
- :func:`load_teachers`, :func:`teacher_posteriors`: checkpoints written by ``kws_teacher``,
  and the (ensemble-mean) tempered posteriors of raw log-mel clips.
- :func:`distill_loss`: the loss above.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from eventsp.train import loop

__all__ = [
    "TeacherCNN",
    "TeacherConfig",
    "distill_loss",
    "load_teachers",
    "teacher_posteriors",
]


@dataclass(frozen=True)
class TeacherConfig:
    """Sizes of a :class:`TeacherCNN`: ``channels`` per residual block, each halving time."""

    n_mels: int = 40
    channels: tuple[int, ...] = (64, 96, 128)
    kernel: int = 9
    classes: int = 12
    dropout: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        for name in ("n_mels", "kernel", "classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TeacherConfig.{name} is {value!r}; expected an int >= 1")
        if not self.channels or any(not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(
                f"TeacherConfig.channels is {self.channels!r}; expected ints >= 1, one per block"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TeacherConfig.dropout is {self.dropout!r}; expected in [0, 1)")


class _Block(nn.Module):
    """conv(k, stride 2) -> BN -> ReLU -> conv(k) -> BN, plus a strided 1x1 shortcut; ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(cin, cout, kernel, stride=2, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(cout)
        self.conv2 = nn.Conv1d(cout, cout, kernel, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(cout)
        self.skip = nn.Sequential(
            nn.Conv1d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm1d(cout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + self.skip(x))


class TeacherCNN(nn.Module):
    """Logits ``(batch, classes)`` of raw log-mel clips ``(batch, frames, n_mels)``."""

    def __init__(
        self, config: TeacherConfig, mean: np.ndarray | None = None, std: np.ndarray | None = None
    ) -> None:
        super().__init__()
        self.config = c = config
        shape = (c.n_mels,)
        mean = np.zeros(shape) if mean is None else np.asarray(mean, np.float64)
        std = np.ones(shape) if std is None else np.asarray(std, np.float64)
        if mean.shape != shape or std.shape != shape or not np.all(std > 0):
            raise ValueError(
                f"feature mean {mean.shape} and std {std.shape} must both have shape {shape} "
                "(one per mel band) and std must be > 0"
            )
        self.register_buffer("mean", torch.from_numpy(mean).float())
        self.register_buffer("std", torch.from_numpy(std).float())
        self.stem = nn.Sequential(
            nn.Conv1d(c.n_mels, c.channels[0], 3, padding=1, bias=False),
            nn.BatchNorm1d(c.channels[0]),
            nn.ReLU(),
        )
        widths = (c.channels[0], *c.channels)
        self.blocks = nn.Sequential(
            *(_Block(a, b, c.kernel) for a, b in itertools.pairwise(widths))
        )
        self.dropout = nn.Dropout(c.dropout)
        self.output = nn.Linear(c.channels[-1], c.classes)

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """Raw log-mel ``(batch, frames, n_mels)`` -> standardised per mel band."""
        if x.ndim != 3 or x.shape[2] != self.config.n_mels:
            raise ValueError(
                f"log-mel input has shape {tuple(x.shape)}; expected (batch, frames, "
                f"{self.config.n_mels})"
            )
        return (x - self.mean) / self.std

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of standardised features ``z (batch, frames, n_mels)``."""
        h = self.blocks(self.stem(z.transpose(1, 2)))
        return self.output(self.dropout(h.mean(dim=2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.standardise(x))


def save_teacher(path: Path, model: TeacherCNN, epoch: int, best: float | None) -> Path:
    """A ``loop`` checkpoint that :func:`load_teachers` rebuilds (the sizes in its state)."""
    config = asdict(model.config)
    config["channels"] = list(config["channels"])
    return loop.save_checkpoint(
        path, model=model, epoch=epoch, best_metric=best, state={"teacher_config": config}
    )


def load_teachers(paths: Sequence[Path]) -> list[TeacherCNN]:
    """The teachers saved by ``kws_teacher`` at ``paths``, in eval mode."""
    teachers = []
    for path in paths:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        config = (
            payload.get("state", {}).get("teacher_config") if isinstance(payload, dict) else None
        )
        if config is None:
            raise ValueError(
                f"{str(path)!r} is not a keyword-spotting teacher (no teacher_config in its "
                "state); pass a best.pt written by python -m eventsp.train.lmu.kws_teacher"
            )
        model = TeacherCNN(TeacherConfig(**config))
        loop.load_checkpoint(path, model=model, restore_rng=False)
        teachers.append(model.eval())
    return teachers


@torch.no_grad()
def teacher_posteriors(
    teachers: Sequence[TeacherCNN], logmel: np.ndarray, temperature: float, chunk: int = 256
) -> torch.Tensor:
    """Mean over ``teachers`` of ``softmax(logits / temperature)`` of raw ``logmel (N, T, F)``."""
    if not teachers:
        raise ValueError("no teachers given; pass at least one teacher checkpoint")
    if not temperature > 0:
        raise ValueError(f"temperature is {temperature!r}; expected > 0")
    x = torch.from_numpy(np.ascontiguousarray(logmel, np.float32))
    total = torch.zeros(len(x), teachers[0].config.classes)
    for teacher in teachers:
        teacher.eval()
        for i in range(0, len(x), chunk):
            total[i : i + chunk] += torch.softmax(teacher(x[i : i + chunk]) / temperature, dim=1)
    return total / len(teachers)


def distill_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    soft: torch.Tensor,
    weight: float,
    temperature: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """``(1 - w) CE + w T^2 KL(soft || softmax(logits / T))`` averaged over clips and steps.

    ``logits``: ``(batch, classes)`` or ``(batch, K, classes)`` (every step has the clip's
    label and the teacher's posterior); ``labels (batch,)``; ``soft (batch, classes)``, the
    teacher's posteriors at the same ``temperature``.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"distillation weight is {weight!r}; expected in [0, 1]")
    if not temperature > 0:
        raise ValueError(f"temperature is {temperature!r}; expected > 0")
    if logits.ndim == 2:
        logits = logits[:, None]
    B, K, C = logits.shape
    if labels.shape != (B,) or soft.shape != (B, C):
        raise ValueError(
            f"labels {tuple(labels.shape)} and teacher posteriors {tuple(soft.shape)} must be "
            f"({B},) and ({B}, {C}) for logits {tuple(logits.shape)}"
        )
    flat = logits.reshape(B * K, C)
    hard = functional.cross_entropy(
        flat, labels[:, None].expand(B, K).reshape(-1), label_smoothing=label_smoothing
    )
    target = soft[:, None].expand(B, K, C).reshape(B * K, C)
    log_student = functional.log_softmax(flat / temperature, dim=1)
    kl = functional.kl_div(log_student, target, reduction="batchmean") * temperature**2
    return (1.0 - weight) * hard + weight * kl
