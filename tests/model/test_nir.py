"""NIR interchange: graphs exported by snnTorch and Norse run here with the same spikes.

The torch modules run one frame per call on seeded random spike input; every spiking layer's
spikes are compared (forward hooks on the torch side, a graph cut after that layer here).
"""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest

from eventsp.model.graph import (
    IF,
    LIF,
    Add,
    AvgPool2d,
    CausalConv1d,
    Conv2d,
    Dense,
    Flatten,
    Graph,
    Identity,
    Input,
    LMUMemory,
    MultiSpike,
    Output,
    Readout,
    ReLU,
    SumPool2d,
)
from eventsp.model.nir import NIRConversionError, from_nir, to_nir
from eventsp.runtime import Network

torch = pytest.importorskip("torch")
T = 100
MIN_AGREEMENT = 0.9999


def _cut_after(graph: Graph, name: str) -> Graph:
    """The part of ``graph`` that computes ``name``, with ``name`` as its output."""
    keep, todo = set(), [name]
    while todo:
        node = todo.pop()
        if node not in keep:
            keep.add(node)
            todo += graph.predecessors(node)
    nodes = {n: graph.nodes[n] for n in graph.order() if n in keep}
    nodes["cut_out"] = Output(graph.shapes()[name])
    edges = [e for e in graph.edges if e[0] in keep and e[1] in keep] + [(name, "cut_out")]
    return Graph(nodes, edges)


def _eventsp_spikes(graph: Graph, xs: np.ndarray) -> dict[str, np.ndarray]:
    """Each LIF/IF layer's spikes over ``xs`` (T, *input_shape), batch 1, one frame per step."""
    out = {}
    for name, node in graph.nodes.items():
        if isinstance(node, LIF | IF):
            net = Network(_cut_after(graph, name))
            state = net.init_state(1)
            frames = []
            for x in xs:
                y, state = net.step(x[None], state)
                frames.append(y[0].copy())
            out[name] = np.array(frames)
    return out


def _agreement(ours: dict[str, np.ndarray], theirs: list[np.ndarray]) -> list[float]:
    assert len(ours) == len(theirs), f"{len(ours)} spiking layers here, {len(theirs)} in torch"
    rates = []
    for (name, a), b in zip(ours.items(), theirs, strict=True):
        b = b.reshape(a.shape)
        assert set(np.unique(a)) <= {0.0, 1.0}, name
        assert 0.005 < b.mean() < 0.6, f"layer {name} spike rate {b.mean():.4f}: test is too weak"
        rates.append(float((a == b).mean()))
    return rates


def _snn_leaky(shape, beta, threshold, **kw):
    import snntorch as snn

    # Per-neuron parameters: snnTorch's exporter only types LIF nodes of array parameters.
    return snn.Leaky(
        beta=torch.full(shape, beta),
        threshold=torch.full(shape, threshold),
        init_hidden=True,
        reset_mechanism="zero",  # what NIR's v_reset expresses; "subtract" exports as zero too
        **kw,
    )


def _run_snntorch(net, xs: np.ndarray) -> list[np.ndarray]:
    import snntorch as snn

    leaky = [m for m in net.modules() if isinstance(m, snn.Leaky)]
    recorded: list[list[np.ndarray]] = [[] for _ in leaky]
    hooks = [
        m.register_forward_hook(
            lambda mod, inp, out, i=i: recorded[i].append(
                (out[0] if isinstance(out, tuple) else out).detach().numpy().copy()
            )
        )
        for i, m in enumerate(leaky)
    ]
    for m in leaky:
        m.reset_mem()
    with torch.no_grad():
        for x in xs:
            net(torch.from_numpy(x))
    for h in hooks:
        h.remove()
    return [np.array(r) for r in recorded]


def _export_snntorch(net, sample):
    from snntorch.export_nir import export_to_nir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nirtorch's tracer warns about torch internals
        return export_to_nir(net, sample)


def test_snntorch_mlp_runs_with_the_same_spikes(rng):
    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Linear(70, 32),
        _snn_leaky((32,), 0.9, 1.0),
        torch.nn.Linear(32, 16),
        _snn_leaky((16,), 0.8, 0.5),
        torch.nn.Linear(16, 5),
        _snn_leaky((5,), 0.95, 0.25, output=True),
    )
    with torch.no_grad():
        for layer in net[::2]:
            layer.weight.mul_(3.0)
    graph = from_nir(_export_snntorch(net, torch.zeros(70)), dt=1e-4)
    assert [type(n).__name__ for n in graph.nodes.values()].count("LIF") == 3
    xs = (rng.random((T, 70)) < 0.2).astype(np.float32)
    rates = _agreement(_eventsp_spikes(graph, xs), _run_snntorch(net, xs))
    assert min(rates) >= MIN_AGREEMENT, rates


