"""The batch-level kernels (``eventsp/kernels/batch.py``): spike lists, and streams that stay
independent bit for bit.

``Network.step`` runs Input, Output, Flatten, Dense, IF and LIF as one call for the whole
batch. Their values are checked against the slow reference in ``test_parity.py``; here every
IF/LIF's spike list (``[count, i, ...]``, read by the next layer instead of a scan) must list
exactly its nonzero outputs, and every stream of a batch must end with the same bits, in every
state array (lists and counters included), as the same stream run alone.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from eventsp.kernels import layout as lay
from eventsp.model import graph as g
from eventsp.runtime import Network


def _mlp(rng: np.random.Generator) -> g.Graph:
    def w(n_out, n_in, gain):
        return rng.normal(0, gain / np.sqrt(n_in), (n_out, n_in)).astype(np.float32)

    return g.Graph.chain(
        [
            ("in", g.Input((150,))),
            ("fc1", g.Dense(w(70, 150, 3.0), rng.normal(0, 0.1, 70).astype(np.float32))),
            ("lif1", g.LIF(decay=0.9, threshold=1.0)),
            ("fc2", g.Dense(w(100, 70, 2.5), None)),
            ("if2", g.IF(threshold=0.8)),  # 100: a list whose last run of 64 is partial
            ("fc3", g.Dense(w(9, 100, 2.0), np.zeros(9, np.float32))),
            ("lif3", g.LIF(decay=0.8, threshold=0.5)),
            ("out", g.Output((9,))),
        ]
    )


def _conv(rng: np.random.Generator) -> g.Graph:
    kernel = rng.normal(0, 1.0, (4, 2, 3, 3)).astype(np.float32)
    dense = rng.normal(0, 1.0, (5, 4 * 3 * 3)).astype(np.float32)
    return g.Graph.chain(
        [
            ("in", g.Input((2, 7, 6))),
            ("conv", g.Conv2d(kernel, np.full(4, 0.1, np.float32), padding=1)),
            ("lif", g.LIF(decay=0.9, threshold=1.0)),
            ("pool", g.AvgPool2d(kernel=2)),
            ("flat", g.Flatten()),
            ("fc", g.Dense(dense, None)),
            ("if", g.IF(threshold=0.5)),
            ("out", g.Output((5,))),
        ]
    )


def _check_spike_lists(net: Network, state) -> int:
    """Every IF/LIF spike list of every stream against ``np.flatnonzero``; returns how many."""
    checked = 0
    for row in net.program.code[1:]:
        if row[lay.OP] not in (lay.IF, lay.LIF) or row[lay.MODE] < 0:
            continue
        out, n, at = int(row[lay.OUT]), int(row[lay.N_OUT]), int(row[lay.MODE])
        for acts in state.acts:
            listed = acts[at : at + 1 + n].view(np.int32)
            expected = np.flatnonzero(acts[out : out + n])
            assert listed[0] == expected.size
            np.testing.assert_array_equal(listed[1 : 1 + expected.size], expected)
            checked += 1
    return checked


# The spiking layers that feed a Dense, Conv2d or pooling layer keep a list: lif1 and if2 of
# the MLP (not lif3, which feeds the Output), lif of the conv net (not if).
@pytest.mark.parametrize(("make", "listing"), [(_mlp, 2), (_conv, 1)])
@pytest.mark.parametrize("binary", [True, False])
def test_batch_kernels_keep_streams_apart_and_list_every_spike(rng, make, listing, binary):
    net = Network(make(rng))
    batch, frames = 5, 30
    xs = (rng.random((frames, batch, *net.input_shape)) < 0.2).astype(np.float32)
    if not binary:
        xs *= rng.integers(1, 4, xs.shape).astype(np.float32) * 0.5
    together = net.init_state(batch)
    alone = [net.init_state(1) for _ in range(batch)]
    lists = 0
    for t in range(frames):
        out, _ = net.step(xs[t], together)
        lists += _check_spike_lists(net, together)
        for b, state in enumerate(alone):
            out_b, _ = net.step(xs[t, b : b + 1], state)
            np.testing.assert_array_equal(out[b : b + 1], out_b, err_msg=f"frame {t}")
            for name, a, c in zip(together._fields, together, state, strict=True):
                same = np.array_equal(a[b : b + 1].view(np.uint8), c.view(np.uint8))
                assert same, f"{name} of stream {b} at frame {t}"
    assert lists == frames * batch * listing
    spikes = net.counters(together)[0]["spikes"]
    assert all(count > 0 for count in spikes.values()), spikes  # every layer was exercised


@pytest.mark.parametrize("n_out", [1, 10, 16, 20, 31, 32, 33, 100, 127, 128, 130])
def test_dense_rows_are_padded_inside_their_own_slot(rng, n_out):
    """A Dense layer's weight rows and output slot are ``WO`` wide (``n_out`` padded to whole
    vectors below 128, when that at most doubles them); the padding must stay inside its own
    slot: no act region (outputs, spike lists, index scratch) overlaps another, and the
    outputs equal ``W x + b``."""
    weight = rng.normal(0, 1.0, (n_out, 40)).astype(np.float32)
    bias = rng.normal(0, 1.0, n_out).astype(np.float32)
    graph = g.Graph.chain(
        [
            ("in", g.Input((40,))),
            ("fc", g.Dense(weight, bias)),
            ("lif", g.LIF(decay=0.9, threshold=0.5)),
            ("out", g.Output((n_out,))),
        ]
    )
    net = Network(graph)
    code = net.program.code
    dense = next(row for row in code[1:] if row[lay.OP] == lay.DENSE)
    width = dense[lay.WO]
    padded = -(-n_out // 32) * 32
    assert width == (padded if n_out < 128 and padded <= 2 * n_out else n_out)
    regions = []
    for row in code[1:]:
        if row[lay.OP] == lay.DENSE:
            regions.append((row[lay.OUT], row[lay.OUT] + row[lay.WO]))
            regions.append((row[lay.MODE], row[lay.MODE] + row[lay.N_IN]))  # index scratch
        elif row[lay.OP] in (lay.INPUT, lay.LIF):
            regions.append((row[lay.OUT], row[lay.OUT] + row[lay.N_OUT]))
            if row[lay.MODE] >= 0:  # spike list: count + indices
                regions.append((row[lay.MODE], row[lay.MODE] + row[lay.N_OUT] + 1))
    regions.sort()
    for (_, end), (start, _) in itertools.pairwise(regions):
        assert end <= start, regions
    assert regions[-1][1] <= net.program.n_acts
    x = (rng.random((3, 40)) < 0.4).astype(np.float32)
    state = net.init_state(3)
    net.step(x, state)
    acts = state.acts
    y = acts[:, dense[lay.OUT] : dense[lay.OUT] + n_out]
    assert np.allclose(y, x @ weight.T + bias, rtol=1e-5, atol=1e-5)
