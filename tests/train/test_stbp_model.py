"""Spiking ResNets: configurations, shapes, ResNet-19 forward/backward, validation."""

from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")

from eventsp.train.stbp.model import ARCHS, ArchConfig, build  # noqa: E402


def test_resnet19_builds_and_runs_forward_backward_on_a_tiny_input():
    torch.set_num_threads(1)
    cfg = dataclasses.replace(ARCHS["resnet19"], input_size=(8, 8))
    model = build(cfg)
    # ResNet-19: stem + 3 + 3 + 2 basic blocks (2 convs each) + FC 256 + FC out = 19 layers.
    convs = [
        m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) + len(linears) == 19
    assert [len(model.blocks), model.feature_shape] == [8, (512, 2, 2)]
    x = (torch.rand(2, 1, 2, 8, 8) < 0.3).float()
    logits = model(x)
    assert logits.shape == (2, 1, 10)
    logits.mean(0).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.stem.conv.weight.grad.abs().sum() > 0


def test_default_nmnist_shapes_and_spiking_layer_names():
    model = build("nmnist")
    assert model.feature_shape == (64, 5, 5)
    names = list(model.spiking_layers())
    assert names == ["stem_lif", "blocks_0_lif1", "blocks_0_lif2", "blocks_1_lif1", "blocks_1_lif2"]
    out = model((torch.rand(3, 2, 2, 34, 34) < 0.2).float())
    assert out.shape == (3, 2, 10)


def test_config_round_trip_and_validation():
    cfg = ARCHS["resnet19"]
    assert ArchConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="stage"):
        ArchConfig(stages=((32, 0, 1),))
    with pytest.raises(ValueError, match="decay"):
        ArchConfig(decay=2.0)
    with pytest.raises(ValueError, match="unknown"):
        build("resnet1000")
    with pytest.raises(ValueError, match=r"\(T, N, C, H, W\)"):
        build("tiny")(torch.zeros(2, 34, 34))