def test_snntorch_conv_net_runs_with_the_same_spikes(rng):
    torch.manual_seed(2)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1),
        _snn_leaky((4, 12, 12), 0.9, 0.5),
        torch.nn.AvgPool2d((2, 2)),
        torch.nn.Conv2d(4, 8, 3),
        _snn_leaky((8, 4, 4), 0.85, 0.5),
        torch.nn.Flatten(start_dim=0),  # unbatched trace: snnTorch's exporter types no batch
        torch.nn.Linear(8 * 4 * 4, 10),
        _snn_leaky((10,), 0.9, 0.5, output=True),
    )
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        net[3].weight.mul_(4.0)
        net[6].weight.mul_(4.0)
    graph = from_nir(_export_snntorch(net, torch.zeros(2, 12, 12)), dt=1e-4)
    kinds = [type(n).__name__ for n in graph.nodes.values()]
    assert kinds.count("Conv2d") == 2
    assert {"AvgPool2d", "Flatten"} <= set(kinds)
    xs = (rng.random((T, 2, 12, 12)) < 0.15).astype(np.float32)
    rates = _agreement(_eventsp_spikes(graph, xs), _run_snntorch(net, xs))
    assert min(rates) >= MIN_AGREEMENT, rates


def _norse():
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", FutureWarning
        )  # norse calls the deprecated torch.jit.script
        import norse.torch as norse
    return norse


def _norse_net():
    norse = _norse()
    torch.manual_seed(3)
    net = norse.SequentialState(
        torch.nn.Linear(40, 24),
        norse.LIFBoxCell(),  # tau_mem_inv 100/s, dt 1 ms: decay 0.9, input gain 0.1
        torch.nn.Linear(24, 6),
        norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.tensor(200.0))),
    )
    with torch.no_grad():
        net[0].weight.mul_(25.0)
        net[2].weight.mul_(40.0)
    return net


def test_norse_export_runs_with_the_same_spikes(rng):
    norse = _norse()
    net = _norse_net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = norse.to_nir(net, torch.zeros(1, 40), dt=1e-3)
    graph = from_nir(exported, dt=1e-3, time_convention="norse-1.1")
    lifs = [n for n in graph.nodes.values() if isinstance(n, LIF)]
    assert [round(n.decay, 6) for n in lifs] == [0.9, 0.8]
    xs = (rng.random((T, 40)) < 0.2).astype(np.float32)
    recorded: list[list[np.ndarray]] = [[], []]
    cells = [m for m in net if isinstance(m, norse.LIFBoxCell)]
    hooks = [
        cell.register_forward_hook(
            lambda mod, inp, out, i=i: recorded[i].append(out[0].detach().numpy().copy())
        )
        for i, cell in enumerate(cells)
    ]
    state = None
    with torch.no_grad():
        for x in xs:
            _, state = net(torch.from_numpy(x[None]), state)
    for h in hooks:
        h.remove()
    theirs = [np.array(r)[:, 0] for r in recorded]
    rates = _agreement(_eventsp_spikes(graph, xs), theirs)
    assert min(rates) >= MIN_AGREEMENT, rates


def test_norse_time_constant_bug_is_named(rng):
    norse = _norse()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = norse.to_nir(_norse_net(), torch.zeros(1, 40), dt=1e-3)
    with pytest.raises(NIRConversionError, match=r"dt/tau=100,.*norse-1\.1"):
        from_nir(exported, dt=1e-3)


def _euler_nir_lif(xs, weight, bias, tau, r, v_leak, v_th, dt):
    """NIR's LIF by forward Euler, plainly: the semantics from_nir promises."""
    v = np.zeros(weight.shape[0])
    out = []
    for x in xs:
        current = weight.astype(np.float64) @ x + bias
        v = v + dt / tau * ((v_leak - v) + r * current)
        z = v > v_th
        v = np.where(z, 0.0, v)
        out.append(z.astype(np.float32))
    return np.array(out)


