"""PTL session-5 pieces: cross-layer equalisation, the one-shot ``prune`` stage, results files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eventsp.train import loop  # noqa: E402
from eventsp.train.ptl.equalise import (  # noqa: E402
    _column_ranges,
    _input_channels,
    _row_ranges,
    channel_activation_ranges,
    equalise,
    scale_channels,
)
from eventsp.train.ptl.network import LayerSpec, TandemNet  # noqa: E402
from eventsp.train.ptl.schedule import plan_stages  # noqa: E402
from eventsp.train.ptl.trainer import (  # noqa: E402
    PTLConfig,
    apply_stage,
    set_trainable,
    train_ptl,
)


def _grouped_net(seed: int = 0) -> TandemNet:
    """conv 6 -> grouped conv 6 (3 groups) -> depthwise conv 6 -> dense 5, with batch norm
    statistics that are not the identity."""
    torch.manual_seed(seed)
    net = TandemNet(
        [
            LayerSpec("conv", 6, 3, 1, 1),
            LayerSpec("conv", 6, 3, 2, 1, groups=3),
            LayerSpec("conv", 6, 3, 1, 0, groups=6),
            LayerSpec("dense", 5),
        ],
        (1, 8, 8),
        4,
    )
    with torch.no_grad():
        for layer in net.layers[:-1]:
            c = layer.spec.out
            layer.bn.running_mean.copy_(torch.randn(c) * 0.3)
            layer.bn.running_var.copy_(torch.rand(c) * 4 + 0.1)
            layer.bn.weight.copy_(torch.rand(c) * 3 + 0.2)
            layer.bn.bias.copy_(torch.randn(c) * 0.5)
            # channels of very different sizes, so that equalising has work to do
            layer.syn.weight.mul_(torch.logspace(-1, 1, c).view(-1, 1, 1, 1))
    return net


def _images(rng, n=40) -> np.ndarray:
    return rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8)


def _out(net: TandemNet, x: np.ndarray, train: bool) -> torch.Tensor:
    net.train(train)
    with torch.no_grad():
        return net(torch.from_numpy(x).float() / 255)


def test_input_channels_of_grouped_and_dense_layers():
    net = _grouped_net()
    ch = _input_channels(net.layers[1], 6)  # 3 groups: outputs 0,1 read inputs 0,1; ...
    assert ch[:, :, 0, 0].tolist() == [[0, 1], [0, 1], [2, 3], [2, 3], [4, 5], [4, 5]]
    depthwise = _input_channels(net.layers[2], 6)
    assert depthwise[:, 0, 1, 2].tolist() == [0, 1, 2, 3, 4, 5]
    dense = _input_channels(net.layers[3], 6)  # (6, 2, 2) flattened: 4 columns per channel
    assert dense[0].tolist() == [c for c in range(6) for _ in range(4)]


@pytest.mark.parametrize("mode", ["weights", "activations"])
@pytest.mark.parametrize("train", [False, True])
def test_equalising_keeps_the_ann_function(mode, train, rng):
    x = _images(rng)
    net = _grouped_net()
    before = _out(net, x, train)
    factors = equalise(net, mode, x)
    assert max(float(f.max() / f.min()) for f in factors) > 2  # it did rescale channels
    torch.testing.assert_close(_out(net, x, train), before, rtol=1e-4, atol=1e-5)


def test_equalising_a_folded_network_keeps_its_function(rng):
    x = _images(rng)
    net = _grouped_net()
    for layer in net.layers:
        layer.fold_batch_norm()
    before = _out(net, x, False)
    equalise(net, "weights")
    torch.testing.assert_close(_out(net, x, False), before, rtol=1e-4, atol=1e-5)


def test_activation_equalisation_gives_every_channel_the_same_range(rng):
    x = _images(rng, 60)
    net = _grouped_net()
    spread = [channel_activation_ranges(net, k, x) for k in range(3)]
    assert max(float(a.max() / a.min()) for a in spread) > 2
    equalise(net, "activations", x)
    for k in range(3):
        a = channel_activation_ranges(net, k, x)
        a = a[a > 0]  # channels that never fire keep their factor 1
        assert len(a) >= 2
        torch.testing.assert_close(a, torch.full_like(a, float(a.mean())), rtol=1e-3, atol=0)


def test_activation_equalisation_strength_is_an_exponent(rng):
    x = _images(rng, 60)
    full, half = _grouped_net(), _grouped_net()
    f_full = equalise(full, "activations", x)
    f_half = equalise(half, "activations", x, strength=0.5)
    # layer 0's ranges do not depend on the other layers' factors: exactly the square root
    torch.testing.assert_close(f_half[0], f_full[0].sqrt(), rtol=1e-5, atol=0)


def test_weight_equalisation_balances_neighbouring_ranges():
    torch.manual_seed(3)
    net = TandemNet([LayerSpec("conv", 4, 3, 1, 1), LayerSpec("dense", 3)], (1, 5, 5), 4)
    with torch.no_grad():
        net.layers[0].syn.weight.mul_(torch.tensor([0.1, 1.0, 3.0, 10.0]).view(-1, 1, 1, 1))
    net.layers[0].fold_batch_norm()
    r, c = _row_ranges(net.layers[0]), _column_ranges(net.layers[1], 4)
    equalise(net, "weights", sweeps=1)
    r2, c2 = _row_ranges(net.layers[0]), _column_ranges(net.layers[1], 4)
    torch.testing.assert_close(r2, c2, rtol=1e-5, atol=0)
    torch.testing.assert_close(r2, (r * c).sqrt(), rtol=1e-5, atol=0)


def test_equalise_refuses_spiking_layers_and_bad_arguments(rng):
    net = _grouped_net()
    with pytest.raises(ValueError, match="unknown"):
        equalise(net, "channels")
    with pytest.raises(ValueError, match="strength is 0"):
        equalise(net, "activations", _images(rng), strength=0)
    with pytest.raises(ValueError, match="calibration images"):
        equalise(net, "activations")
    with pytest.raises(ValueError, match="6 positive factors"):
        scale_channels(net, 0, torch.tensor([1.0, -1.0, 1.0, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="not a hidden layer"):
        scale_channels(net, 3, torch.ones(5))
    net.layers[1].spiking.fill_(True)
    with pytest.raises(ValueError, match="spikes already"):
        scale_channels(net, 0, torch.ones(6))


def test_prune_stage_is_planned_once_after_the_ann():
    names = [s.name for s in plan_stages(3, bits=(4,), fan_in=64, prune_all=True)]
    assert names == ["ann", "prune:64", "spike:0", "bits:0:4", "spike:1", "bits:1:4",
                     "bits:2:4", "final"]  # fmt: skip
    with pytest.raises(ValueError, match="needs a fan_in"):
        plan_stages(3, bits=(4,), prune_all=True)


def test_prune_stage_prunes_every_layer_and_trains_the_whole_ann(rng):
    net = _grouped_net()
    x = _images(rng)
    stages = plan_stages(4, bits=(4,), fan_in=5, prune_all=True)
    apply_stage(net, stages[1], x, readout_fan_in=False)
    fan_in = [int((layer.mask.flatten(1) != 0).sum(1).max()) for layer in net.layers]
    assert fan_in == [5, 5, 5, 24]  # the readout (24 inputs) is spared
    apply_stage(net, stages[1], x)
    assert int((net.layers[3].mask != 0).sum(1).max()) == 5
    set_trainable(net, stages[1], stages)
    assert not any(bool(layer.frozen) for layer in net.layers)


def test_config_validates_pruning_and_equalising():
    with pytest.raises(ValueError, match="prune_epochs is 0"):
        PTLConfig(fan_in=8, prune_epochs=0)
    with pytest.raises(ValueError, match="together with a fan_in"):
        PTLConfig(prune_epochs=2)
    with pytest.raises(ValueError, match="equalise is 'both'"):
        PTLConfig(equalise="both")
    with pytest.raises(ValueError, match=r"equalise_strength is 1\.5"):
        PTLConfig(equalise="activations", equalise_strength=1.5)


def test_pruned_ann_is_saved_and_a_later_run_skips_its_prune_stage(small_mnist, tmp_path):
    torch.set_num_threads(1)
    cfg = PTLConfig(arch="tiny", T=4, batch_size=50, ann_epochs=1, stage_epochs=1, patience=1,
                    bits=(4,), fan_in=8, prune_epochs=2, equalise="activations",
                    calib_samples=100, progress=False)  # fmt: skip
    lines: list[str] = []
    net = train_ptl(cfg, small_mnist, tmp_path / "a", log=lambda *a: lines.append(str(a[0])))
    rows = (tmp_path / "a" / "metrics.csv").read_text().splitlines()
    assert sum(",prune:8," in row for row in rows) == 1 + 2  # entry + prune_epochs epochs
    assert any(line.startswith("equalised (activations") for line in lines)
    assert all(la.fan_in() <= 8 for la in net.layers)
    pruned = TandemNet(net.specs, net.in_shape, 4)
    loop.load_checkpoint(tmp_path / "a" / "pruned.pt", model=pruned, restore_rng=False)
    assert not any(bool(layer.spiking) for layer in pruned.layers)
    assert int((pruned.layers[1].mask != 0).sum(1).max()) == 8
    again = dataclasses.replace(cfg, init_ann=str(tmp_path / "a" / "pruned.pt"))
    lines.clear()
    train_ptl(again, small_mnist, tmp_path / "b", log=lambda *a: lines.append(str(a[0])))
    assert any("no prune stage" in line for line in lines)
    assert "prune:" not in (tmp_path / "b" / "metrics.csv").read_text()
