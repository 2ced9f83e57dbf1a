"""PTL grouped convs (depthwise spiking pool) and the fan-in <= 64 architecture."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eventsp.model.format import load_model  # noqa: E402
from eventsp.runtime import Network  # noqa: E402
from eventsp.train.ptl.export import export_model, to_graph  # noqa: E402
from eventsp.train.ptl.network import (  # noqa: E402
    LayerSpec,
    TandemNet,
    auto_acc_shift,
    build,
)
from eventsp.train.ptl.schedule import plan_stages  # noqa: E402
from eventsp.train.ptl.trainer import apply_stage  # noqa: E402

# 28x28 -> 14x14x8 -> 7x7x8 (groups 4: 2 input channels per group) -> 1x1x8 (depthwise) -> 10
GROUPED = (
    LayerSpec("conv", 8, 3, 2, 1),
    LayerSpec("conv", 8, 3, 2, 1, groups=4),
    LayerSpec("conv", 8, 7, 1, 0, groups=8),
    LayerSpec("dense", 10),
)


@pytest.fixture(scope="module")
def digits(data_root):
    with np.load(data_root / "mnist" / "mnist.npz", allow_pickle=False) as f:
        return f["x_test"][:96].reshape(-1, 1, 28, 28)


def _convert(model: TandemNet, images: np.ndarray, bits, fan_in) -> TandemNet:
    """Run every stage's conversion (no training): calibrate, prune, quantise."""
    torch.manual_seed(0)
    model.eval()
    for stage in plan_stages(len(model.layers), bits, fan_in):
        apply_stage(model, stage, images)
    for layer in model.layers:
        layer.frozen.fill_(True)
    return model


def test_layer_spec_validates_groups():
    with pytest.raises(ValueError, match="groups 3 must be >= 1 and divide out=8"):
        LayerSpec("conv", 8, 3, groups=3)
    with pytest.raises(ValueError, match="dense layer has groups=1"):
        LayerSpec("dense", 10, groups=2)
    with pytest.raises(ValueError, match="must divide its 8 input channels"):
        TandemNet((LayerSpec("conv", 8), LayerSpec("conv", 6, groups=3), LayerSpec("dense", 2)),
                  (1, 12, 12), 4)  # fmt: skip


def test_grouped_conv_mixes_channels_only_within_groups():
    torch.manual_seed(1)
    net = TandemNet(GROUPED, (1, 28, 28), 4)
    layer = net.layers[1]
    assert tuple(layer.syn.weight.shape) == (8, 2, 3, 3)
    x = torch.rand(1, 8, 14, 14)
    base = layer.synapse(x, layer.syn.weight, None)
    x2 = x.clone()
    x2[:, 5] += 1.0  # input channel 5 is in group 2 (channels 4, 5) -> outputs 4, 5 only
    diff = (layer.synapse(x2, layer.syn.weight, None) - base).abs().flatten(2).amax(2)[0]
    assert torch.all(diff[[4, 5]] > 0)
    assert torch.all(diff[[0, 1, 2, 3, 6, 7]] == 0)


