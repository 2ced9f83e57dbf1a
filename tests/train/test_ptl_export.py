"""PTL export: the runtime computes exactly what the trainer's spiking simulation computes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eventsp.model.format import load_model  # noqa: E402
from eventsp.runtime import Network  # noqa: E402
from eventsp.train.data.images import load_mnist  # noqa: E402
from eventsp.train.ptl.export import export_model  # noqa: E402
from eventsp.train.ptl.trainer import PTLConfig, train_ptl  # noqa: E402


@pytest.fixture(scope="module")
def mnist(data_root):
    return load_mnist(data_root / "mnist" / "mnist.npz")


@pytest.fixture(scope="module")
def trained(mnist, tmp_path_factory):
    """A tiny two-stage-constrained network trained for a few seconds on real digits."""
    torch.set_num_threads(1)
    small = dataclasses.replace(
        mnist,
        x_train=mnist.x_train[:600],
        y_train=mnist.y_train[:600],
        x_val=mnist.x_val[:200],
        y_val=mnist.y_val[:200],
    )
    cfg = PTLConfig(
        arch="tiny",
        T=6,
        batch_size=50,
        ann_epochs=2,
        stage_epochs=1,
        patience=1,
        bits=(8, 4),
        fan_in=40,
        calib_samples=200,
        progress=False,
        lr=3e-3,
    )
    run = tmp_path_factory.mktemp("ptl")
    model = train_ptl(cfg, small, run, log=lambda *a: None)
    return model, run


def _runtime(net: Network, images: np.ndarray, T: int):
    state = net.init_state(batch=len(images))
    frames = np.broadcast_to(images.astype(np.float32), (T, *images.shape))
    outs, state = net.run(frames, state)
    return outs, state


def _network(graph, mode: str) -> Network:
    try:
        return Network(graph, mode=mode)
    except ValueError as exc:
        if mode == "fixed" and "not supported" in str(exc):
            pytest.skip(f"the runtime has no fixed-point mode yet: {exc}")
        raise


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["float", "fixed"])
def test_runtime_is_bit_exact_with_trainer_simulation(trained, mnist, tmp_path, mode):
    model, _ = trained
    path = export_model(model, tmp_path / "tiny.esp", {"labels": list(mnist.labels)})
    loaded = load_model(path)
    assert loaded.metadata["T"] == 6
    assert loaded.metadata["layer_bits"] == [4, 4]
    assert max(loaded.metadata["fan_in"]) <= 40
    images = mnist.x_test[:64]
    rec = model.simulate(torch.from_numpy(images).float() / 255)
    net = _network(loaded.graph, mode)
    outs, state = _runtime(net, images, model.T)
    # Output: the readout's sum over T, as integers in units of 2**-acc_shift, identical.
    step = 2.0 ** -loaded.metadata["acc_shifts"][-1]
    want = (rec.logits.numpy().astype(np.float64) * step).astype(np.float32)
    np.testing.assert_array_equal(outs[-1], want)
    assert np.all(outs[-1] / step == np.round(outs[-1] / step))
    # Spikes per layer per image identical.
    counters = net.counters(state)
    for b in range(len(images)):
        assert counters[b]["spikes"] == {"if0": float(rec.counts[0][b].sum())}
    # Final membrane of every neuron identical: V_T = sum of input currents - θ * spikes.
    layer = model.layers[0]
    p = layer.fixed_params(1 / 255)
    x = torch.from_numpy(images).float()
    drive = layer.synapse(x * model.T, p.weight, None) + model.T * p.bias.view(-1, 1, 1)
    v_expected = (drive - p.threshold * rec.counts[0]).numpy()
    if mode == "float":  # real membranes: integers in units of 2**-acc_shift
        v_expected = v_expected * 2.0**-p.shift
    np.testing.assert_array_equal(net.node_state(state, "if0"), v_expected)
    # Accuracy on the same digits is what the simulation says, and above chance.
    pred = outs[-1].argmax(1)
    assert (pred == rec.logits.argmax(1).numpy()).all()
    assert (pred == mnist.y_test[:64]).mean() > 0.5


@pytest.mark.slow
def test_runtime_synops_count_spikes_times_fan_out(trained, mnist, tmp_path):
    model, _ = trained
    net = Network(load_model(export_model(model, tmp_path / "m.esp", {})).graph)
    images = mnist.x_test[:16]
    rec = model.simulate(torch.from_numpy(images).float() / 255)
    _, state = _runtime(net, images, model.T)
    readout = model.layers[1]
    ones = torch.ones_like(readout.syn.weight)
    dense_fan_out = readout.synapse(rec.counts[0], ones, None).flatten(1).sum(1)
    assert float(rec.synops.sum()) < float(dense_fan_out.sum())  # pruned synapses skipped
    for b, c in enumerate(net.counters(state)):
        # The runtime counts every synapse of a spike (pruned zeros too); simulate() only the
        # nonzero ones. Both are spikes x fan-out.
        assert c["effective_acs"] == float(dense_fan_out[b])


def test_export_refuses_an_unconverted_network(tmp_path):
    from eventsp.train.ptl.network import build

    with pytest.raises(ValueError, match="not converted"):
        export_model(build("tiny", (1, 28, 28), 4), tmp_path / "x.esp", {})
