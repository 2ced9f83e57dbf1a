"""Graph nodes: round trip of every node type through JSON, validation, shape inference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eventsp.model import graph as g


def _examples(rng: np.random.Generator) -> dict[str, g.Node]:
    w8 = rng.integers(-128, 128, size=(5, 3)).astype(np.int8)
    return {
        "Input": g.Input((2, 6, 6), quant_bits=8, quant_scale=0.05),
        "Output": g.Output((4,)),
        "Dense": g.Dense(rng.normal(size=(4, 3)), rng.normal(size=4)),
        "Conv2d": g.Conv2d(rng.normal(size=(4, 1, 3, 3)), None, stride=2, padding=(1, 0), groups=2),
        "CausalConv1d": g.CausalConv1d(rng.normal(size=(3, 2, 4)), np.zeros(3), dilation=2),
        "AvgPool2d": g.AvgPool2d(2),
        "SumPool2d": g.SumPool2d((2, 3), stride=(1, 2)),
        "Flatten": g.Flatten(),
        "Add": g.Add(),
        "IF": g.IF(threshold=0.7),
        "LIF": g.LIF(decay=0.8, threshold=1.5),
        "MultiSpike": g.MultiSpike(dt=0.25),
        "ReLU": g.ReLU(),
        "Identity": g.Identity(),
        "LMUMemory": g.LMUMemory(3, 10.0, rng.normal(size=(3, 3)), rng.normal(size=3)),
        "Readout": g.Readout("mean"),
        "QuantDense": g.Dense(w8, None, weight_bits=8, weight_scale=0.01),
        "ShiftedConv": g.Conv2d(
            w8[:4].reshape(3, 1, 2, 2), None, weight_bits=8, weight_scale=0.01, acc_shift=5
        ),
    }


def _same(a: g.Node, b: g.Node) -> None:
    assert type(a) is type(b)
    spec_a, arrays_a = a.to_dict()
    spec_b, arrays_b = b.to_dict()
    assert spec_a == spec_b
    assert arrays_a.keys() == arrays_b.keys()
    for key in arrays_a:
        assert arrays_a[key].dtype == arrays_b[key].dtype
        np.testing.assert_array_equal(arrays_a[key], arrays_b[key])


def test_every_registered_type_has_an_example(rng):
    covered = {type(n).__name__ for n in _examples(rng).values()}
    assert covered == set(g.NODE_TYPES)


@pytest.mark.parametrize("kind", sorted(_examples(np.random.default_rng(0))))
def test_node_round_trip_through_json(kind, rng):
    node = _examples(rng)[kind]
    spec, arrays = node.to_dict()
    assert spec["type"] == type(node).__name__
    spec = json.loads(json.dumps(spec))  # the spec must be JSON-able
    copies = {k: np.array(v) for k, v in arrays.items()}
    back = g.node_from_dict(spec, copies)
    _same(node, back)


def _mlp(rng):
    return g.Graph.chain(
        [
            ("in", g.Input((6,))),
            ("fc1", g.Dense(rng.normal(size=(5, 6)), rng.normal(size=5))),
            ("lif1", g.LIF(0.9, 1.0)),
            ("fc2", g.Dense(rng.normal(size=(2, 5)))),
            ("out_r", g.Readout("sum")),
            ("out", g.Output((2,))),
        ]
    )


def test_graph_round_trip_and_shapes(rng):
    graph = g.Graph(
        {
            "x": g.Input((2, 8, 8)),
            "c1": g.Conv2d(rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4), padding=1),
            "n1": g.IF(1.0),
            "c2": g.Conv2d(rng.normal(size=(4, 2, 3, 3)), None, padding=1, groups=2),
            "n2": g.IF(1.0),
            "sum": g.Add(),
            "pool": g.SumPool2d(2),
            "flat": g.Flatten(),
            "fc": g.Dense(rng.normal(size=(3, 64))),
            "y": g.Output((3,)),
        },
        [
            ("x", "c1"),
            ("c1", "n1"),
            ("n1", "c2"),
            ("c2", "n2"),
            ("n2", "sum"),
            ("n1", "sum"),
            ("sum", "pool"),
            ("pool", "flat"),
            ("flat", "fc"),
            ("fc", "y"),
        ],
    )
    shapes = graph.shapes()
    assert shapes["c1"] == (4, 8, 8)
    assert shapes["pool"] == (4, 4, 4)
    assert shapes["flat"] == (64,)
    assert graph.predecessors("sum") == ["n2", "n1"]
    order = graph.order()
    assert order.index("n1") < order.index("sum")
    assert order.index("n2") < order.index("sum")
    spec, arrays = graph.to_dict()
    back = g.Graph.from_dict(json.loads(json.dumps(spec)), arrays)
    assert back.edges == graph.edges
    assert back.order() == order
    for name in graph.nodes:
        _same(graph.nodes[name], back.nodes[name])


def test_shapes_of_strided_conv_pool_lmu_and_causal(rng):
    cases = [
        (g.Conv2d(np.zeros((3, 2, 3, 3)), stride=2, padding=1), (2, 34, 34), (3, 17, 17)),
        (g.Conv2d(np.zeros((3, 2, 3, 5))), (2, 10, 10), (3, 8, 6)),
        (g.AvgPool2d(2), (3, 5, 5), (3, 2, 2)),
        (g.SumPool2d(3, stride=1), (1, 5, 4), (1, 3, 2)),
        (g.LMUMemory(4, 5.0, np.eye(4), np.ones(4)), (3,), (12,)),
        (g.CausalConv1d(np.zeros((7, 3, 2))), (3,), (7,)),
        (g.Flatten(), (2, 3, 4), (24,)),
    ]
    for node, shape_in, shape_out in cases:
        assert node.out_shape([shape_in]) == shape_out, node


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: g.Dense(np.zeros((2, 3)), np.zeros(3)), "bias has shape"),
        (lambda: g.Dense(np.zeros(3)), "expected 2 non-empty axes"),
        (lambda: g.Dense(np.array([[np.nan]])), "NaN"),
        (lambda: g.Dense(np.zeros((2, 2), np.int8)), "weight_bits is unset"),
        (lambda: g.Dense(np.zeros((2, 2)), weight_bits=4, weight_scale=0.1), "int8 or int16"),
        (
            lambda: g.Dense(np.full((2, 2), 9, np.int8), weight_bits=4, weight_scale=0.1),
            "outside the 4-bit range",
        ),
        (lambda: g.Dense(np.zeros((2, 2), np.int8), weight_bits=4), "set both or neither"),
        (lambda: g.Dense(np.zeros((2, 2), np.int8), weight_bits=9, weight_scale=1.0), "2..8"),
        (
            lambda: g.Dense(
                np.zeros((2, 2), np.int8), weight_bits=4, weight_scale=0.1, acc_shift=17
            ),
            r"acc_shift is 17; expected an int in 0\.\.16",
        ),
        (
            lambda: g.Conv2d(
                np.zeros((2, 1, 3, 3), np.int8), None, weight_bits=4, weight_scale=1.0, acc_shift=-1
            ),
            "acc_shift is -1",
        ),
        (
            lambda: g.CausalConv1d(
                np.zeros((2, 2, 3), np.int8), weight_bits=4, weight_scale=1.0, acc_shift=1.5
            ),
            "acc_shift is 1.5",
        ),
        (
            lambda: g.Dense(
                np.zeros((2, 2), np.int8), weight_bits=4, weight_scale=0.1, acc_shift=True
            ),
            "acc_shift is True",
        ),
        (lambda: g.Dense(np.zeros((2, 2)), acc_shift=2), "needs quantised weights"),
        (lambda: g.Conv2d(np.zeros((3, 1, 3, 3)), groups=2), "groups"),
        (lambda: g.Conv2d(np.zeros((2, 1, 3, 3)), stride=0), "stride"),
        (lambda: g.LIF(decay=1.5), "decay"),
        (lambda: g.IF(threshold=0.0), "threshold"),
        (lambda: g.MultiSpike(dt=-1.0), "dt"),
        (lambda: g.Readout("max"), "mode"),
        (lambda: g.LMUMemory(3, 1.0, np.eye(2), np.ones(3)), "A_d"),
        (lambda: g.Input((0, 3)), "positive ints"),
        (lambda: g.node_from_dict({"type": "Bogus"}, {}), "unknown node type"),
        (lambda: g.node_from_dict({"type": "Dense", "weight": "w"}, {}), "missing"),
        (lambda: g.node_from_dict({"type": "ReLU", "alpha": 1}, {}), "unknown fields"),
    ],
)
def test_invalid_nodes_raise_with_a_clear_message(make, message):
    with pytest.raises(g.GraphError, match=message):
        make()


def test_invalid_graphs_raise(rng):
    inp, out = g.Input((3,)), g.Output((2,))
    dense = g.Dense(np.zeros((2, 3)))
    with pytest.raises(g.GraphError, match="exactly one Input"):
        g.Graph({"d": dense, "o": out}, [("d", "o")])
    with pytest.raises(g.GraphError, match="not a node"):
        g.Graph({"i": inp, "d": dense, "o": out}, [("i", "d"), ("d", "x")])
    with pytest.raises(g.GraphError, match="cycle"):
        g.Graph(
            {"i": inp, "a": g.Add(), "r": g.ReLU(), "d": dense, "o": out},
            [("i", "a"), ("a", "r"), ("r", "a"), ("r", "d"), ("d", "o")],
        )
    with pytest.raises(g.GraphError, match="feeds nothing"):
        g.Graph(
            {"i": inp, "r": g.ReLU(), "d": dense, "o": out}, [("i", "d"), ("i", "r"), ("d", "o")]
        )
    with pytest.raises(g.GraphError, match=r"node 'd'.*Dense expects input shape \(3,\)"):
        g.Graph.chain([("i", g.Input((4,))), ("d", dense), ("o", out)])
    with pytest.raises(g.GraphError, match=r"Output\.shape"):
        g.Graph.chain([("i", inp), ("d", dense), ("o", g.Output((3,)))])
    with pytest.raises(g.GraphError, match="Add needs two or more"):
        g.Graph.chain([("i", inp), ("a", g.Add()), ("d", dense), ("o", out)])
    with pytest.raises(g.GraphError, match="expected exactly 'nodes' and 'edges'"):
        g.Graph.from_dict({"nodes": {}}, {})
    assert _mlp(rng).shapes()["out"] == (2,)


def test_arrays_are_copied_and_read_only(rng):
    w = rng.normal(size=(2, 3))
    node = g.Dense(w)
    w[0, 0] = 99.0
    assert node.weight[0, 0] != 99.0
    assert node.weight.dtype == np.float32
    with pytest.raises(ValueError, match="read-only"):
        node.weight[0, 0] = 1.0


def test_real_weight_of_quantised_node():
    node = g.Dense(np.array([[-3, 2]], np.int8), weight_bits=3, weight_scale=0.5)
    assert node.quantized
    np.testing.assert_array_equal(node.real_weight(), np.array([[-1.5, 1.0]], np.float32))


def test_acc_shift_default_is_left_out_of_the_spec():
    w = np.array([[1, -2]], np.int8)
    plain = g.Dense(w, None, weight_bits=4, weight_scale=0.5)
    assert plain.acc_shift == 0
    assert "acc_shift" not in plain.to_dict()[0]  # files written before the field: unchanged
    shifted = g.Dense(w, None, weight_bits=4, weight_scale=0.5, acc_shift=np.int64(4))
    spec = shifted.to_dict()[0]
    assert spec["acc_shift"] == 4
    assert type(spec["acc_shift"]) is int
    assert g.node_from_dict(spec, {"weight": w}).acc_shift == 4
    del spec["acc_shift"]
    assert g.node_from_dict(spec, {"weight": w}).acc_shift == 0