def test_lif_gain_and_leak_follow_nir_equations(rng):
    n_in, n_out, dt = 30, 12, 1e-3
    weight = rng.normal(0, 1, (n_out, n_in)).astype(np.float32)
    bias = rng.normal(0, 0.2, n_out).astype(np.float32)
    tau, r, v_leak, v_th = 0.02, 3.0, 0.4, 0.6
    ones = np.ones(n_out, np.float32)
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([n_in])),
            "fc": nir.Affine(weight=weight, bias=bias),
            "lif": nir.LIF(
                tau=tau * ones, r=r * ones, v_leak=v_leak * ones, v_threshold=v_th * ones
            ),
            "output": nir.Output(output_type=np.array([n_out])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
    )
    graph = from_nir(g, dt=dt)
    lif = graph.nodes["lif"]
    assert lif.decay == pytest.approx(1 - dt / tau)
    assert lif.threshold == pytest.approx(v_th / (r * dt / tau))
    np.testing.assert_allclose(graph.nodes["fc"].bias, bias + v_leak / r, rtol=1e-6)
    xs = (rng.random((300, n_in)) < 0.3).astype(np.float32)
    expected = _euler_nir_lif(xs, weight, bias, tau, r, v_leak, v_th, dt)
    assert 0.02 < expected.mean() < 0.5
    net = Network(graph)
    got, _ = net.run(xs[:, None], net.init_state(1))
    assert (got[:, 0] == expected).mean() >= MIN_AGREEMENT


def _every_node_graphs(rng) -> list[Graph]:
    def f32(*shape):
        return rng.normal(size=shape).astype(np.float32)

    vision = Graph.chain(
        [
            ("in", Input((2, 12, 12), quant_bits=8, quant_scale=0.05)),
            ("c1", Conv2d(f32(4, 1, 3, 3), f32(4), stride=1, padding=1, groups=2)),
            ("if1", IF(threshold=0.75)),
            ("p1", AvgPool2d(kernel=2)),
            (
                "c2",
                Conv2d(
                    rng.integers(-8, 8, (8, 4, 3, 3)).astype(np.int8),
                    None,
                    1,
                    0,
                    1,
                    4,
                    0.125,
                    acc_shift=3,  # fixed-point rounding only: eventsp.acc_shift metadata
                ),
            ),
            ("lif2", LIF(decay=0.8, threshold=1.25)),
            ("p2", SumPool2d(kernel=2, stride=2)),
            ("flat", Flatten()),
            ("d1", Dense(f32(6, 32), f32(6))),
            ("relu", ReLU()),
            ("d2", Dense(rng.integers(-100, 100, (5, 6)).astype(np.int8), None, 8, 0.01, 16)),
            ("if_hard", LIF(decay=1.0, threshold=2.0)),
            ("id", Identity()),
            ("out", Output((5,))),
        ]
    )
    audio = Graph(
        {
            "in": Input((4,)),
            "tc": CausalConv1d(f32(4, 4, 3), f32(4), dilation=2),
            "ms": MultiSpike(dt=0.25),
            "add": Add(),
            "lmu": LMUMemory(order=3, theta=10.0, A_d=f32(3, 3), B_d=f32(3)),
            "d": Dense(f32(2, 12)),
            "ro": Readout(mode="mean"),
            "out": Output((2,)),
        },
        [
            ("in", "tc"),
            ("tc", "ms"),
            ("ms", "add"),
            ("in", "add"),
            ("add", "lmu"),
            ("lmu", "d"),
            ("d", "ro"),
            ("ro", "out"),
        ],
    )
    return [vision, audio]


def _assert_same(a: Graph, b: Graph) -> None:
    spec_a, arrays_a = a.to_dict()
    spec_b, arrays_b = b.to_dict()
    for name in spec_a["nodes"]:
        node_a, node_b = spec_a["nodes"][name], spec_b["nodes"][name]
        assert node_a.keys() == node_b.keys(), name
        for key, value in node_a.items():
            if isinstance(value, float):
                assert node_b[key] == pytest.approx(value, rel=1e-6), (name, key)
            else:
                assert node_b[key] == value, (name, key)
    assert sorted(spec_a["edges"]) == sorted(spec_b["edges"])
    assert arrays_a.keys() == arrays_b.keys()
    for key, arr in arrays_a.items():
        assert arrays_b[key].dtype == arr.dtype, key
        np.testing.assert_array_equal(arrays_b[key], arr, err_msg=key)


@pytest.mark.parametrize("via_file", [False, True])
def test_round_trip_of_every_node_type(rng, tmp_path, via_file):
    for graph in _every_node_graphs(rng):
        exported = to_nir(graph, dt=1e-3)
        if via_file:
            nir.write(tmp_path / "g.nir", exported)
            exported = tmp_path / "g.nir"
        _assert_same(graph, from_nir(exported, dt=1e-3))


