"""``Network``: a compiled graph plus the per-stream state it advances, one frame at a time.

A network holds only read-only compiled arrays; every stream's state is a
:class:`NetworkState` (plain numpy arrays, one row per stream) that the caller owns. Two
networks and any number of states live side by side; nothing is global.

``step`` and ``run`` update the given state's arrays **in place** and return the same state
(no allocation per frame beyond the output array). To keep a copy, :func:`snapshot` it;
:func:`restore` copies a snapshot back into a live state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from eventsp.kernels import layout as lay
from eventsp.kernels.program import OK, execute_run, execute_step
from eventsp.model import graph as g
from eventsp.runtime import memory
from eventsp.runtime.fixed import FixedProgram
from eventsp.runtime.program import Program, compile_graph

__all__ = ["Network", "NetworkState", "restore", "snapshot"]

Mode = Literal["float", "fixed"]
_F32 = np.dtype(np.float32)
SPIKING = ("IF", "LIF", "MultiSpike")
ACTIVATIONS = ("IF", "LIF", "MultiSpike", "ReLU")
SYNAPTIC = ("Dense", "Conv2d", "CausalConv1d", "LMUMemory")


class NetworkState(NamedTuple):
    """The state of ``batch`` streams (row ``b`` is stream ``b``).

    values: (batch, n_values) float32: membranes, temporal-conv history, LMU memories, readout
        accumulators.
    acts: (batch, n_acts) float32: every layer's output of the last frame.
    steps: (batch,) int64: frames each stream has run since it was created or reset.
    counters: (batch, n_ops, NCOUNT) float64: per-op operation and activity counters.
    """

    values: np.ndarray
    acts: np.ndarray
    steps: np.ndarray
    counters: np.ndarray

    @property
    def batch(self) -> int:
        return self.steps.shape[0]


def snapshot(state: NetworkState) -> NetworkState:
    """A deep copy of ``state`` (the live state keeps changing in place)."""
    return NetworkState(*(np.array(a, copy=True) for a in state))


def restore(state: NetworkState, saved: NetworkState) -> NetworkState:
    """Copy ``saved`` into ``state`` in place and return ``state``."""
    for live, old in zip(state, saved, strict=True):
        if live.shape != old.shape:
            raise ValueError(
                f"snapshot has arrays of shape {old.shape}, the state {live.shape}; restore a "
                "snapshot taken from a state of the same network and batch size"
            )
        live[...] = old
    return state


class Network:
    """A graph compiled for the runtime.

    Parameters
    ----------
    graph:
        The model graph.
    mode:
        ``"float"``: float32 arithmetic on the jitted interpreter (the fast path).
        ``"fixed"``: integer weights and membranes, bit-exact semantics defined in
        :mod:`eventsp.runtime.fixed` (numpy; state arrays are int64).
    """

    def __init__(self, graph: g.Graph, mode: Mode = "float") -> None:
        if mode not in ("float", "fixed"):
            raise ValueError(f"mode={mode!r} is not supported; use mode='float' or mode='fixed'")
        self.graph = graph
        self.mode = mode
        shapes = graph.shapes()
        self.input_shape: tuple[int, ...] = shapes[graph.input_name]
        self.output_shape: tuple[int, ...] = shapes[graph.output_name]
        self.program: Program = compile_graph(graph)
        self.fixed: FixedProgram | None = FixedProgram(graph) if mode == "fixed" else None
        if self.fixed is None:
            sizes = tuple(int(n) for n in self.program.code[:, lay.N_OUT])
            self._rows = tuple(
                zip(self.program.op_names, self.program.op_kinds, sizes, strict=True)
            )
            self._n_rows, self._n_values, self._n_acts = (
                self.program.code.shape[0],
                self.program.n_values,
                self.program.n_acts,
            )
        else:
            f = self.fixed
            self._rows = tuple(zip(f.op_names, f.op_kinds, f.op_sizes, strict=True))
            self._n_rows, self._n_values, self._n_acts = len(f.op_names), f.n_values, f.n_acts
        self._code = self.program.code
        self._params = self.program.params  # on huge pages when large (see runtime.memory)
        self._n_in, self._n_out = self.program.n_in, self.program.n_out
        self._flat_input = len(self.input_shape) == 1
        self._flat_output = len(self.output_shape) == 1
        self._into_flat = self.fixed is None and self._flat_input and self._flat_output
        self.parameter_bytes = int(
            sum(
                int(arr.nbytes)
                for node in graph.nodes.values()
                for arr in node.to_dict()[1].values()
            )
        )

    @classmethod
    def from_file(cls, path: str | Path, mode: Mode = "float") -> Network:
        """Load an ``.esp`` model file (see ``eventsp.model.format``) and compile its graph."""
        from eventsp.model.format import load_model

        return cls(load_model(path).graph, mode=mode)

    def init_state(self, batch: int = 1) -> NetworkState:
        """A fresh state for ``batch`` streams: every membrane, memory and counter at zero."""
        if int(batch) != batch or batch < 1:
            raise ValueError(f"batch is {batch!r}; expected an int >= 1 (streams to hold)")
        dtype = np.float32 if self.fixed is None else np.int64
        return NetworkState(  # large buffers on huge pages (see eventsp.runtime.memory)
            values=memory.zeros((batch, self._n_values), dtype, memory.STATE_MIN_BYTES),
            acts=memory.zeros((batch, self._n_acts), dtype, memory.STATE_MIN_BYTES),
            steps=np.zeros(batch, np.int64),
            counters=np.zeros((batch, self._n_rows, lay.NCOUNT), np.float64),
        )

    def _check_state(self, state: NetworkState) -> None:
        if (
            not isinstance(state, NetworkState)
            or state.values.shape[1:] != (self._n_values,)
            or state.acts.shape[1:] != (self._n_acts,)
            or state.counters.shape[1:] != (self._n_rows, lay.NCOUNT)
            or state.values.dtype != (np.float32 if self.fixed is None else np.int64)
        ):
            raise ValueError(
                "state does not belong to this network; create it with net.init_state(batch)"
            )

    def run(self, xs: np.ndarray, state: NetworkState) -> tuple[np.ndarray, NetworkState]:
        """Advance every stream by ``T`` frames: ``xs`` is ``(T, batch, *input_shape)``.

        Returns the outputs ``(T, batch, *output_shape)`` float32 and ``state`` (updated in
        place). The same as ``T`` calls of :meth:`step`, bit for bit.
        """
        self._check_state(state)
        xs = np.ascontiguousarray(xs, dtype=np.float32)
        batch = state.steps.shape[0]
        if xs.ndim < 2 or xs.shape[1] != batch or xs.shape[2:] != self.input_shape:
            raise ValueError(
                f"frames have shape {xs.shape}; expected (T, {batch}, "
                f"{', '.join(map(str, self.input_shape))}) for this network and state"
            )
        if self.fixed is not None:
            outs = self.fixed.run(xs, *state)
            return outs.reshape((xs.shape[0], batch, *self.output_shape)), state
        p = self.program
        frames = xs.reshape(xs.shape[0], batch, p.n_in)
        outs = np.empty((xs.shape[0], batch, p.n_out), np.float32)
        status = execute_run(p.code, self._params, frames, outs, *state)
        if status != OK:  # pragma: no cover - the checks above make this unreachable
            raise RuntimeError(f"runtime kernel refused the call (status {status})")
        return outs.reshape((xs.shape[0], batch, *self.output_shape)), state

    def step(self, x: np.ndarray, state: NetworkState) -> tuple[np.ndarray, NetworkState]:
        """Advance every stream by one frame: ``x`` is ``(batch, *input_shape)`` float32.

        Returns the output ``(batch, *output_shape)`` float32 (a new array) and ``state``
        (updated in place). Other dtypes and layouts are converted (slower); the shapes are
        checked in the kernel. :meth:`step_into` skips the allocation of the output.
        """
        if self.fixed is not None:
            return self._step_slowly(x, state)
        try:  # the fast path: attributes cached in __init__, every check in the kernel
            values, acts, steps, counters = state
            batch = x.shape[0]
            out = np.empty((batch, self._n_out), _F32)
            flat = x if self._flat_input else x.reshape(batch, self._n_in)
            status = execute_step(
                self._code, self._params, flat, out, values, acts, steps, counters
            )
        except (TypeError, AttributeError, ValueError, IndexError):
            return self._step_slowly(x, state)
        if status != OK:
            return self._step_slowly(x, state)
        return (out if self._flat_output else out.reshape((batch, *self.output_shape))), state

    def step_into(self, x: np.ndarray, out: np.ndarray, state: NetworkState) -> np.ndarray:
        """:meth:`step` writing the output into ``out``: the lowest-overhead call, for loops
        that own their buffers (no allocation, no conversion). Returns ``out``.

        ``x`` is ``(batch, *input_shape)`` and ``out`` ``(batch, *output_shape)``, both
        float32 and C-contiguous; ``out`` is overwritten. Anything else raises ``ValueError``
        (nothing is converted; use :meth:`step` for that). Float mode only. Results are the
        same bit for bit as :meth:`step`.
        """
        try:  # every check in the kernel and the dispatcher: a wrong dtype is a TypeError
            values, acts, steps, counters = state
            if self._into_flat:
                status = execute_step(
                    self._code, self._params, x, out, values, acts, steps, counters
                )
            elif (
                self.fixed is None
                and x.shape[1:] == self.input_shape
                and out.shape[1:] == self.output_shape
                and x.flags.c_contiguous
                and out.flags.c_contiguous
            ):  # the shapes themselves: a reshape would pass any array of the right size
                flat_x = x.reshape(x.shape[0], self._n_in)  # views: both are contiguous
                flat_out = out.reshape(out.shape[0], self._n_out)
                status = execute_step(
                    self._code, self._params, flat_x, flat_out, values, acts, steps, counters
                )
            else:
                status = -1
            if status == OK:
                return out
        except (TypeError, AttributeError, ValueError, IndexError):
            pass
        raise self._into_error(x, out, state)

    def stepper(
        self, state: NetworkState, out: np.ndarray | None = None
    ) -> Callable[[np.ndarray], np.ndarray]:
        """A function ``step(x) -> out`` bound to ``state`` and one output buffer: the same as
        ``net.step_into(x, out, state)``, with the state's arrays and the network's program
        looked up once instead of per call (about 0.2 µs less a call: 3.80 against 3.61 µs on
        workload (a) of ``bench/runtime.py``).

        ``out`` (C-contiguous float32 ``(batch, *output_shape)``) is allocated when not given;
        every call overwrites it and returns it. Float mode only.
        """
        if self.fixed is not None:
            raise self._into_error(None, out, state)
        self._check_state(state)
        if out is None:
            out = np.zeros((state.batch, *self.output_shape), _F32)
        error = _buffer_error("out", out, (state.batch, *self.output_shape))
        if error is not None:
            raise error
        code, params = self._code, self._params
        values, acts, steps, counters = state
        flat_out = out.reshape(state.batch, self._n_out)  # a view: out is contiguous
        n_in, input_shape, into_error = self._n_in, self.input_shape, self._into_error

        def step(x: np.ndarray) -> np.ndarray:
            try:
                if x.shape[1:] == input_shape and x.flags.c_contiguous:
                    flat_x = x.reshape(x.shape[0], n_in)  # a view, or an error
                    status = execute_step(
                        code, params, flat_x, flat_out, values, acts, steps, counters
                    )
                    if status == OK:
                        return out
            except (TypeError, AttributeError, ValueError, IndexError):
                pass
            raise into_error(x, out, state)

        def step_flat(x: np.ndarray) -> np.ndarray:
            try:
                if execute_step(code, params, x, out, values, acts, steps, counters) == OK:
                    return out
            except (TypeError, AttributeError, ValueError, IndexError):
                pass
            raise into_error(x, out, state)

        return step_flat if self._into_flat else step

    def _into_error(self, x: Any, out: Any, state: NetworkState) -> ValueError:
        """The error that explains why :meth:`step_into` refused its arguments."""
        if self.fixed is not None:
            return ValueError("step_into runs float mode only; use step() with mode='fixed'")
        self._check_state(state)
        batch = state.batch
        for name, arr, shape in (("x", x, self.input_shape), ("out", out, self.output_shape)):
            error = _buffer_error(name, arr, (batch, *shape), writeable=name == "out")
            if error is not None:
                return error
        return ValueError("step_into: the kernel refused the call")  # pragma: no cover

    def _step_slowly(self, x: Any, state: NetworkState) -> tuple[np.ndarray, NetworkState]:
        """:meth:`step` for inputs that need converting, or that are wrong (clear errors)."""
        self._check_state(state)
        x = np.ascontiguousarray(x, dtype=np.float32)
        batch = state.steps.shape[0]
        if x.ndim < 1 or x.shape[0] != batch or x.shape[1:] != self.input_shape:
            raise ValueError(
                f"frame has shape {x.shape}; expected ({batch}, "
                f"{', '.join(map(str, self.input_shape))}) for this network and state"
            )
        outs, state = self.run(x[None], state)
        return outs[0], state

    def reset(self, state: NetworkState, streams: Any = None) -> NetworkState:
        """Zero the state and counters of ``streams`` (indices, a mask or ``None`` for all)."""
        self._check_state(state)
        index = slice(None) if streams is None else np.asarray(streams)
        if (
            isinstance(index, np.ndarray)
            and index.dtype != np.bool_
            and index.size
            and (index.min() < -state.batch or index.max() >= state.batch)
        ):
            raise ValueError(f"streams {streams!r} out of range for batch {state.batch}")
        for arr in state:
            arr[index] = 0
        return state

    def node_state(self, state: NetworkState, name: str) -> np.ndarray:
        """A view of node ``name``'s state in ``state.values``: ``(batch, C, H, W)`` for spatial
        nodes, else ``(batch, size)``.

        IF, LIF and MultiSpike: membranes; LMUMemory: memories ``m[c, i]``; Readout: the
        accumulated sum; CausalConv1d: its ring of past input frames.
        """
        if self.fixed is not None:
            for op in self.fixed.ops:
                if op.name == name and op.state >= 0:
                    view = state.values[:, op.state : op.state + op.state_size]
                    return view.reshape(-1, *op.shape) if len(op.shape) == 3 else view
            raise KeyError(f"node {name!r} has no state")
        p = self.program
        for k, op_name in enumerate(p.op_names):
            if op_name == name and p.code[k, lay.S0] >= 0:
                start = int(p.code[k, lay.S0])
                size = int(p.code[k, lay.N_OUT])
                if p.code[k, lay.OP] == lay.CCONV1D:
                    size = int(p.code[k, lay.H] * p.code[k, lay.N_IN])
                view = state.values[:, start : start + size]
                shape = self.graph.shapes()[name]
                if len(shape) == 3:  # stored (H, W, C): show it in the graph's (C, H, W) order
                    c, h, w = shape
                    return view.reshape(-1, h, w, c).transpose(0, 3, 1, 2)
                return view
        raise KeyError(f"node {name!r} has no state; stateful nodes: {self._stateful()}")

    def node_output(self, state: NetworkState, name: str) -> np.ndarray:
        """A view ``(batch, *shape)`` of node ``name``'s output in the last frame (spikes of a
        neuron layer, a layer's pre-activations, ...). Output nodes have none: use the return
        value of :meth:`step`."""
        shape = self.graph.shapes().get(name)
        if shape is None or isinstance(self.graph.nodes[name], g.Output):
            raise KeyError(f"{name!r} is not a node with an output in this graph")
        size = math.prod(shape)
        if self.fixed is not None:
            op = next(op for op in self.fixed.ops if op.name == name)
            return state.acts[:, op.act : op.act + size].reshape(-1, *shape)
        start = self.program.slots[name]
        view = state.acts[:, start : start + size]
        if len(shape) == 3:  # stored (H, W, C)
            c, h, w = shape
            return view.reshape(-1, h, w, c).transpose(0, 3, 1, 2)
        return view

    def _stateful(self) -> list[str]:
        p = self.program
        return [n for k, n in enumerate(p.op_names) if p.code[k, lay.S0] >= 0]

    def counters(self, state: NetworkState) -> list[dict[str, Any]]:
        """NeuroBench-style counters of each stream since it was created or reset.

        Per stream: ``steps``; ``effective_acs`` (nonzero binary inputs x fan-out, summed over
        synaptic layers), ``effective_macs`` (the same for non-binary inputs, and LMU memory
        updates), ``effective_synops`` (their sum), ``dense_ops`` (every multiply-accumulate a
        dense implementation does); ``activation_sparsity`` (the fraction of zero outputs of
        IF/LIF/MultiSpike/ReLU layers over all frames); ``spikes`` per spiking layer (for
        MultiSpike the sum of the counts ``|n|``); ``neurons`` per spiking layer.
        """
        self._check_state(state)
        result = []
        for b in range(state.batch):
            cnt = state.counters[b]
            acs = macs = dense = nonzero = total = 0.0
            spikes: dict[str, float] = {}
            neurons: dict[str, int] = {}
            for k, (name, kind, size) in enumerate(self._rows):
                acs += cnt[k, lay.ACS]
                macs += cnt[k, lay.MACS]
                dense += cnt[k, lay.DENSE_OPS]
                if kind in ACTIVATIONS:
                    nonzero += cnt[k, lay.NONZERO]
                    total += cnt[k, lay.TOTAL]
                if kind in SPIKING:
                    spikes[name] = float(cnt[k, lay.SPIKES])
                    neurons[name] = size
            result.append(
                {
                    "steps": int(state.steps[b]),
                    "effective_acs": acs,
                    "effective_macs": macs,
                    "effective_synops": acs + macs,
                    "dense_ops": dense,
                    "activation_sparsity": 1.0 - nonzero / total if total else 0.0,
                    "spikes": spikes,
                    "neurons": neurons,
                }
            )
        return result

    def __repr__(self) -> str:
        n_ops = self.program.code.shape[0]
        return (
            f"Network(input={self.input_shape}, output={self.output_shape}, ops={n_ops}, "
            f"mode={self.mode!r}, parameter_bytes={self.parameter_bytes})"
        )


def _buffer_error(
    name: str, arr: Any, shape: tuple[int, ...], writeable: bool = True
) -> ValueError | None:
    """Why ``arr`` cannot be :meth:`Network.step_into`'s ``name`` (None: it can)."""
    if (
        not isinstance(arr, np.ndarray)
        or arr.dtype != _F32
        or not arr.flags.c_contiguous
        or arr.shape != shape
    ):
        got = f"{type(arr).__name__} {getattr(arr, 'dtype', '')} {getattr(arr, 'shape', '')}"
        return ValueError(
            f"step_into: {name} is {got}; expected a C-contiguous float32 array of "
            f"shape {shape} for this network and state (step() converts)"
        )
    if writeable and not arr.flags.writeable:
        return ValueError(f"step_into: {name} is read-only; pass a writeable array")
    return None
