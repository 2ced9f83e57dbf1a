"""The STBP training run: checkpoints, resume, curves, export; DDP with two CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eventsp.model.format import load_model  # noqa: E402
from eventsp.runtime import Network  # noqa: E402
from eventsp.train.stbp.train import main  # noqa: E402
from eventsp.train.stbp.validate import main as validate_main  # noqa: E402

from support import REPO_ROOT  # noqa: E402


def _args(data_root, run, *extra: str) -> list[str]:
    return [
        "--arch", "tiny", "--data", str(data_root), "--out", str(run), "--limit", "24",
        "--batch-size", "8", "--max-batches", "2", "--no-progress", "--sim", "8", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_train_resume_and_export(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_args(data_root, run, "--epochs", "1")) == 0
    assert {"last.pt", "best.pt", "metrics.csv", "curves.png", "model.esp"} <= {
        p.name for p in run.iterdir()
    }
    assert (run / "cache" / "sim8_T10_w30000.npz").is_file()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0]
    assert rows[0]["samples"] == 16  # 2 batches of 8
    # Without --test the held-out split is never measured, so no test figure can sway a choice.
    assert "test_heldout_trainer" not in load_model(run / "model.esp").metadata["accuracy"]
    assert "test_acc" not in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # Resume: continues at epoch 1 from last.pt and keeps the earlier rows.
    assert main(_args(data_root, run, "--epochs", "2", "--resume", "--test")) == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    model = load_model(run / "model.esp")
    meta = model.metadata
    assert meta["task"] == "classify-events"
    assert meta["time_steps"] == 10
    assert meta["frontend"]["window_us"] == 30_000
    assert meta["sensor_size"] == [34, 34, 2]
    assert 0.0 <= meta["accuracy"]["test_heldout_trainer"] <= 1.0
    out, _ = Network(model.graph).run(
        torch.zeros(10, 1, 2, 34, 34).numpy(), None or Network(model.graph).init_state(1)
    )
    assert out.shape == (10, 1, 10)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == str(run / "model.esp")
    # Selection score: mean of the real-split and simulated MNIST-test accuracies.
    for r in rows:
        assert r["val_acc"] == pytest.approx((r["val_real_acc"] + r["val_sim_acc"]) / 2)
    assert (run / "cache" / "valsim24_T10_w30000.npz").is_file()  # --limit caps --val-sim
    assert meta["accuracy"]["n_val_real"] == 24
    assert meta["accuracy"]["n_val_sim"] == 24
    # Ranking checkpoints on validation only gives the logged figures of the same weights.
    cache = tmp_path / "val"
    args = ["--arch", "tiny", "--data", str(data_root), "--val-sim", "24", "--cache", str(cache)]
    assert validate_main([str(run / "last.pt"), str(run / "best.pt"), *args]) == 0
    ranked = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [r["val_acc"] for r in ranked] == sorted((r["val_acc"] for r in ranked), reverse=True)
    last = next(r for r in ranked if r["checkpoint"].endswith("last.pt"))
    assert last["val_sim_acc"] == pytest.approx(rows[-1]["val_sim_acc"])
    with pytest.raises(SystemExit):
        validate_main([str(run / "missing.pt"), *args])


@pytest.mark.slow
def test_torchrun_two_cpu_processes(data_root, tmp_path):
    run = tmp_path / "ddp"
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "eventsp.train.stbp", *_args(data_root, run, "--epochs", "1"),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    # Two ranks x 2 batches x 8 recordings, summed over ranks by all_reduce.
    assert [(r["epoch"], r["samples"]) for r in rows] == [(0, 32)]
    assert (run / "model.esp").is_file()
    assert (run / "curves.png").is_file()
    assert "best_epoch" in out.stdout


def test_tonic_nmnist_frames_leave_out_the_small_set_digits(data_root):
    """Full N-MNIST through tonic: files 00001..01000 (the small set's digits) are skipped."""
    from eventsp.apps.classify_events import recording_frames
    from eventsp.events import read_events
    from eventsp.train.stbp.train import _TonicFrames, parse_args

    real = data_root / "nmnist_small" / "train" / "00007.bin"
    events = read_events(real)[0].events

    class FakeNMNIST:  # tonic's NMNIST interface: .data paths, .sensor_size, (events, target)
        sensor_size = (34, 34, 2)
        data = ("Train/5/00001.bin", "Train/3/01000.bin", "Train/7/01001.bin", "Train/2/59999.bin")

        def __len__(self) -> int:
            return len(self.data)

        def __getitem__(self, i: int):
            return events.astype([("x", int), ("y", int), ("t", int), ("p", int)]), i

    args = parse_args(["--tonic", "nmnist", "--tonic-root", "/nowhere"])
    frames = _TonicFrames(FakeNMNIST(), args)
    assert len(frames) == 2
    (x0, y0), (_, y1) = frames[0], frames[1]
    assert (y0, y1) == (2, 3)
    np.testing.assert_array_equal(x0.numpy(), recording_frames(events, (34, 34, 2), 30_000, 10))