def test_exported_lif_runs_the_same_in_snntorch(rng):
    """eventsp -> NIR -> snnTorch's importer gives the same spikes (plain NIR, no metadata)."""
    from snntorch.import_nir import import_from_nir

    graph = Graph.chain(
        [
            ("in", Input((20,))),
            ("fc", Dense(rng.normal(0, 1, (8, 20)).astype(np.float32), np.zeros(8, np.float32))),
            ("lif", LIF(decay=0.9, threshold=1.0)),
            ("out", Output((8,))),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = import_from_nir(to_nir(graph, dt=1e-4))
    xs = (rng.random((T, 20)) < 0.3).astype(np.float32)
    net = Network(graph)
    ours, _ = net.run(xs[:, None], net.init_state(1))
    theirs = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = None
        for x in xs:
            out, state = module(torch.from_numpy(x[None]), state)
            theirs.append(out.numpy()[0])
    theirs = np.array(theirs)
    assert 0.01 < theirs.mean() < 0.6
    assert (ours[:, 0] == theirs).mean() >= MIN_AGREEMENT


def test_strict_export_refuses_what_nir_cannot_express(rng):
    vision, audio = _every_node_graphs(rng)
    with pytest.raises(NIRConversionError, match="'if1' is a IF"):
        to_nir(vision, strict=True)
    with pytest.raises(NIRConversionError, match="'tc' is a CausalConv1d"):
        to_nir(audio, strict=True)
    lif_only = Graph.chain(
        [
            ("in", Input((3,))),
            ("d", Dense(np.eye(3, dtype=np.float32))),
            ("l", LIF()),
            ("o", Output((3,))),
        ]
    )
    assert isinstance(to_nir(lif_only, strict=True).nodes["l"], nir.LIF)


def _one_node_graph(node) -> nir.NIRGraph:
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([4])),
            "n": node,
            "output": nir.Output(np.array([4])),
        },
        edges=[("input", "n"), ("n", "output")],
    )


def test_unsupported_nir_is_refused_with_the_reason():
    ones = np.ones(4, np.float32)
    cuba = nir.CubaLIF(tau_syn=ones, tau_mem=ones, r=ones, v_leak=0 * ones, v_threshold=ones)
    with pytest.raises(NIRConversionError, match="'n' is a CubaLIF, which eventsp cannot run"):
        from_nir(_one_node_graph(cuba))
    varying = nir.LIF(tau=np.linspace(0.01, 0.02, 4), r=ones, v_leak=0 * ones, v_threshold=ones)
    with pytest.raises(NIRConversionError, match="tau varying over neurons"):
        from_nir(_one_node_graph(varying), dt=1e-3)
    reset = nir.LIF(tau=ones * 0.01, r=ones, v_leak=0 * ones, v_threshold=ones, v_reset=ones * 0.5)
    with pytest.raises(NIRConversionError, match="eventsp neurons reset to 0"):
        from_nir(_one_node_graph(reset), dt=1e-3)
    leak = nir.LIF(tau=ones * 0.01, r=ones, v_leak=ones, v_threshold=ones)
    with pytest.raises(NIRConversionError, match="v_leak != 0 but no Affine"):
        from_nir(_one_node_graph(leak), dt=1e-3)


def test_several_inputs_into_one_node_are_summed(rng):
    """NIR adds up a node's incoming edges: an explicit Add appears before that node."""
    dt, tau = 1e-3, 1e-2
    ones = np.ones(4, np.float32)
    w1, w2 = (rng.normal(0, 1.5, (4, 6)).astype(np.float32) for _ in range(2))
    b = np.zeros(4, np.float32)

    def lif():  # gain r dt / tau = 1, decay 0.9
        return nir.LIF(tau=tau * ones, r=tau / dt * ones, v_leak=0 * ones, v_threshold=ones)

    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([6])),
            "a1": nir.Affine(weight=w1, bias=b),
            "lif1": lif(),
            "a2": nir.Affine(weight=w2, bias=b),
            "lif2": lif(),
            "output": nir.Output(output_type=np.array([4])),
        },
        edges=[
            ("input", "a1"),
            ("a1", "lif1"),
            ("input", "a2"),
            ("lif1", "lif2"),
            ("a2", "lif2"),
            ("lif2", "output"),
        ],
    )
    graph = from_nir(g, dt=dt)
    assert isinstance(graph.nodes["lif2.sum"], Add)
    assert sorted(graph.predecessors("lif2.sum")) == ["a2", "lif1"]
    xs = (rng.random((200, 6)) < 0.3).astype(np.float32)
    v1, v2, expected = np.zeros(4), np.zeros(4), []
    for x in xs:
        v1 = 0.9 * v1 + w1 @ x
        s1 = v1 >= 1
        v1[s1] = 0
        v2 = 0.9 * v2 + s1 + w2 @ x
        s2 = v2 >= 1
        v2[s2] = 0
        expected.append(s2.astype(np.float32))
    expected = np.array(expected)
    assert 0.02 < expected.mean() < 0.6
    net = Network(graph)
    got, _ = net.run(xs[:, None], net.init_state(1))
    assert (got[:, 0] == expected).mean() >= MIN_AGREEMENT


