"""``eventsp classify-images`` on the runtime, and ``eventsp train-ptl`` under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from eventsp.cli import main
from eventsp.cli.classify_images import default_model_path
from eventsp.model.format import load_model

from support import REPO_ROOT


def _last(out: str) -> dict[str, str]:
    last = out.strip().splitlines()[-1]
    fields = dict(part.split("=") for part in last.split())
    assert list(fields) == ["accuracy", "T", "synops_per_image"], last
    return fields


def test_bundled_mnist_model_classifies_real_test_digits(data_root, capsys):
    meta = load_model(default_model_path()).metadata
    assert meta["task"] == "classify-images"
    assert meta["T"] <= 8
    npz = data_root / "mnist" / "mnist.npz"
    assert main(["classify-images", "--npz", str(npz), "--limit", "500"]) == 0
    fields = _last(capsys.readouterr().out)
    assert float(fields["accuracy"]) >= 0.98
    assert int(fields["T"]) == meta["T"]
    assert 0 < float(fields["synops_per_image"]) < 1e8


@pytest.mark.slow
def test_hardware_constrained_model_keeps_its_constraints_and_accuracy(data_root, capsys):
    """``models/hardware/mnist_4bit_fanin64.esp`` (issue 5's hardware goal, session 5's chosen
    run): every synaptic layer has 4-bit integer weights and at most 64 nonzero incoming
    weights per neuron, and on the runtime it classifies the 10,000 MNIST test digits at
    >= 99.0%, the goal (it measured 99.00%: no margin, so any change to the runtime's
    fixed-point arithmetic that costs one digit in ten thousand fails here)."""
    path = REPO_ROOT / "eventsp" / "models" / "hardware" / "mnist_4bit_fanin64.esp"
    graph = load_model(path).graph
    synaptic = [n for n in graph.nodes.values() if n.type in ("Conv2d", "Dense")]
    assert len(synaptic) == 5
    for node in synaptic:
        assert node.weight_bits == 4
        assert np.abs(node.weight).max() <= 7
        fan_in = np.count_nonzero(node.weight.reshape(node.weight.shape[0], -1), axis=1)
        assert fan_in.max() <= 64, (node.type, fan_in.max())
    npz = data_root / "mnist" / "mnist.npz"
    assert main(["classify-images", "--npz", str(npz), "--model", str(path)]) == 0
    fields = _last(capsys.readouterr().out)
    assert float(fields["accuracy"]) >= 0.99
    assert int(fields["T"]) == 16


def test_json_prints_one_line_per_image(data_root, capsys):
    npz = data_root / "mnist" / "mnist.npz"
    assert main(["classify-images", "--npz", str(npz), "--limit", "20", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 21
    rows = [json.loads(line) for line in lines[:-1]]
    assert [r["index"] for r in rows] == list(range(20))
    with np.load(npz) as f:
        truth = f["y_test"][:20]
    assert [r["true"] for r in rows] == truth.tolist()
    correct = sum(r["class"] == r["true"] for r in rows)
    assert float(_last(lines[-1])["accuracy"]) == pytest.approx(correct / 20, abs=1e-4)
    assert all(r["class"] == int(np.argmax(r["scores"])) for r in rows)
    assert all(r["label"] == str(r["class"]) for r in rows)


def test_images_without_labels_and_other_splits(data_root, tmp_path, capsys):
    with np.load(data_root / "mnist" / "mnist.npz") as f:
        x = f["x_test"][:5]
    np.savez(tmp_path / "digits.npz", x=x)
    assert main(["classify-images", "--npz", str(tmp_path / "digits.npz")]) == 0
    assert _last(capsys.readouterr().out)["accuracy"] == "n/a"
    np.savez(tmp_path / "train.npz", x_train=x, y_train=np.arange(5))
    assert main(["classify-images", "--npz", str(tmp_path / "train.npz"), "--split", "val"]) == 2
    assert "no images for split 'val'" in capsys.readouterr().err


def test_user_mistakes_are_usage_errors(data_root, tmp_path, capsys):
    cifar = data_root / "cifar10_subset" / "cifar10_subset_train2000_test1000.npz"
    assert main(["classify-images", "--npz", str(cifar), "--limit", "3"]) == 2
    assert "(3, 32, 32)" in capsys.readouterr().err
    missing = tmp_path / "none.esp"
    npz = data_root / "mnist" / "mnist.npz"
    assert main(["classify-images", "--npz", str(npz), "--model", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.esp"
    bad.write_bytes(b"not a model")
    assert main(["classify-images", "--npz", str(npz), "--model", str(bad)]) == 2
    assert "cannot load" in capsys.readouterr().err


@pytest.mark.slow
def test_train_ptl_under_torchrun_exports_a_model_the_runtime_matches(data_root, tmp_path):
    """Two CPU processes (DDP, gloo) train a tiny PTL network; the runtime reproduces it."""
    pytest.importorskip("torch")
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "eventsp", "train-ptl", "--data", str(data_root), "--arch", "tiny", "--T", "4",
        "--bits", "8", "--ann-epochs", "1", "--stage-epochs", "1", "--limit-train", "400",
        "--limit-val", "100", "--limit-test", "300", "--batch-size", "50", "--out", str(out),
        "--device", "cpu", "--no-progress", "--test",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, env=env,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert (out / "curves.png").is_file()
    assert (out / "metrics.csv").read_text().count("final") >= 1
    # The runtime's accuracy on the same 300 test digits equals the trainer's simulation.
    with np.load(data_root / "mnist" / "mnist.npz") as f:
        np.savez(tmp_path / "test300.npz", x_test=f["x_test"][:300], y_test=f["y_test"][:300])
    cli = subprocess.run(
        [sys.executable, "-m", "eventsp", "classify-images", "--npz", str(tmp_path / "test300.npz"),
         "--model", str(out / "model.esp")],
        capture_output=True, text=True, check=True, cwd=REPO_ROOT,
    )  # fmt: skip
    fields = _last(cli.stdout)
    assert float(fields["accuracy"]) == pytest.approx(results["snn"]["accuracy"], abs=1e-4)
    assert results["snn"]["accuracy"] > 0.3
    assert fields["T"] == "4"
    assert results["split"] == "test"
    assert load_model(out / "model.esp").metadata["accuracy"]["test_images"] == 300

    # Without --test the run is measured on validation only: the test split stays unseen.
    again = [*cmd[cmd.index("-m", 5) :], "--skip-train", "--export", str(tmp_path / "val.esp")]
    again.remove("--test")
    done = subprocess.run([sys.executable, *again], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SNN validation accuracy" in done.stdout
    assert " test " not in done.stdout
    assert json.loads((out / "results.json").read_text())["split"] == "val"
    accuracy = load_model(tmp_path / "val.esp").metadata["accuracy"]
    assert set(accuracy) == {"val", "val_images"}
    assert accuracy["val_images"] == 100
