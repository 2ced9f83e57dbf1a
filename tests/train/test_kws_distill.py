"""Distillation for the keyword-spotting LMU: the loss, the teacher, its checkpoints, tiny runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.nn import functional

from eventsp.apps.kws import KeywordSpotter
from eventsp.train.lmu.kws_distill import (
    TeacherCNN,
    TeacherConfig,
    distill_loss,
    load_teachers,
    save_teacher,
    teacher_posteriors,
)


def test_distill_loss_mixes_cross_entropy_and_the_tempered_kl(rng):
    logits = torch.from_numpy(rng.normal(size=(4, 3, 5)))
    labels = torch.tensor([0, 4, 2, 2])
    soft = torch.softmax(torch.from_numpy(rng.normal(size=(4, 5))), dim=1)
    flat_labels = labels[:, None].expand(4, 3).reshape(-1)
    ce = functional.cross_entropy(logits.reshape(-1, 5), flat_labels, label_smoothing=0.1)
    torch.testing.assert_close(distill_loss(logits, labels, soft, 0.0, 3.0, 0.1), ce)
    # by hand: sum_c p log(p / q) per step, averaged over the 12 steps, times T^2
    q = torch.log_softmax(logits / 3.0, dim=2)
    kl = (soft[:, None] * (soft[:, None].log() - q)).sum(2).mean() * 9.0
    torch.testing.assert_close(distill_loss(logits, labels, soft, 1.0, 3.0), kl)
    mixed = distill_loss(logits, labels, soft, 0.25, 3.0, 0.1)
    torch.testing.assert_close(mixed, 0.75 * ce + 0.25 * kl)
    # a student that already gives the teacher's posteriors has no KL left
    same = torch.log(soft)[:, None].expand(4, 3, 5) * 3.0
    assert abs(float(distill_loss(same, labels, soft, 1.0, 3.0))) < 1e-12
    # one step per clip: (batch, classes) is the same as (batch, 1, classes)
    torch.testing.assert_close(
        distill_loss(logits[:, 0], labels, soft, 0.5, 2.0),
        distill_loss(logits[:, :1], labels, soft, 0.5, 2.0),
    )


def test_distill_loss_rejects_bad_weights_temperatures_and_shapes():
    logits, labels, soft = torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.ones(2, 3)
    with pytest.raises(ValueError, match=r"weight is 1\.5"):
        distill_loss(logits, labels, soft / 3, 1.5, 2.0)
    with pytest.raises(ValueError, match="temperature is 0"):
        distill_loss(logits, labels, soft / 3, 0.5, 0)
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        distill_loss(logits, labels, torch.ones(2, 4) / 4, 0.5, 2.0)


def test_teacher_standardises_its_raw_input_and_pools_any_length(rng):
    config = TeacherConfig(n_mels=6, channels=(4, 5), kernel=3, classes=3, dropout=0.0)
    mean, std = rng.normal(size=6), rng.uniform(0.5, 2.0, size=6)
    torch.manual_seed(0)
    teacher = TeacherCNN(config, mean, std).eval()
    torch.manual_seed(0)
    plain = TeacherCNN(config).eval()  # the same weights, mean 0 and std 1
    x = torch.from_numpy(rng.normal(size=(2, 17, 6)).astype(np.float32))
    z = ((x.double() - torch.from_numpy(mean)) / torch.from_numpy(std)).float()
    torch.testing.assert_close(teacher(x), plain(z), rtol=1e-5, atol=1e-5)
    assert teacher(x[:, :9]).shape == (2, 3)
    with pytest.raises(ValueError, match=r"\(2, 17, 5\); expected \(batch, frames, 6\)"):
        teacher(x[:, :, :5])
    with pytest.raises(ValueError, match="std"):
        TeacherCNN(config, mean, np.zeros(6))
    with pytest.raises(ValueError, match="channels is"):
        TeacherConfig(channels=())


def test_teacher_checkpoint_round_trip_and_ensemble_posteriors(rng, tmp_path):
    config = TeacherConfig(n_mels=5, channels=(4,), kernel=3, classes=4, dropout=0.5)
    torch.manual_seed(1)
    a = TeacherCNN(config, rng.normal(size=5), np.ones(5))
    torch.manual_seed(2)
    b = TeacherCNN(config, rng.normal(size=5), np.ones(5))
    save_teacher(tmp_path / "a.pt", a, 3, 0.5)
    save_teacher(tmp_path / "b.pt", b, 4, 0.6)
    loaded = load_teachers([tmp_path / "a.pt", tmp_path / "b.pt"])
    assert [t.training for t in loaded] == [False, False]
    x = rng.normal(size=(7, 11, 5)).astype(np.float32)
    with torch.no_grad():
        pa = torch.softmax(a.eval()(torch.from_numpy(x)) / 2.0, dim=1)
        pb = torch.softmax(b.eval()(torch.from_numpy(x)) / 2.0, dim=1)
    soft = teacher_posteriors(loaded, x, 2.0, chunk=3)
    torch.testing.assert_close(soft, (pa + pb) / 2)
    torch.testing.assert_close(soft.sum(1), torch.ones(7))
    # a higher temperature flattens the posteriors
    hot = teacher_posteriors(loaded, x, 20.0)
    assert float(hot.max(1).values.mean()) < float(soft.max(1).values.mean())
    with pytest.raises(ValueError, match="no teachers"):
        teacher_posteriors([], x, 2.0)
    torch.save({"version": 1, "state": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a keyword-spotting teacher"):
        load_teachers([tmp_path / "other.pt"])


@pytest.mark.slow
def test_tiny_teacher_and_distilled_student_runs(data_root, tmp_path):
    from eventsp.train.lmu.kws import main as student
    from eventsp.train.lmu.kws_teacher import main as teacher

    common = ["--data", str(data_root), "--limit", "36", "--threads", "1", "--no-progress"]
    assert teacher([*common, "--run-dir", str(tmp_path / "t"), "--epochs", "2"]) == 0
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert 0.0 <= summary["best_val_acc"] <= 1.0
    assert len(load_teachers([tmp_path / "t" / "best.pt"])) == 1
    net = ["--epochs", "2", "--memory-d", "2", "--order", "6", "--hidden", "8"]
    net += ["--frames", "4", "--stack", "2", "--anneal-until", "0.4", "--spec-augment"]
    runs = {}
    for name, extra in {
        "plain": [],
        "w0": ["--teacher", str(tmp_path / "t" / "best.pt"), "--distill-weight", "0"],
        "w1": ["--teacher", str(tmp_path / "t" / "best.pt"), "--distill-weight", "1"],
    }.items():
        assert student([*common, *net, *extra, "--run-dir", str(tmp_path / name)]) == 0
        runs[name] = torch.load(tmp_path / name / "last.pt", weights_only=True)["model"]
    # weight 0: the teacher's term adds exactly nothing, so training is the plain run's
    for key, value in runs["plain"].items():
        torch.testing.assert_close(runs["w0"][key], value, rtol=0, atol=0)
    # weight 1: the student learns from the teacher only, and it changes the weights
    moved = runs["w1"]["output.weight"] - runs["plain"]["output.weight"]
    assert float(moved.abs().max()) > 1e-4
    provenance = KeywordSpotter(tmp_path / "w1" / "kws_lmu.esp").metadata["provenance"]
    assert provenance["teachers"] == [str(tmp_path / "t" / "best.pt")]
    assert provenance["distill_weight"] == 1.0
