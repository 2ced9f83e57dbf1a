"""Conv2d's event-driven fast path (unit stride, groups 1) against the plain reference.

That path adds one kernel row's taps as one contiguous run and up to four channels of the same
input pixel in one pass; these cases put 1 to all channels active at pixels on every border.
"""

from __future__ import annotations

import numpy as np
import pytest

from eventsp.model import graph as g
from eventsp.runtime import Network

from naive import _conv2d


@pytest.mark.parametrize(
    ("kernel", "padding"), [((3, 3), (1, 1)), ((5, 3), (2, 0)), ((1, 1), (0, 0))]
)
def test_sparse_multichannel_conv_matches_reference(rng, kernel, padding):
    c, h, w, n_o = 8, 7, 6, 5
    weight = rng.normal(0, 1, (n_o, c, *kernel)).astype(np.float32)
    node = g.Conv2d(weight, rng.normal(0, 0.1, n_o).astype(np.float32), padding=padding)
    ho, wo = h + 2 * padding[0] - kernel[0] + 1, w + 2 * padding[1] - kernel[1] + 1
    out_node = g.Output((n_o, ho, wo))
    graph = g.Graph.chain([("in", g.Input((c, h, w))), ("conv", node), ("out", out_node)])
    net = Network(graph)
    x = np.zeros((c, h, w), np.float32)
    pixels = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (3, 2), (2, 4), (5, 1), (1, 3)]
    for n_active, (py, px) in zip([1, 2, 3, 4, 5, 7, 8, 4], pixels, strict=True):
        chans = rng.choice(c, n_active, replace=False)
        x[chans, py, px] = rng.choice([1.0, 0.5, -2.0], n_active).astype(np.float32)
    assert (x != 0).mean() < 0.5  # the event-driven path
    out, state = net.step(x[None], net.init_state(1))
    np.testing.assert_allclose(out[0], _conv2d(node, x), rtol=1e-5, atol=1e-5)
    taps = sum(
        int(
            sum(
                0 <= iy + padding[0] - ky < out.shape[2]
                and 0 <= ix + padding[1] - kx < out.shape[3]
                for ky in range(kernel[0])
                for kx in range(kernel[1])
            )
        )
        for _, iy, ix in zip(*np.nonzero(x), strict=True)
    )
    assert net.counters(state)[0]["effective_macs"] == taps * n_o
