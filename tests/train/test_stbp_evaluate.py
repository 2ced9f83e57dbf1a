"""Held-out evaluation on the runtime and the bundling of its figures into a model file."""

from __future__ import annotations

import numpy as np
import pytest

from eventsp.apps.classify_events import DEFAULT_MODEL
from eventsp.model.format import load_model
from eventsp.train.stbp.evaluate import bundle, evaluate_heldout, main


def test_evaluate_on_the_validation_split_counts_every_recording(data_root):
    result = evaluate_heldout(DEFAULT_MODEL, data_root, split="val")
    assert result["split"] == "val"
    assert result["recordings"] == 100
    assert 0.5 < result["accuracy"] <= 1.0
    assert result["time_steps"] <= 10
    assert result["effective_synops_per_recording"] > 0


def test_bundle_writes_the_test_figures_and_keeps_the_weights(tmp_path):
    result = {
        "split": "test",
        "accuracy": 0.875,
        "recordings": 8,
        "effective_synops_per_recording": 1234.5678,
    }
    dst = tmp_path / "bundled.esp"
    meta = bundle(DEFAULT_MODEL, dst, result)
    out = load_model(dst)
    assert out.metadata == meta
    assert meta["accuracy"]["test_heldout_runtime"] == 0.875
    assert meta["accuracy"]["n_test"] == 8
    assert meta["effective_synops_per_recording"] == 1234.57
    src = load_model(DEFAULT_MODEL)
    assert out.metadata["training"] == src.metadata["training"]
    spec, arrays = src.graph.to_dict()
    out_spec, out_arrays = out.graph.to_dict()
    assert out_spec == spec
    assert arrays.keys() == out_arrays.keys()
    for key, value in arrays.items():
        np.testing.assert_array_equal(out_arrays[key], value)
    with pytest.raises(ValueError, match="'val'"):
        bundle(DEFAULT_MODEL, dst, {**result, "split": "val"})


def test_bundle_refuses_other_splits_on_the_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(DEFAULT_MODEL), "--split", "val", "--bundle", str(tmp_path / "x.esp")])
    assert "--bundle" in capsys.readouterr().err
    assert not (tmp_path / "x.esp").exists()
