"""Spiking ResNets for STBP-tdBN training: from a small N-MNIST net up to ResNet-19.

Layout (every tensor time-major, ``(T, N, C, H, W)``)::

    stem:   conv3x3(in -> c0) -> tdBN -> LIF  [-> AvgPool(stem_pool)]
    stage:  `blocks` basic blocks of `channels`, the first with `stride`
    block:  conv3x3 -> tdBN -> LIF -> conv3x3 -> tdBN(alpha=1/sqrt2) --+--> add -> LIF
            shortcut: identity, or conv1x1(stride) -> tdBN(alpha=1/sqrt2) -+
    head:   [AvgPool over the whole map] -> flatten [-> FC(hidden) -> LIF] -> FC(classes)

The output is the per-step logits of the last FC layer (no spikes); the prediction is their
mean over time (the runtime's ``Readout(mode="mean")``), trained with cross-entropy.

``ARCHS`` names the configurations: ``"nmnist"`` (the bundled default, about 3 M synaptic
operations per step when dense), ``"tiny"`` (tests), ``"resnet19"`` (Zheng et al. 2021:
128-channel stem, stages 3x128, 3x256/2, 2x512/2, global pool, FC 256, FC classes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from eventsp.train.stbp.neurons import LIF, RESIDUAL_ALPHA, TdBN, merge_time, split_time

__all__ = ["ARCHS", "ArchConfig", "BasicBlock", "ConvBN", "SpikingResNet", "build"]


@dataclass(frozen=True)
class ArchConfig:
    """A spiking ResNet. ``stages``: ``(channels, blocks, stride)`` each."""

    in_channels: int = 2
    input_size: tuple[int, int] = (34, 34)
    classes: int = 10
    stem_channels: int = 16
    stem_pool: int = 2
    stages: tuple[tuple[int, int, int], ...] = ((32, 1, 2), (64, 1, 2))
    global_pool: bool = False
    hidden: int = 0
    decay: float = 0.25
    threshold: float = 0.5
    width: float = 1.0

    def __post_init__(self) -> None:
        ints = [
            self.in_channels,
            self.classes,
            self.stem_channels,
            self.stem_pool,
            *self.input_size,
        ]
        if any(int(v) != v or v < 1 for v in ints) or self.hidden < 0:
            raise ValueError(f"{self}: channel, class, pool and size fields must be ints >= 1")
        for stage in self.stages:
            if len(stage) != 3 or any(int(v) != v or v < 1 for v in stage):
                raise ValueError(f"stage {stage}; expected (channels, blocks, stride) ints >= 1")
        if not 0 <= self.decay <= 1 or self.threshold <= 0 or self.width <= 0:
            raise ValueError(
                f"decay={self.decay}, threshold={self.threshold}, width={self.width}; expected "
                "0 <= decay <= 1, threshold > 0, width > 0"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["stages"] = [list(s) for s in self.stages]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ArchConfig:
        d = dict(d)
        d["input_size"] = tuple(d["input_size"])
        d["stages"] = tuple(tuple(s) for s in d["stages"])
        return cls(**d)


ARCHS: dict[str, ArchConfig] = {
    "nmnist": ArchConfig(),
    "tiny": ArchConfig(stem_channels=4, stages=((8, 1, 2),), stem_pool=2),
    "resnet19": ArchConfig(
        stem_channels=128,
        stem_pool=1,
        stages=((128, 3, 1), (256, 3, 2), (512, 2, 2)),
        global_pool=True,
        hidden=256,
    ),
}


class ConvBN(nn.Module):
    """conv (no bias) + tdBN on ``(T, N, C, H, W)``."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, threshold: float, alpha: float
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.bn = TdBN(cout, threshold, alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(merge_time(x))
        return split_time(self.bn.forward_merged(y), x.shape[0])


class BasicBlock(nn.Module):
    """The residual block of the module docstring."""

    def __init__(self, cin: int, cout: int, stride: int, cfg: ArchConfig) -> None:
        super().__init__()
        th = cfg.threshold
        self.conv1 = ConvBN(cin, cout, 3, stride, th, 1.0)
        self.lif1 = LIF(cfg.decay, th, cfg.width)
        self.conv2 = ConvBN(cout, cout, 3, 1, th, RESIDUAL_ALPHA)
        self.shortcut = (
            ConvBN(cin, cout, 1, stride, th, RESIDUAL_ALPHA) if stride != 1 or cin != cout else None
        )
        self.lif2 = LIF(cfg.decay, th, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.lif1(self.conv1(x)))
        y = y + (x if self.shortcut is None else self.shortcut(x))
        return self.lif2(y)


class SpikingResNet(nn.Module):
    """``forward(x (T, N, C, H, W)) -> logits (T, N, classes)`` per step; see the module doc."""

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        self.cfg = cfg
        th = cfg.threshold
        self.stem = ConvBN(cfg.in_channels, cfg.stem_channels, 3, 1, th, 1.0)
        self.stem_lif = LIF(cfg.decay, th, cfg.width)
        self.stem_pool = nn.AvgPool2d(cfg.stem_pool) if cfg.stem_pool > 1 else None
        blocks = []
        cin = cfg.stem_channels
        h, w = cfg.input_size
        h, w = h // cfg.stem_pool, w // cfg.stem_pool
        for channels, n, stride in cfg.stages:
            for i in range(n):
                s = stride if i == 0 else 1
                blocks.append(BasicBlock(cin, channels, s, cfg))
                cin = channels
                h, w = (h - 1) // s + 1, (w - 1) // s + 1
        self.blocks = nn.ModuleList(blocks)
        self.feature_shape = (cin, h, w)
        self.pool = nn.AvgPool2d((h, w)) if cfg.global_pool else None
        features = cin if cfg.global_pool else cin * h * w
        if cfg.hidden:
            self.fc_hidden = nn.Linear(features, cfg.hidden)
            self.hidden_lif = LIF(cfg.decay, th, cfg.width)
            features = cfg.hidden
        else:
            self.fc_hidden, self.hidden_lif = None, None
        self.fc = nn.Linear(features, cfg.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"input has shape {tuple(x.shape)}; expected (T, N, C, H, W)")
        steps = x.shape[0]
        y = self.stem_lif(self.stem(x))
        if self.stem_pool is not None:
            y = split_time(self.stem_pool(merge_time(y)), steps)
        for block in self.blocks:
            y = block(y)
        if self.pool is not None:
            y = split_time(self.pool(merge_time(y)), steps)
        y = y.flatten(2)
        if self.fc_hidden is not None:
            y = self.hidden_lif(self.fc_hidden(y))
        return self.fc(y)

    def spiking_layers(self) -> dict[str, LIF]:
        """Every LIF by its export name (the runtime graph's node names)."""
        return {_lif_name(name): m for name, m in self.named_modules() if isinstance(m, LIF)}


def _lif_name(module_name: str) -> str:
    return module_name.replace(".", "_")


def build(arch: str | ArchConfig) -> SpikingResNet:
    """A model from a name in :data:`ARCHS` or an :class:`ArchConfig`."""
    if isinstance(arch, str):
        if arch not in ARCHS:
            raise ValueError(f"architecture {arch!r} is unknown; expected one of {sorted(ARCHS)}")
        arch = ARCHS[arch]
    return SpikingResNet(arch)
