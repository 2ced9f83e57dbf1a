"""STBP-tdBN neurons: LIF dynamics, rectangular surrogate gradient, tdBN statistics and init."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eventsp.train.stbp.model import ARCHS, BasicBlock, build  # noqa: E402
from eventsp.train.stbp.neurons import LIF, TdBN  # noqa: E402


def test_lif_fixed_sequence_decay_and_hard_reset():
    lif = LIF(decay=0.5, threshold=1.0)
    x = torch.tensor([0.6, 0.6, 0.6, 2.0, 0.0, 0.9]).reshape(6, 1)
    # u: 0.6, 0.9, 1.05 -> spike, reset; 0 + 2.0 -> spike; 0.0; 0.9
    spikes = lif(x).reshape(-1).tolist()
    assert spikes == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert float(lif.spike_count) == 2.0


def test_lif_matches_the_iterative_stbp_equation(rng):
    x = torch.from_numpy(rng.normal(0.3, 0.5, size=(12, 5)).astype(np.float32))
    lif = LIF(decay=0.25, threshold=0.5)
    got = lif(x).numpy()
    u, o = np.zeros(5, np.float32), np.zeros(5, np.float32)
    for t in range(12):
        u = np.float32(0.25) * u * (1 - o) + x[t].numpy()
        o = (u >= 0.5).astype(np.float32)
        np.testing.assert_array_equal(got[t], o, err_msg=f"step {t}")


def test_rectangular_surrogate_gradient():
    lif = LIF(decay=0.0, threshold=0.5, width=1.0)
    # decay 0: u_t = x_t, so d o_t / d x_t = 1/a on |x - 0.5| < a/2 and 0 elsewhere.
    x = torch.tensor([[-0.2], [0.1], [0.5], [0.95], [1.2]], requires_grad=True)
    lif(x).sum().backward()
    assert x.grad.reshape(-1).tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    lif_narrow = LIF(decay=0.0, threshold=0.5, width=0.5)
    x2 = torch.tensor([[0.2], [0.4], [0.7]], requires_grad=True)
    lif_narrow(x2).sum().backward()
    assert x2.grad.reshape(-1).tolist() == [0.0, 2.0, 2.0]


def test_tdbn_normalises_over_time_batch_and_space(rng):
    bn = TdBN(3, threshold=0.5, alpha=1.0)
    assert torch.allclose(bn.weight, torch.full((3,), 0.5))
    scale = np.array([1, 5, 9], dtype=np.float32)[:, None, None]
    x = rng.normal(size=(4, 5, 3, 6, 6)).astype(np.float32) * scale
    x += np.array([2, -3, 7], dtype=np.float32)[:, None, None]
    y = bn(torch.from_numpy(x)).detach().numpy()
    per_channel = y.transpose(2, 0, 1, 3, 4).reshape(3, -1)
    np.testing.assert_allclose(per_channel.mean(1), 0.0, atol=1e-5)
    # Normalised over (T, N, H, W) jointly, then scaled by alpha * V_th.
    np.testing.assert_allclose(per_channel.std(1), 0.5, rtol=1e-3)
    # Statistics are joint over time: a shifted first step is NOT forced to zero mean.
    x[0] += 10.0
    y = bn(torch.from_numpy(x)).detach().numpy()
    mean = x.mean(axis=(0, 1, 3, 4), keepdims=True)
    var = x.var(axis=(0, 1, 3, 4), keepdims=True)
    np.testing.assert_allclose(y, 0.5 * (x - mean) / np.sqrt(var + bn.eps), atol=2e-5)
    assert y[0].mean() > 0.2 > -0.05 > y[1:].mean()


def test_residual_branches_start_at_alpha_over_sqrt2():
    model = build("tiny")
    block = model.blocks[0]
    assert isinstance(block, BasicBlock)
    th = ARCHS["tiny"].threshold
    assert torch.allclose(block.conv1.bn.weight, torch.tensor(th))
    assert torch.allclose(block.conv2.bn.weight, torch.tensor(th / math.sqrt(2)))
    assert block.shortcut is not None
    assert torch.allclose(block.shortcut.bn.weight, torch.tensor(th / math.sqrt(2)))
    assert torch.allclose(model.stem.bn.weight, torch.tensor(th))


@pytest.mark.parametrize("kwargs", [{"decay": 1.5}, {"threshold": 0.0}, {"width": -1.0}])
def test_lif_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError, match=r"decay|threshold|width"):
        LIF(**kwargs)
