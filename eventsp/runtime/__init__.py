"""The streaming spiking runtime (numpy + Numba only).

::

    net = Network(graph)                 # or Network.from_file("model.esp")
    state = net.init_state(batch=1)      # NetworkState: plain arrays, one row per stream
    out, state = net.step(x, state)      # x: (batch, *input_shape) float32, one frame
    net.step_into(x, out, state)         # the same into your buffer (no allocation)
    step = net.stepper(state); step(x)   # bound to one state and buffer: the fastest call
    outs, state = net.run(xs, state)     # xs: (T, batch, *input_shape), same as T steps
    state = net.reset(state, streams=[0])
    saved = snapshot(state); restore(state, saved)
    net.counters(state)                  # per-stream NeuroBench counters
    net.parameter_bytes

``step``/``run`` update the state in place and return it. ``Network(graph, mode="fixed")``
runs integer weights and membranes with the exact semantics of ``eventsp.runtime.fixed``
(``quantize_weights``/``quantize_graph`` make the integer weights). The equations of every node, the
state layout and the counters' definitions are in ``docs/runtime.md``.
"""

from eventsp.runtime.lmu import expm, legendre_ab, lmu_memory, zoh
from eventsp.runtime.network import Network, NetworkState, restore, snapshot
from eventsp.runtime.quant import quantize_graph, quantize_weights, round_half_up

__all__ = [
    "Network",
    "NetworkState",
    "expm",
    "legendre_ab",
    "lmu_memory",
    "quantize_graph",
    "quantize_weights",
    "restore",
    "round_half_up",
    "snapshot",
    "zoh",
]
