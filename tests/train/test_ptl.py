"""PTL pieces: IF dynamics, tandem gradients, BN folding, constraints, schedule, resume."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eventsp.train.ptl.network import LayerSpec, TandemNet, build, if_neurons  # noqa: E402
from eventsp.train.ptl.schedule import Patience, Stage, plan_stages  # noqa: E402
from eventsp.train.ptl.trainer import (  # noqa: E402
    PTLConfig,
    apply_stage,
    calibrate,
    set_trainable,
    train_ptl,
)


def test_if_neurons_reset_by_subtraction_fixed_sequence():
    current = torch.tensor([0.6, 0.6, 0.6, 1.5, 0.0, 2.5])
    spikes = if_neurons(current.view(6, 1), 1.0, 6, constant=False).flatten().tolist()
    # v: .6, 1.2->.2 (spike), .8, 2.3->1.3 (spike), 1.3->.3 (spike), 2.8->1.8 (spike)
    assert spikes == [0, 1, 0, 1, 1, 1]
    # A constant input of 0.3 with threshold 1 fires at steps 4 and 7 (v = 1.2 - 1, ...).
    const = if_neurons(torch.tensor([0.3]), 1.0, 8, constant=True).flatten().tolist()
    assert const == [0, 0, 0, 1, 0, 0, 1, 0]


def _net(T=4):
    torch.manual_seed(0)
    return TandemNet([LayerSpec("conv", 3, 3, 1, 1), LayerSpec("dense", 5)], (1, 6, 6), T)


def test_fold_batch_norm_keeps_the_ann_function():
    net = _net()
    layer = net.layers[0]
    with torch.no_grad():
        layer.bn.running_mean.uniform_(-1, 1)
        layer.bn.running_var.uniform_(0.5, 2)
        layer.bn.weight.uniform_(0.5, 1.5)
        layer.bn.bias.uniform_(-0.5, 0.5)
    net.eval()
    x = torch.rand(7, 1, 6, 6)
    before = net(x)
    layer.fold_batch_norm()
    assert bool(layer.folded)
    torch.testing.assert_close(net(x), before, rtol=1e-5, atol=1e-5)
    w = layer.syn.weight.clone()
    layer.fold_batch_norm()  # only once
    assert torch.equal(w, layer.syn.weight)


def test_tandem_layer_forwards_spike_rates_and_backpropagates_through_relu():
    net = _net(T=4)
    layer = net.layers[0]
    layer.fold_batch_norm()
    layer.threshold.fill_(0.5)
    layer.spiking.fill_(True)
    x = torch.rand(2, 1, 6, 6)
    # Forward: the readout sees the spike rate θ c / T, not the ANN's ReLU.
    rec = net.simulate(x)
    w, b = net.layers[1].syn.weight, net.layers[1].syn.bias
    rate = rec.counts[0] * 0.5 / 4
    torch.testing.assert_close(net(x), torch.nn.functional.linear(rate.flatten(1), w, b))
    # Backward: straight through the ANN activation relu(z).
    net.zero_grad()
    net(x).sum().backward()
    got = layer.syn.weight.grad.clone()
    z = layer.ann(x)
    z.retain_grad()
    layer.syn.weight.grad = None
    (torch.relu(z).flatten(1) @ w.t()).sum().backward()
    torch.testing.assert_close(got, layer.syn.weight.grad)


def test_fan_in_mask_keeps_largest_weights_per_neuron():
    net = _net()
    layer = net.layers[1]  # dense 108 -> 5
    w = layer.syn.weight.detach().clone()
    layer.set_fan_in(10)
    kept = layer.mask != 0
    assert kept.sum(1).tolist() == [10] * 5
    for row in range(5):
        smallest_kept = w[row][kept[row]].abs().min()
        largest_dropped = w[row][~kept[row]].abs().max()
        assert smallest_kept >= largest_dropped
    assert torch.all(layer.syn.weight[~kept] == 0)
    with pytest.raises(ValueError, match="fan_in is 0"):
        layer.set_fan_in(0)


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_weights_quantise_to_signed_integers_with_one_scale(bits):
    layer = _net().layers[1]
    layer.bits.fill_(bits)
    q = layer.int_weight()
    qmax = 2 ** (bits - 1) - 1
    assert q.min() >= -qmax - 1
    assert q.max() <= qmax
    assert torch.equal(q, torch.round(q))
    assert q.abs().max() == qmax  # the largest weight uses the full range
    s = layer.weight_scale()
    assert s == pytest.approx(float(layer.syn.weight.detach().abs().max()) / qmax)
    err = (layer.real_weight() - layer.syn.weight).abs().max()
    assert err <= s / 2 + 1e-7


def test_calibrated_threshold_is_the_999th_percentile_of_activations(rng):
    net = _net()
    net.layers[0].fold_batch_norm()
    x = rng.integers(0, 256, (50, 1, 6, 6), dtype=np.uint8)
    thr = calibrate(net, 0, x)
    with torch.no_grad():
        a = net(torch.from_numpy(x).float() / 255, collect=0)
    expected = np.percentile(a[a > 0].numpy(), 99.9)
    assert thr == pytest.approx(expected, rel=1e-5)


def test_plan_stages_is_progressive_and_validated():
    names = [s.name for s in plan_stages(3, bits=(8, 4), fan_in=64)]
    assert names == [
        "ann",
        "spike:0", "fanin:0:64", "bits:0:8", "bits:0:4",
        "spike:1", "fanin:1:64", "bits:1:8", "bits:1:4",
        "fanin:2:64", "bits:2:8", "bits:2:4",
        "final",
    ]  # fmt: skip
    spared = [s.name for s in plan_stages(2, bits=(4,), fan_in=8, readout_fan_in=False)]
    assert spared == ["ann", "spike:0", "fanin:0:8", "bits:0:4", "bits:1:4", "final"]
    first = [s.name for s in plan_stages(3, bits=(4,), fan_in=64, prune_first=True)]
    assert first == [
        "ann", "fanin:0:64", "fanin:1:64", "fanin:2:64",
        "spike:0", "bits:0:4", "spike:1", "bits:1:4", "bits:2:4", "final",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="must decrease"):
        plan_stages(3, bits=(4, 8))
    with pytest.raises(ValueError, match=r"outside 2\.\.8"):
        plan_stages(3, bits=(16,))
    with pytest.raises(ValueError, match="choose one"):  # both prune before spiking
        plan_stages(3, bits=(4,), fan_in=64, prune_first=True, prune_all=True)


def test_layers_freeze_once_their_stages_are_over():
    net = _net()
    stages = plan_stages(2, bits=(8,))
    set_trainable(net, Stage("spike", 0), stages)
    assert [bool(layer.frozen) for layer in net.layers] == [False, False]
    set_trainable(net, Stage("bits", 1, 8), stages)
    assert [bool(layer.frozen) for layer in net.layers] == [True, False]
    assert not net.layers[0].syn.weight.requires_grad
    set_trainable(net, Stage("final"), stages)
    assert [bool(layer.frozen) for layer in net.layers] == [False, False]


def test_prune_first_trains_the_whole_ann_until_a_layer_spikes():
    net = _net()
    stages = plan_stages(2, bits=(8,), fan_in=4, prune_first=True)
    set_trainable(net, Stage("fanin", 1, 4), stages)  # no layer spikes: nothing frozen
    assert [bool(layer.frozen) for layer in net.layers] == [False, False]
    net.layers[0].spiking.fill_(True)
    set_trainable(net, Stage("fanin", 1, 4), stages)  # the usual rule: layer 0 is below
    assert [bool(layer.frozen) for layer in net.layers] == [True, False]


def test_patience_scheduler():
    p = Patience(patience=2, max_epochs=10)
    seq = [0.5, 0.6, 0.6, 0.55]
    assert [p.step(m) for m in seq] == [True, True, False, False]
    assert p.done
    assert (p.best, p.best_epoch) == (0.6, 2)
    q = Patience(patience=1, max_epochs=3, min_epochs=3)
    q.step(0.9)
    q.step(0.1)
    assert not q.done  # min_epochs not reached
    q.step(0.1)
    assert q.done
    with pytest.raises(ValueError, match="patience 0"):
        Patience(patience=0, max_epochs=1)


def test_apply_stage_converts_prunes_and_quantises(rng):
    net = _net()
    x = rng.integers(0, 256, (20, 1, 6, 6), dtype=np.uint8)
    apply_stage(net, Stage("spike", 0), x)
    assert bool(net.layers[0].spiking)
    assert bool(net.layers[0].folded)
    assert float(net.layers[0].threshold) > 0
    apply_stage(net, Stage("fanin", 1, 7), x)
    assert int((net.layers[1].mask != 0).sum(1).max()) == 7
    apply_stage(net, Stage("bits", 1, 4), x)
    assert int(net.layers[1].bits) == 4


class _StopError(Exception):
    pass


@pytest.mark.slow
def test_resume_after_interruption_reaches_the_same_network(small_mnist, tmp_path):
    torch.set_num_threads(1)
    cfg = PTLConfig(arch="tiny", T=4, batch_size=50, ann_epochs=2, stage_epochs=2, patience=1,
                    bits=(8,), calib_samples=100, progress=False)  # fmt: skip
    full = train_ptl(cfg, small_mnist, tmp_path / "full", log=lambda *a: None)

    def interrupt(msg):
        if msg.startswith("[bits:0:8] epoch 1"):
            raise _StopError

    with pytest.raises(_StopError):
        train_ptl(cfg, small_mnist, tmp_path / "cut", log=interrupt)
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    resumed = train_ptl(cfg, small_mnist, tmp_path / "cut", resume=True, log=lambda *a: None)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{name} differs after resume"
    full_rows = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    assert (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines() == full_rows
    assert len(lines) < len(full_rows)
    assert (tmp_path / "cut" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # The final network is fully spiking, and better than chance on held-out digits.
    x = torch.from_numpy(small_mnist.x_test[:200]).float() / 255
    acc = (full.simulate(x).logits.argmax(1).numpy() == small_mnist.y_test[:200]).mean()
    assert acc > 0.5


def test_build_rejects_unknown_architecture():
    with pytest.raises(ValueError, match="unknown"):
        build("resnet9000", (1, 28, 28), 8)
    with pytest.raises(ValueError, match="T is 0"):
        build("tiny", (1, 28, 28), 0)


def test_classic_conversion_approaches_the_ann_as_steps_grow(rng):
    from eventsp.train.ptl.evaluate import classic_conversion

    torch.manual_seed(1)
    ann = build("tiny", (1, 12, 12), 4)
    ann.eval()
    x = rng.integers(0, 256, (40, 1, 12, 12), dtype=np.uint8)
    xf = torch.from_numpy(x).float() / 255
    with torch.no_grad():
        ann_out = ann(xf)
    errors = []
    for T in (4, 64):
        snn = classic_conversion(ann, x, T)
        assert all(bool(layer.spiking) for layer in snn.layers[:-1])
        assert not any(bool(layer.spiking) for layer in ann.layers)  # the ANN is untouched
        rec = snn.simulate(xf)
        errors.append(float((rec.logits * rec.output_scale - ann_out).abs().mean()))
    assert errors[1] < errors[0] / 2, errors


def test_autoencoder_reconstruction_psnr(rng):
    from eventsp.train.ptl.evaluate import reconstruction_psnr
    from eventsp.train.ptl.trainer import is_autoencoder, psnr

    ae = build("mnist-ae", (1, 28, 28), 4)
    assert is_autoencoder(ae)
    assert not is_autoencoder(build("mnist", (1, 28, 28), 4))
    x = rng.integers(0, 256, (6, 1, 28, 28), dtype=np.uint8)
    ae.eval()
    with torch.no_grad():
        out = ae(torch.from_numpy(x).float() / 255)
    mse = float(((out - torch.from_numpy(x).float().flatten(1) / 255) ** 2).mean())
    got = reconstruction_psnr(ae, x)["psnr_db"]
    assert got == pytest.approx(10 * np.log10(1 / mse), rel=1e-4)
    assert psnr(0.01) == pytest.approx(20.0)


def test_shift_augmentation_moves_digits_per_image_on_the_pixel_grid():
    from eventsp.train.ptl.trainer import shift_batch

    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 12:16, 12:16] = 1.0  # a 4x4 square at the centre
    same = shift_batch(x, torch.Generator().manual_seed(0), max_shift=0.0, max_degrees=0.0)
    torch.testing.assert_close(same, x)
    out = shift_batch(x, torch.Generator().manual_seed(3))
    again = shift_batch(x, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)  # seeded: reproducible
    assert torch.equal(out * 255, torch.round(out * 255))  # uint8 levels, as the SNN sees
    assert out.min() >= 0
    assert out.max() <= 1
    grid = torch.arange(28, dtype=torch.float32)
    mass = out.sum((1, 2, 3))
    cy = (out.sum((1, 3)) * grid).sum(1) / mass
    cx = (out.sum((1, 2)) * grid).sum(1) / mass
    # Every image moves by at most the 2-pixel shift (a rotation about the centre keeps it;
    # 0.1 px for rounding to uint8 levels), each by its own amount, and the square stays.
    assert float((cy - 13.5).abs().max()) <= 2.1
    assert float((cx - 13.5).abs().max()) <= 2.1
    assert float(cx.std()) > 0.5
    assert float(cy.std()) > 0.5
    assert float((mass - 16.0).abs().max()) < 1.5


def test_config_rejects_unknown_augmentation_and_bad_dropout():
    with pytest.raises(ValueError, match="augment is 'flip'"):
        PTLConfig(augment="flip")
    with pytest.raises(ValueError, match=r"dropout is 1\.0"):
        PTLConfig(dropout=1.0)


def test_final_phase_has_its_own_epoch_limit():
    from eventsp.train.ptl.trainer import _max_epochs

    cfg = PTLConfig(ann_epochs=5, stage_epochs=2, final_epochs=6)
    assert [_max_epochs(cfg, Stage(a)) for a in ("ann", "spike", "final")] == [5, 2, 6]
    assert _max_epochs(PTLConfig(stage_epochs=3), Stage("final")) == 3
    with pytest.raises(ValueError, match="final_epochs is 0"):
        PTLConfig(final_epochs=0)


def test_dropout_acts_on_the_readout_input_in_training_only():
    net = _net()
    net.layers[0].fold_batch_norm()
    net.dropout = 0.5
    x = torch.rand(8, 1, 6, 6)
    net.eval()
    reference = net(x)
    net.train()
    net.layers[0].bn.eval()  # folded: keep the statistics; only dropout differs
    torch.manual_seed(0)
    dropped = net(x)
    assert not torch.allclose(dropped, reference)
    rate = torch.relu(net.layers[0].ann(x)).flatten(1)
    w, b = net.layers[1].syn.weight, net.layers[1].syn.bias
    torch.manual_seed(0)
    expected = torch.nn.functional.linear(torch.nn.functional.dropout(rate, 0.5), w, b)
    torch.testing.assert_close(dropped, expected)
    net.eval()
    torch.testing.assert_close(net(x), reference)


def test_synops_ratio_takes_the_shortest_classic_run_at_equal_accuracy():
    from eventsp.train.ptl.evaluate import synops_ratio_at_equal_accuracy

    snn = {"accuracy": 0.99, "synops_per_image": 100.0, "input_macs_per_image": 50.0, "T": 8}
    runs = [
        {"accuracy": 0.95, "synops_per_image": 120.0, "input_macs_per_image": 50.0, "T": 8},
        {"accuracy": 0.992, "synops_per_image": 1500.0, "input_macs_per_image": 200.0, "T": 32},
        {"accuracy": 0.99, "synops_per_image": 700.0, "input_macs_per_image": 100.0, "T": 16},
    ]
    got = synops_ratio_at_equal_accuracy(snn, runs)
    assert got == {
        "classic_T": 16,
        "classic_accuracy": 0.99,
        "ratio": 7.0,
        "ratio_with_input": pytest.approx(800.0 / 150.0),
    }
    assert synops_ratio_at_equal_accuracy(snn, runs[:1]) is None