@pytest.mark.parametrize("shifts", ["auto", "all3"])
@pytest.mark.parametrize("mode", ["float", "fixed"])
def test_grouped_export_is_bit_exact_with_trainer_simulation(digits, tmp_path, mode, shifts):
    images = digits
    torch.manual_seed(2)
    model = _convert(TandemNet(GROUPED, (1, 28, 28), 6), images, (8, 4), 12)
    if shifts == "all3":  # the readout too: its output is then in units of 2**-3
        for k in range(len(model.layers)):
            model.set_acc_shift(k, 3)
    want_shifts = [int(layer.acc_shift) for layer in model.layers]
    # auto: 4-bit hidden layers whose threshold is a few weight steps get finer membranes
    assert want_shifts == ([0, 3, 2, 0] if shifts == "auto" else [3, 3, 3, 3])
    path = export_model(model, tmp_path / "g.esp", {})
    loaded = load_model(path)
    assert loaded.metadata["fan_in"] == [9, 12, 12, 8]
    assert loaded.metadata["acc_shifts"] == want_shifts
    assert [loaded.graph.nodes[f"syn{k}"].acc_shift for k in range(4)] == want_shifts
    conv = [loaded.graph.nodes[f"syn{k}"] for k in range(3)]
    assert [c.groups for c in conv] == [1, 4, 8]
    rec = model.simulate(torch.from_numpy(images).float() / 255)
    assert all(float(c.sum()) > 0 for c in rec.counts)  # every layer spikes
    net = Network(loaded.graph, mode=mode)
    state = net.init_state(batch=len(images))
    frames = np.broadcast_to(images.astype(np.float32), (model.T, *images.shape))
    outs, state = net.run(frames, state)
    logits = rec.logits.numpy().astype(np.float64) * 2.0 ** -want_shifts[-1]
    np.testing.assert_array_equal(outs[-1], logits.astype(np.float32))
    counters = net.counters(state)
    for b in range(len(images)):
        want = {f"if{k}": float(rec.counts[k][b].sum()) for k in range(3)}
        assert counters[b]["spikes"] == want


def test_mnist32_f64_holds_fan_in_64_on_every_layer(digits):
    images = digits
    torch.manual_seed(3)
    model = build("mnist32-f64", (1, 28, 28), 4)
    dense_fan_in = [int(np.prod(layer.syn.weight.shape[1:])) for layer in model.layers]
    assert dense_fan_in == [25, 288, 288, 49, 64]
    assert model.layers[3].spec.groups == 64
    model = _convert(model, images[:32], (8, 4), 64)
    graph, facts = to_graph(model)
    assert facts["fan_in"] == [25, 64, 64, 49, 64]
    for k in range(len(model.layers)):
        w = np.asarray(graph.nodes[f"syn{k}"].weight)
        per_neuron = (w.reshape(w.shape[0], -1) != 0).sum(1)
        assert per_neuron.max() <= 64, (k, per_neuron.max())


def test_auto_acc_shift_rounds_threshold_within_one_percent_under_the_exact_cap():
    # unit 0.25 of a threshold 1.0: k=3 gives 32 units (1.6% rounding), k=4 gives 64.
    assert auto_acc_shift(1.0, 0.25, fan_in=64, bits=4, in_max=1, T=8) == 4
    assert auto_acc_shift(1.0, 0.01, fan_in=64, bits=4, in_max=1, T=8) == 0  # fine already
    # cap: 64 * 8 * 1 * 8 * 2**k < 2**23 -> k <= 10
    assert auto_acc_shift(1.0, 1e6, fan_in=64, bits=4, in_max=1, T=8) == 10
    # 8-bit weights on 0..255 pixels: no room left for a shift below 2**23
    assert auto_acc_shift(1.0, 10.0, fan_in=25, bits=8, in_max=255, T=8) == 0


def test_auto_shifts_put_every_threshold_within_one_percent(digits):
    torch.manual_seed(4)
    model = _convert(TandemNet(GROUPED, (1, 28, 28), 6), digits, (8, 4), 12)
    amp = 1.0 / 255.0
    for layer in model.layers[:-1]:
        p = layer.fixed_params(amp)
        rel = abs(p.threshold * p.unit - float(layer.threshold)) / float(layer.threshold)
        assert rel <= 0.01, (p.shift, rel)
        amp = p.out_amplitude
    with pytest.raises(ValueError, match="acc_shift is 17"):
        model.set_acc_shift(1, 17)


def test_checkpoint_without_acc_shift_loads_with_shift_zero():
    torch.manual_seed(5)
    net = TandemNet(GROUPED, (1, 28, 28), 4)
    net.layers[1].acc_shift.fill_(3)
    old = {k: v for k, v in net.state_dict().items() if not k.endswith("acc_shift")}
    fresh = TandemNet(GROUPED, (1, 28, 28), 4)
    fresh.layers[1].acc_shift.fill_(2)
    fresh.load_state_dict(old)  # strict: a pre-acc_shift checkpoint still loads
    assert [int(layer.acc_shift) for layer in fresh.layers] == [0, 0, 0, 0]
