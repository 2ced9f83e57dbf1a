"""psMNIST data and the hybrid-LMU trainer end to end: logs, checkpoints, resume, export, DDP."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from eventsp.model.format import load_model
from eventsp.runtime import Network
from eventsp.train.data.psmnist import PSMNIST_STEPS, load_psmnist, permutation, to_sequence
from eventsp.train.lmu.train import main

from support import REPO_ROOT

TINY = ["--order", "16", "--hidden", "8", "--train-limit", "200", "--batch-size", "50"]
TINY += ["--val-limit", "40", "--test-limit", "40", "--no-progress", "--dt-end", "2.0"]


def test_psmnist_applies_one_fixed_permutation_to_every_split(data_root):
    raw = np.load(data_root / "mnist" / "mnist.npz")
    data = load_psmnist(data_root / "mnist" / "mnist.npz", seed=5)
    order = permutation(5)
    np.testing.assert_array_equal(data.permutation, order)
    assert not np.array_equal(order, permutation(6))
    assert sorted(order.tolist()) == list(range(PSMNIST_STEPS))
    np.testing.assert_array_equal(data.x_test[0], raw["x_test"][0].reshape(-1)[order])
    assert len(data.x_train) + len(data.x_val) == 60000
    assert len(data.x_val) == 5000
    assert len(data.x_test) == 10000
    # validation digits come out of the training set
    train_rows = {row.tobytes() for row in raw["x_train"].reshape(60000, -1)[:, order]}
    assert all(row.tobytes() in train_rows for row in data.x_val[:20])
    seq = to_sequence(data.x_test[:3])
    assert seq.shape == (3, PSMNIST_STEPS, 1)
    assert seq.dtype == np.float32
    assert seq.min() >= 0.0
    assert seq.max() == 1.0


def test_bad_permutation_seed_raises():
    with pytest.raises(ValueError, match="seed -1"):
        permutation(-1)


def test_training_run_logs_checkpoints_resumes_and_exports(data_root, tmp_path):
    run = tmp_path / "run"
    args = ["--data", str(data_root), "--run-dir", str(run), *TINY]
    assert main([*args, "--epochs", "2"]) == 0
    for name in ("last.pt", "best.pt", "metrics.csv", "curves.png", "psmnist_lmu.esp"):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0]["dt"] > rows[1]["dt"] == 2.0  # annealed to the spiking dt

    assert main([*args, "--epochs", "3", "--resume"]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]

    summary = json.loads((run / "summary.json").read_text())
    assert 0.0 <= summary["test_acc_spiking"] <= 1.0
    # neurons that never spike need 0 bits; none needs more than the largest count does
    assert 0.0 < summary["bits_per_activity"] <= int(summary["max_count"]).bit_length()
    assert 1.0 <= summary["significant_bits_per_multiply"] <= summary["bits_per_activity"] + 1
    model = load_model(run / "psmnist_lmu.esp")
    meta = model.metadata
    np.testing.assert_array_equal(meta["permutation"], permutation(0))
    assert meta["lmu"]["dt"] == 2.0
    assert meta["accuracy"]["test_spiking"] == summary["test_acc_spiking"]
    # The exported file classifies a digit in the runtime the way the trainer tested it.
    data = load_psmnist(data_root / "mnist" / "mnist.npz")
    xs = to_sequence(data.x_test[:40]).transpose(1, 0, 2)
    net = Network(model.graph)
    outs, _ = net.run(np.ascontiguousarray(xs), net.init_state(batch=40))
    acc = float((outs[-1].argmax(1) == data.y_test[:40]).mean())
    assert acc == pytest.approx(summary["test_acc_spiking"])


@pytest.mark.slow
def test_torchrun_two_processes(data_root, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "eventsp.train.lmu.train", "--data", str(data_root), "--run-dir", str(run)]
    cmd += [*TINY, "--epochs", "1", "--device", "cpu", "--threads", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1  # rank 0 alone writes
    assert (run / "psmnist_lmu.esp").is_file()
