"""HybridLMU: training path == streaming simulation, and export parity with the runtime."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eventsp.model.format import load_model
from eventsp.runtime import Network
from eventsp.runtime.lmu import legendre_ab as runtime_legendre_ab
from eventsp.runtime.lmu import zoh as runtime_zoh
from eventsp.train.data.psmnist import load_psmnist, to_sequence
from eventsp.train.lmu import HybridLMU, LMUConfig, legendre_ab, zoh
from eventsp.train.lmu.export import export_model, to_graph


@pytest.fixture(scope="module")
def digits(data_root) -> np.ndarray:
    """Four real psMNIST test digits, ``(4, 784, 1)`` float32."""
    data = load_psmnist(data_root / "mnist" / "mnist.npz", seed=3)
    return to_sequence(data.x_test[:4])


def _model(readout: str, input_to_hidden: bool = True, seed: int = 0) -> HybridLMU:
    torch.manual_seed(seed)
    config = LMUConfig(order=48, hidden=24, readout=readout, input_to_hidden=input_to_hidden)
    return HybridLMU(config).eval()


def test_memory_matrices_are_the_runtimes():
    A, B = legendre_ab(20, 33.0)
    A_rt, B_rt = runtime_legendre_ab(20, 33.0)
    np.testing.assert_array_equal(A.numpy(), A_rt)
    np.testing.assert_array_equal(B.numpy(), B_rt)
    A_d, B_d = zoh(A, B)
    A_d_rt, B_d_rt = runtime_zoh(A_rt, B_rt)
    np.testing.assert_allclose(A_d.numpy(), A_d_rt, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(B_d.numpy(), B_d_rt, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("readout", ["last", "mean"])
def test_non_spiking_training_path_equals_the_step_by_step_network(readout, digits):
    model = _model(readout)
    x = torch.from_numpy(digits)
    fast = model(x, None)
    slow, _ = model.simulate(x, None)
    np.testing.assert_allclose(fast.detach().numpy(), slow.numpy(), rtol=1e-4, atol=1e-5)


def test_spiking_mean_readout_training_path_equals_the_simulation(digits):
    model = _model("mean")
    x = torch.from_numpy(digits)
    dt = 3.0
    fast = model(x, dt)
    slow, counts = model.simulate(x, dt)
    assert counts.max() >= 2  # multi-spike counts do occur at this dt
    # float64 cumulative sums vs float32 steps: rare ties at a floor may differ by one count.
    diff = (fast.detach() - slow).abs().max().item()
    assert diff < 0.05 * slow.abs().max().item()


def test_last_readout_training_path_is_the_last_step_with_a_random_residual(digits):
    model = _model("last")
    x = torch.from_numpy(digits)
    dt = 2.0
    g = torch.Generator().manual_seed(0)
    spiking = model(x, dt, generator=g)
    exact = model(x, None)
    # One step of the quantizer moves each hidden activity by less than one level 1/dt.
    bound = model.output.weight.abs().sum(1).max().item() / dt
    assert (spiking - exact).abs().max().item() <= bound
    assert not torch.equal(spiking, exact)


def test_gradients_flow_through_the_quantizer(digits):
    model = _model("last").train()
    loss = torch.nn.functional.cross_entropy(
        model(torch.from_numpy(digits), 1.0), torch.tensor([0, 1, 2, 3])
    )
    loss.backward()
    # (input_to_hidden only sees the last pixel, which is often 0: not checked here.)
    for name in ("encoder", "memory_to_hidden", "output"):
        grad = getattr(model, name).weight.grad
        assert grad is not None, name
        assert grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("readout", "input_to_hidden", "dt"),
    [("last", True, 2.0), ("mean", True, 0.5), ("last", False, None)],
)
def test_exported_graph_runs_the_same_network_in_the_runtime(
    readout, input_to_hidden, dt, digits, tmp_path
):
    model = _model(readout, input_to_hidden, seed=1)
    x = torch.from_numpy(digits)
    logits, counts = model.simulate(x, dt)
    path = export_model(tmp_path / "lmu.esp", model, dt, {"labels": list("0123456789")})
    loaded = load_model(path)
    assert loaded.metadata["lmu"]["readout"] == readout
    assert loaded.metadata["time_steps"] == 784
    net = Network.from_file(path)
    state = net.init_state(batch=len(digits))
    outs, state = net.run(np.ascontiguousarray(digits.transpose(1, 0, 2)), state)
    np.testing.assert_allclose(outs[-1], logits.numpy(), rtol=1e-4, atol=1e-5)
    if dt is not None:
        per_stream = [c["spikes"]["spikes"] for c in net.counters(state)]
        np.testing.assert_array_equal(per_stream, counts.abs().sum((1, 2)).numpy())
        assert sum(per_stream) > 0


def test_graph_without_dt_has_no_spiking_node():
    types = {type(n).__name__ for n in to_graph(_model("last"), None).nodes.values()}
    assert "MultiSpike" not in types
    assert {"LMUMemory", "Dense", "ReLU", "Readout"} <= types
    types = {type(n).__name__ for n in to_graph(_model("last"), 1.0).nodes.values()}
    assert "MultiSpike" in types


def test_bad_configs_and_inputs_raise():
    with pytest.raises(ValueError, match="readout is 'first'"):
        LMUConfig(readout="first")
    with pytest.raises(ValueError, match="order is 0"):
        LMUConfig(order=0)
    model = _model("last")
    with pytest.raises(ValueError, match=r"expected \(batch, T, 1\)"):
        model(torch.zeros(2, 10, 3), None)
    with pytest.raises(ValueError, match="longer than the 784"):
        model(torch.zeros(1, 800, 1), None)


def test_standardisation_is_folded_into_the_exported_input_layers(rng):
    torch.manual_seed(2)
    config = LMUConfig(input_size=5, memory_d=2, order=8, theta=20.0, hidden=6, steps=30)
    model = HybridLMU(config).eval()
    mean = rng.standard_normal(5)
    std = rng.random(5) + 0.5
    raw = rng.standard_normal((3, 30, 5)).astype(np.float32) * 2 + 1
    standard = ((raw - mean) / std).astype(np.float32)
    logits, _ = model.simulate(torch.from_numpy(standard), None)
    net = Network(to_graph(model, None, input_mean=mean, input_std=std))
    outs, _ = net.run(np.ascontiguousarray(raw.transpose(1, 0, 2)), net.init_state(batch=3))
    np.testing.assert_allclose(outs[-1], logits.numpy(), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="std > 0"):
        to_graph(model, None, input_mean=mean, input_std=-std)
