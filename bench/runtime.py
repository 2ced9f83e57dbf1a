"""Runtime speed: eventsp against snnTorch, Norse, SpikingJelly, sinabs and hand-written torch.

Run in the bench environment (``make bench`` builds ``.venv-bench``)::

    .venv-bench/bin/python bench/runtime.py [--data ../shared/data] [--quick]

Workloads, one frame per call, every library on one thread and with the same weights:

(a) 700-256-256-20 LIF MLP (a Spiking Heidelberg Digits model), batch 1, 5% input activity;
(b) 2x34x34 -> conv3x3 16 -> LIF -> avgpool 2 -> conv3x3 32 -> LIF -> avgpool 2 -> dense 10 LIF,
    batch 1, fed 1 ms frames of a real N-MNIST recording;
(c) workload (a) with 64 streams (batch 64).

Every network is the same LIF: ``v = 0.9 v + W x + b; s = v >= 1; v = 0 where s``, mapped onto
each library's parameters (Norse's input gain ``dt/tau`` is undone by scaling its weights). The
output spikes of each peer are compared with eventsp's as a check that all run one network.
eventsp runs through ``Network.stepper(state)`` (a function of the frame that writes into one
output buffer; ``Network.step`` allocates a new array per call, about 0.7 µs more on (a)).
Printed: median and p95 µs per step, the ratio to eventsp, the memory-bandwidth bound of each
workload, and the first step after import with a warm cache. The last line is
``speedup_vs_best_peer a=<x> b=<y> c=<z>``.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from itertools import pairwise  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

DECAY, THRESHOLD = 0.9, 1.0
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str  # "mlp" or "conv"
    batch: int
    frames: np.ndarray  # (T, batch, *input_shape) float32
    layers: list  # ("dense", W, b) | ("conv", W, b) | ("pool",) | ("flatten",) | ("lif",)


def _mlp_layers(rng: np.random.Generator) -> list:
    sizes, gains = [700, 256, 256, 20], [1.2, 0.45, 0.5]
    layers = []
    for n_in, n_out, gain in zip(sizes, sizes[1:], gains, strict=False):
        w = rng.normal(0, gain / np.sqrt(n_in * 0.05), (n_out, n_in)).astype(np.float32)
        layers += [("dense", w, rng.normal(0.02, 0.02, n_out).astype(np.float32)), ("lif",)]
    return layers


def _conv_layers(rng: np.random.Generator) -> list:
    def conv(c_out, c_in, gain):
        w = rng.normal(0, gain / np.sqrt(c_in * 9), (c_out, c_in, 3, 3)).astype(np.float32)
        return ("conv", w, np.full(c_out, 0.05, np.float32))

    dense = rng.normal(0, 2.0 / np.sqrt(2048 * 0.05), (10, 2048)).astype(np.float32)
    return [
        conv(16, 2, 6.0),
        ("lif",),
        ("pool",),
        conv(32, 16, 5.0),
        ("lif",),
        ("pool",),
        ("flatten",),
        ("dense", dense, np.zeros(10, np.float32)),
        ("lif",),
    ]


def _nmnist_frames(data: Path, frame_us: int = 1000) -> np.ndarray:
    """(T, 2, 34, 34) event counts of one real N-MNIST recording, in 1 ms frames."""
    raw = np.fromfile(data / "nmnist_small" / "train" / "00001.bin", dtype=np.uint8)
    ev = raw[: raw.size // 5 * 5].reshape(-1, 5).astype(np.int64)
    x, y = ev[:, 0], ev[:, 1]
    p = ev[:, 2] >> 7
    t = ((ev[:, 2] & 0x7F) << 16) | (ev[:, 3] << 8) | ev[:, 4]
    frames = np.zeros((t.max() // frame_us + 1, 2, 34, 34), np.float32)
    np.add.at(frames, (t // frame_us, p, y, x), 1.0)
    return frames


def workloads(data: Path, steps: int) -> list[Workload]:
    rng = np.random.default_rng(20261122)
    mlp = _mlp_layers(rng)
    conv = _conv_layers(rng)
    a = (rng.random((steps, 1, 700)) < 0.05).astype(np.float32)
    c = (rng.random((max(steps // 4, 50), 64, 700)) < 0.05).astype(np.float32)
    b = _nmnist_frames(data)[:, None]
    return [
        Workload("a", "mlp", 1, a, mlp),
        Workload("b", "conv", 1, b, conv),
        Workload("c", "mlp", 64, c, mlp),
    ]


# ------------------------------------------------------------------------------ eventsp


def eventsp_graph(w: Workload):
    from eventsp.model.graph import LIF, AvgPool2d, Conv2d, Dense, Flatten, Graph, Input, Output

    nodes = [("in", Input(w.frames.shape[2:]))]
    for i, layer in enumerate(w.layers):
        if layer[0] == "dense":
            nodes.append((f"fc{i}", Dense(layer[1], layer[2])))
        elif layer[0] == "conv":
            nodes.append((f"conv{i}", Conv2d(layer[1], layer[2], padding=1)))
        elif layer[0] == "pool":
            nodes.append((f"pool{i}", AvgPool2d(kernel=2)))
        elif layer[0] == "flatten":
            nodes.append((f"flat{i}", Flatten()))
        else:
            nodes.append((f"lif{i}", LIF(decay=DECAY, threshold=THRESHOLD)))
    graph = Graph.chain([*nodes, ("out", Output((w.layers[-2][1].shape[0],)))])
    return graph


def make_eventsp(w: Workload) -> Callable:
    """``Network.stepper``: the runtime's documented lowest-overhead call, a function of the
    frame bound to one state and one output buffer (``Network.step`` allocates a new output
    per call and looks everything up again)."""
    from eventsp.runtime import Network

    net = Network(eventsp_graph(w))
    state = net.init_state(w.batch)
    step = net.stepper(state)
    step.net, step.state = net, [state]  # for the counters
    return step


# ------------------------------------------------------------------------------ peers


def _torch_modules(w: Workload, neuron: Callable, weight_gain: float = 1.0) -> list:
    import torch

    mods = []
    for layer in w.layers:
        if layer[0] in ("dense", "conv"):
            weight = torch.from_numpy(layer[1] * weight_gain)
            if layer[0] == "dense":
                m = torch.nn.Linear(weight.shape[1], weight.shape[0])
            else:
                m = torch.nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)
            m.weight.data = weight.clone()
            m.bias.data = torch.from_numpy(layer[2] * weight_gain).clone()
            mods.append(m)
        elif layer[0] == "pool":
            mods.append(torch.nn.AvgPool2d(2))
        elif layer[0] == "flatten":
            mods.append(torch.nn.Flatten())
        else:
            mods.append(neuron())
    return mods


def make_torch(w: Workload) -> Callable:
    """Hand-written torch: the same equations with in-place tensor ops."""
    import torch
    from torch.nn import functional

    params = [
        (layer[0], torch.from_numpy(layer[1]), torch.from_numpy(layer[2]))
        if layer[0] in ("dense", "conv")
        else (layer[0],)
        for layer in w.layers
    ]
    membranes: dict[int, torch.Tensor] = {}

    def step(x: torch.Tensor) -> torch.Tensor:
        for i, p in enumerate(params):
            if p[0] == "dense":
                x = torch.addmm(p[2], x, p[1].t())
            elif p[0] == "conv":
                x = functional.conv2d(x, p[1], p[2], padding=1)
            elif p[0] == "pool":
                x = functional.avg_pool2d(x, 2)
            elif p[0] == "flatten":
                x = x.flatten(1)
            else:
                v = membranes.get(i)
                v = x if v is None else v.mul_(DECAY).add_(x)
                spikes = v >= THRESHOLD
                membranes[i] = v.masked_fill_(spikes, 0.0)
                x = spikes.to(torch.float32)
        return x

    return step


def make_snntorch(w: Workload) -> Callable:
    import snntorch as snn
    import torch

    def leaky():
        return snn.Leaky(beta=DECAY, threshold=THRESHOLD, init_hidden=True, reset_mechanism="zero")

    net = torch.nn.Sequential(*_torch_modules(w, leaky))
    for m in net:
        if isinstance(m, snn.Leaky):
            m.reset_mem()
    return lambda x: net(x)


def make_norse(w: Workload) -> Callable:
    import norse.torch as norse
    import torch

    dt, tau_mem_inv = 1e-3, (1 - DECAY) / 1e-3  # decay = 1 - dt*tau_mem_inv; input gain 0.1

    def cell():
        p = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(tau_mem_inv), v_th=torch.tensor(1.0))
        return norse.LIFBoxCell(p, dt=dt)

    net = norse.SequentialState(*_torch_modules(w, cell, weight_gain=1 / (dt * tau_mem_inv)))
    state = [None]

    def step(x):
        out, state[0] = net(x, state[0])
        return out

    return step


def make_spikingjelly(w: Workload) -> Callable:
    import torch
    from spikingjelly.activation_based import functional, neuron

    def lif():  # decay_input=False: v = v - v/tau + x, hard reset to v_reset=0
        return neuron.LIFNode(
            tau=1 / (1 - DECAY),
            decay_input=False,
            v_threshold=THRESHOLD,
            v_reset=0.0,
            step_mode="s",
        )

    net = torch.nn.Sequential(*_torch_modules(w, lif))
    functional.reset_net(net)
    return lambda x: net(x)


def make_sinabs(w: Workload) -> Callable:
    import sinabs.activation as sa
    import sinabs.layers as sl
    import torch

    def lif():  # LIFSqueeze: (batch*time, ...) tensors, here time = 1 per call
        return sl.LIFSqueeze(
            batch_size=w.batch,
            tau_mem=torch.tensor(-1 / np.log(DECAY)),
            norm_input=False,
            spike_threshold=torch.tensor(THRESHOLD),
            spike_fn=sa.SingleSpike,
            reset_fn=sa.MembraneReset(),
        )

    net = torch.nn.Sequential(*_torch_modules(w, lif))
    return lambda x: net(x)


PEERS = {
    "torch (hand-written)": make_torch,
    "snnTorch": make_snntorch,
    "Norse": make_norse,
    "SpikingJelly": make_spikingjelly,
    "sinabs": make_sinabs,
}


# ------------------------------------------------------------------------------ timing


def time_interleaved(
    steppers: dict[str, tuple[Callable, Any]], warmup: int, blocks: int = 4
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, str]]:
    """Per-step times (µs) and outputs of every library over the same frames.

    Each library first runs ``warmup`` untimed frames, then the frames again from the start,
    timed one call at a time. The timed frames are cut into ``blocks`` and the libraries take
    turns block by block, so a burst of load from other processes is shared out instead of
    landing on one library. A library that raises is dropped and its error returned.
    """
    times = {name: [] for name in steppers}
    outs: dict[str, list] = {name: [] for name in steppers}
    failed: dict[str, str] = {}
    n = len(next(iter(steppers.values()))[1])
    edges = np.linspace(0, n, blocks + 1).astype(int)
    clock = time.perf_counter_ns
    phases = [(False, 0, min(warmup, n))] + [(True, lo, hi) for lo, hi in pairwise(edges)]
    for timed, lo, hi in phases:
        for name, (step, frames) in steppers.items():
            if name in failed:
                continue
            try:
                for i in range(lo, hi):
                    t0 = clock()
                    y = step(frames[i])
                    t1 = clock()
                    if timed:
                        times[name].append((t1 - t0) / 1e3)
                        outs[name].append(np.asarray(y).copy())
            except Exception as exc:  # a peer that does not run here is reported, not fatal
                failed[name] = f"{type(exc).__name__}: {exc}"
    keep = [name for name in steppers if name not in failed]
    return (
        {name: np.array(times[name]) for name in keep},
        {name: np.array(outs[name]) for name in keep},
        failed,
    )


def copy_bandwidth(nbytes: int = 128 * 2**20, repeat: int = 5) -> float:
    """Bytes per second of a numpy copy of ``nbytes`` (read + write), best of ``repeat``.

    128 MiB measures main memory; 1 MiB, repeated, measures the caches (the runtime's models
    here are 0.3 to 1.5 MB, so a warm step reads its weights from cache, not from DRAM).
    """
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    inner = max(1, 2**26 // nbytes)
    best = min(_timed(lambda: [np.copyto(dst, src) for _ in range(inner)]) for _ in range(repeat))
    return 2 * src.nbytes * inner / best


def _timed(fn: Callable) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bytes_per_step(w: Workload, net, state, steps: int) -> tuple[float, float]:
    """(dense, event-driven) bytes a step must touch at least: weights and state.

    Dense: every weight once, every membrane read and written. Event-driven: one weight per
    effective synaptic operation (eventsp's counters over the timed run), at most every weight
    once (a conv kernel or a weight row shared by streams is read once), plus the membranes.
    """
    shapes = net.graph.shapes()
    neurons = sum(
        int(np.prod(shapes[n])) for n, node in net.graph.nodes.items() if node.type == "LIF"
    )
    state_bytes = 2 * 4 * neurons * w.batch + w.frames[0].nbytes
    weights = net.parameter_bytes
    synops = sum(c["effective_synops"] for c in net.counters(state)) / max(steps, 1)
    return weights + state_bytes, min(4 * synops, weights) + state_bytes


def first_step_after_import(graph) -> tuple[float, float, float]:
    """Seconds to import numpy and ``eventsp.runtime``, to load ``graph`` from an .esp file,
    and for its first step, in a fresh interpreter with the kernel cache warm (the run with
    the smallest total of the second and third of three runs)."""
    import tempfile

    from eventsp.model.format import save_model

    code = r"""
import os, sys, time
os.environ["NUMBA_NUM_THREADS"] = "1"
t0 = time.perf_counter()
import numpy as np
from eventsp.runtime import Network
t1 = time.perf_counter()
net = Network.from_file(sys.argv[1])
state = net.init_state(1)
x = (np.random.default_rng(0).random((1, *net.input_shape)) < 0.05).astype(np.float32)
t2 = time.perf_counter()
net.step(x, state)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""
    with tempfile.TemporaryDirectory() as tmp:
        path = save_model(Path(tmp) / "a.esp", graph, {"task": "kws"})
        runs = []
        for _ in range(3):
            out = subprocess.run(
                [sys.executable, "-c", code, str(path)], capture_output=True, text=True
            )
            if out.returncode:
                raise RuntimeError(f"first-step probe failed:\n{out.stderr[-2000:]}")
            runs.append(tuple(float(v) for v in out.stdout.split()))
    return min(runs[1:], key=sum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--steps", type=int, default=3000, help="timed steps of workload (a)")
    parser.add_argument("--quick", action="store_true", help="few steps, for a smoke run")
    args = parser.parse_args(argv)
    steps = 200 if args.quick else args.steps
    recording = args.data / "nmnist_small" / "train" / "00001.bin"
    if not recording.is_file():
        parser.error(f"workload (b) reads {recording}, which is missing; pass --data PATH")

    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # peers' deprecation chatter
    bandwidth, cache_bw = copy_bandwidth(), copy_bandwidth(2**20, 20)
    print(
        f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, numpy {np.__version__}, "
        f"copy bandwidth {bandwidth / 1e9:.1f} GB/s (128 MiB, main memory), "
        f"{cache_bw / 1e9:.1f} GB/s (1 MiB, cache); one thread everywhere"
    )
    speedups = {}
    for w in workloads(args.data, steps):
        frames_np = w.frames
        frames_t = torch.from_numpy(frames_np)
        warmup = min(50, len(frames_np) // 5)
        es = make_eventsp(w)
        steppers: dict[str, tuple[Callable, Any]] = {"eventsp": (es, frames_np)}
        for name, make in PEERS.items():
            try:
                steppers[name] = (make(w), frames_t)
            except Exception as exc:  # a peer that does not build here is reported, not fatal
                print(f"  {name}: failed to build ({type(exc).__name__}: {exc})")
        with torch.inference_mode():
            times, outs, failed = time_interleaved(steppers, warmup)
        for name, error in failed.items():
            print(f"  {name}: failed ({error})")
        n_timed = len(frames_np)
        dense_b, event_b = bytes_per_step(w, es.net, es.state[0], n_timed + warmup)
        t_es, out_es = times["eventsp"], outs["eventsp"]
        med_es = float(np.median(t_es))
        rows = [
            (name, t, float((outs[name].reshape(out_es.shape) == out_es).mean()))
            for name, t in times.items()
        ]
        activity, spikes = float((frames_np > 0).mean()), float(out_es.mean())
        print(
            f"\nworkload ({w.name}): {w.kind}, batch {w.batch}, {n_timed} timed steps, "
            f"input activity {activity:.3%}, output spike rate {spikes:.3f}"
        )
        print(
            f"  {'library':<22}{'median µs':>11}{'p95 µs':>10}{'vs eventsp':>12}{'same spikes':>13}"
        )
        for name, t, agree in rows:
            med, p95 = float(np.median(t)), float(np.percentile(t, 95))
            print(f"  {name:<22}{med:>11.1f}{p95:>10.1f}{med / med_es:>11.1f}x{agree:>13.4f}")
        for label, size in (("dense", dense_b), ("event-driven", event_b)):
            print(
                f"  memory-bandwidth bound, {label}: {size / 1e3:.1f} kB/step -> "
                f"{size / bandwidth * 1e6:.2f} µs from main memory, "
                f"{size / cache_bw * 1e6:.2f} µs from cache"
            )
        peers = [float(np.median(t)) for name, t, _ in rows[1:]]
        speedups[w.name] = min(peers) / med_es if peers else float("nan")
    imports, load, first = first_step_after_import(eventsp_graph(workloads(args.data, 10)[0]))
    print(
        f"\nfirst step after import (warm cache): {first * 1e3:.1f} ms; before it, importing "
        f"numpy and eventsp.runtime took {imports * 1e3:.0f} ms and loading the (a) model "
        f"file {load * 1e3:.0f} ms (total {(imports + load + first) * 1e3:.0f} ms)"
    )
    print("speedup_vs_best_peer " + " ".join(f"{k}={v:.1f}" for k, v in speedups.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