def test_norse_leaky_integrator_readout(rng):
    """Norse's LIBoxCell readout (NIR LI) becomes an order-1 LMUMemory with the same output."""
    norse = _norse()
    torch.manual_seed(4)
    net = norse.SequentialState(
        torch.nn.Linear(40, 24),
        norse.LIFBoxCell(),
        torch.nn.Linear(24, 6),
        norse.LIBoxCell(),
    )
    with torch.no_grad():
        net[0].weight.mul_(25.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = norse.to_nir(net, torch.zeros(1, 40), dt=1e-3)
    graph = from_nir(exported, dt=1e-3, time_convention="norse-1.1")
    readout = graph.nodes["3"]
    assert isinstance(readout, LMUMemory)
    assert readout.order == 1
    assert float(readout.A_d[0, 0]) == pytest.approx(0.9)
    xs = (rng.random((T, 40)) < 0.2).astype(np.float32)
    theirs, state = [], None
    with torch.no_grad():
        for x in xs:
            out, state = net(torch.from_numpy(x[None]), state)
            theirs.append(out.numpy()[0].copy())
    theirs = np.array(theirs)
    network = Network(graph)
    ours, _ = network.run(xs[:, None], network.init_state(1))
    assert np.abs(theirs).max() > 0.1
    np.testing.assert_allclose(ours[:, 0], theirs, rtol=1e-4, atol=1e-5)


def test_order_one_memory_exports_as_plain_nir_li(rng):
    graph = Graph.chain(
        [
            ("in", Input((3,))),
            ("d", Dense(rng.normal(size=(3, 3)).astype(np.float32))),
            ("li", LMUMemory(order=1, theta=5.0, A_d=np.array([[0.8]]), B_d=np.array([0.5]))),
            ("out", Output((3,))),
        ]
    )
    exported = to_nir(graph, dt=1e-3, strict=True)
    li = exported.nodes["li"]
    assert isinstance(li, nir.LI)
    np.testing.assert_allclose(li.tau, 5e-3, rtol=1e-6)
    np.testing.assert_allclose(li.r, 2.5, rtol=1e-6)
    li.metadata = {}  # read as plain NIR, as any other tool wrote it
    back = from_nir(exported, dt=1e-3).nodes["li"]
    np.testing.assert_allclose(back.A_d, [[0.8]], rtol=1e-6)
    np.testing.assert_allclose(back.B_d, [0.5], rtol=1e-6)


def test_norse_integrate_and_fire_runs_with_the_same_spikes(rng):
    """Norse's IAFCell exports NIR IF (v += r I, reset to 0): eventsp LIF with decay 1."""
    norse = _norse()
    torch.manual_seed(5)
    net = norse.SequentialState(torch.nn.Linear(30, 12), norse.IAFCell())
    with torch.no_grad():
        net[0].weight.mul_(0.8)
        net[0].bias.fill_(-0.05)  # a negative drift keeps an integrator from saturating
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = norse.to_nir(net, torch.zeros(1, 30))
    graph = from_nir(exported)
    assert [n.decay for n in graph.nodes.values() if isinstance(n, LIF)] == [1.0]
    xs = (rng.random((T, 30)) < 0.3).astype(np.float32)
    theirs, state = [], None
    with torch.no_grad():
        for x in xs:
            out, state = net(torch.from_numpy(x[None]), state)
            theirs.append(out.numpy()[0].copy())
    rates = _agreement(_eventsp_spikes(graph, xs), [np.array(theirs)])
    assert min(rates) >= MIN_AGREEMENT, rates
