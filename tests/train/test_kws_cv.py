"""Speaker-disjoint cross-validation of the keyword-spotting teacher: the folds on the real
file names, the summary's arithmetic, and a tiny run with its resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from eventsp.apps.kws import speaker_of, speaker_split
from eventsp.audio import LogMelConfig
from eventsp.train.lmu.kws_cv import assign_folds, fold_split, load_corpus, main, summarise
from eventsp.train.lmu.kws_data import KWS_LABELS, SAMPLE_RATE, features
from eventsp.train.lmu.kws_distill import load_teachers, teacher_posteriors


def _speakers(paths: list[Path]) -> np.ndarray:
    return np.asarray([speaker_of(p) for p in paths])


@pytest.mark.parametrize("folds", [3, 5, 7])
def test_real_folds_are_speaker_disjoint_and_test_every_clip_once(data_root, folds):
    speech = data_root / "speech"
    v2 = _speakers(sorted((speech / "speech_commands_v2_test_dev").glob("*/*.flac")))
    v1 = _speakers(sorted((speech / "speech_commands_v1_subset").glob("*/*.wav")))
    assert len(v2) == 2994
    assert len(v1) == 300
    ids, v1_ids = assign_folds(v2, folds), assign_folds(v1, folds)
    tested = []
    for fold in range(folds):
        split = fold_split(ids, fold, folds)
        parts = [set(v2[split[k]]) for k in ("train", "val", "test")]
        assert all(parts), f"fold {fold} has an empty part"
        train, val, test = parts
        assert not (train & val)
        assert not (train & test)
        assert not (val & test)
        assert sorted(np.concatenate(list(split.values()))) == list(range(len(v2)))
        # the next fold selects: the validation speakers of fold i are the test speakers of i+1
        assert val == set(v2[fold_split(ids, (fold + 1) % folds, folds)["test"]])
        # v0.01 clips train only when their speaker is in a training fold, wherever it is tested
        v1_train = set(v1[fold_split(v1_ids, fold, folds)["train"]])
        assert v1_train
        assert not (v1_train & (val | test))
        assert v1_train >= set(v1) & train
        tested.append(split["test"])
    every = np.concatenate(tested)
    assert len(every) == len(v2)
    assert len(np.unique(every)) == len(v2)


def test_folds_reject_too_few_and_a_fold_out_of_range():
    with pytest.raises(ValueError, match="folds is 2"):
        assign_folds(np.asarray(["a", "b"]), 2)
    with pytest.raises(ValueError, match="fold is 3"):
        fold_split(np.zeros(4, np.int64), 3, 3)
    with pytest.raises(ValueError, match="--only-folds is"):
        main(["--run-dir", "unused", "--folds", "3", "--only-folds", "0", "3"])


def test_summary_pools_clips_and_groups_by_class_and_speaker():
    # speakers s1 (3 clips, 2 right), s2 (1 clip, right), 2 silence clips (1 right)
    files = ["yes/s1_nohash_0", "no/s1_nohash_1", "no/s1_nohash_2", "go/s2_nohash_0", "7", "8"]
    yes, no, go, sil = (KWS_LABELS.index(k) for k in ("yes", "no", "go", "_silence_"))
    labels = np.asarray([yes, no, no, go, sil, sil])
    pred = np.asarray([yes, no, go, go, sil, no])
    folds = [{"test_acc": 0.5}, {"test_acc": 1.0}, {"test_acc": 0.75}]
    out = summarise(folds, labels, pred, [f + ".flac" for f in files], draws=500)
    assert out["pooled"]["acc"] == pytest.approx(4 / 6)
    assert out["pooled"]["clips"] == 6
    assert out["pooled"]["speakers"] == 4
    low, high = out["pooled"]["ci95"]
    assert 0.0 <= low < 4 / 6 < high <= 1.0
    assert out["folds"]["mean"] == pytest.approx(0.75)
    assert out["folds"]["std"] == pytest.approx(0.25)
    assert (out["folds"]["min"], out["folds"]["max"]) == (0.5, 1.0)
    assert out["per_class"]["no"] == {"acc": 0.5, "clips": 2}
    assert out["per_class"]["_silence_"] == {"acc": 0.5, "clips": 2}
    assert out["per_class"]["up"] == {"acc": None, "clips": 0}
    assert out["keywords"] == {"acc": 0.75, "clips": 4}
    assert out["non_keywords"] == {"acc": 0.5, "clips": 2}
    fixed = out["by_fixed_split"]
    assert sum(v["clips"] for v in fixed.values()) == 6
    assert sum(v["speakers"] for v in fixed.values()) == 4
    hardest = out["hardest_speakers"]
    assert [(h["speaker"], h["errors"], h["clips"]) for h in hardest] == [
        ("8", 1, 1),
        ("s1", 1, 3),
        ("7", 0, 1),
        ("s2", 0, 1),
    ]
    counts = np.asarray(out["confusion"]["counts"])
    assert counts.sum() == 6
    assert counts[no, go] == 1
    assert counts[sil, no] == 1
    assert np.trace(counts) == 4
    perfect = summarise(folds, labels, labels, [f + ".flac" for f in files], draws=50)
    assert perfect["pooled"]["ci95"] == [1.0, 1.0]
    with pytest.raises(ValueError, match="one of each per test clip"):
        summarise(folds, labels, pred[:3], files)


@pytest.mark.slow
def test_tiny_cross_validation_tests_every_clip_once_and_resumes(data_root, tmp_path):
    run = tmp_path / "cv"
    flags = ["--data", str(data_root), "--limit", "120", "--folds", "3", "--channels", "8"]
    flags += ["--threads", "1", "--no-progress", "--run-dir", str(run)]
    assert main([*flags, "--epochs", "2"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    per_fold = summary["folds"]["per_fold"]
    assert [f["fold"] for f in per_fold] == [0, 1, 2]
    assert summary["pooled"]["clips"] == sum(f["test"]["clips"] for f in per_fold)
    tested = []
    for f in per_fold:
        assert 1 <= f["best_epoch"] <= 2
        assert f["train"]["clips"] + f["val"]["clips"] + f["test"]["clips"] == 120
        with np.load(run / f"fold{f['fold']}" / "predictions.npz", allow_pickle=False) as z:
            assert z["posteriors"].shape == (f["test"]["clips"], len(KWS_LABELS))
            assert f["test_acc"] == pytest.approx(float((z["pred"] == z["labels"]).mean()))
            tested += list(z["files"])
    assert len(tested) == len(set(tested)) == 120
    # fold 1's posteriors are its chosen network's, on its own test speakers' clips
    v2, _ = load_corpus(data_root / "speech", limit=120)
    test = fold_split(assign_folds(v2.speakers, 3), 1, 3)["test"]
    logmel = features(v2.audio[test], LogMelConfig(sample_rate=SAMPLE_RATE))
    post = teacher_posteriors(load_teachers([run / "fold1" / "best.pt"]), logmel, 1.0)
    with np.load(run / "fold1" / "predictions.npz", allow_pickle=False) as z:
        assert list(z["files"]) == list(v2.files[test])
        np.testing.assert_allclose(z["posteriors"], post.numpy(), rtol=1e-5, atol=1e-6)
    # a second call reads the folds back; other flags are refused, not mixed in
    stamp = (run / "fold0" / "best.pt").stat().st_mtime_ns
    assert main([*flags, "--epochs", "2"]) == 0
    assert (run / "fold0" / "best.pt").stat().st_mtime_ns == stamp
    assert json.loads((run / "summary.json").read_text())["pooled"] == summary["pooled"]
    with pytest.raises(ValueError, match="pass a new --run-dir"):
        main([*flags, "--epochs", "1"])
    # a subset of folds is summarised alone (and --only-folds is not part of the recipe)
    assert main([*flags, "--epochs", "2", "--only-folds", "1"]) == 0
    only = json.loads((run / "summary.json").read_text())
    assert [f["fold"] for f in only["folds"]["per_fold"]] == [1]
    assert only["pooled"]["clips"] == per_fold[1]["test"]["clips"]
    assert only["pooled"]["acc"] == pytest.approx(per_fold[1]["test_acc"])


def test_summary_ranks_a_fixed_split_bucket_against_random_speaker_groups():
    # 4 speakers of the bundled "test" bucket, all wrong; 16 of "train", all right
    names = {"test": [], "train": []}
    for k in range(1000):
        name = f"{k:08x}"
        bucket = speaker_split(name)
        if bucket in names and len(names[bucket]) < (4 if bucket == "test" else 16):
            names[bucket].append(name)
    files = [
        f"yes/{n}_nohash_{i}.flac" for b in ("test", "train") for n in names[b] for i in (0, 1)
    ]
    labels = np.zeros(len(files), np.int64)
    pred = np.where([speaker_split(speaker_of(Path(f))) == "test" for f in files], 1, 0)
    out = summarise([{"test_acc": 0.8}], labels, pred, files, draws=500)
    fixed = out["by_fixed_split"]
    assert fixed["test"] == {
        "acc": 0.0,
        "clips": 8,
        "speakers": 4,
        "random_groups_at_or_below": pytest.approx(0.0, abs=0.01),
    }
    assert fixed["train"]["acc"] == 1.0
    assert fixed["train"]["random_groups_at_or_below"] == 1.0
    assert fixed["val"] == {"acc": None, "clips": 0, "speakers": 0}
    assert {h["speaker"] for h in out["hardest_speakers"][:4]} == set(names["test"])


def test_student_cross_validation_refuses_flags_that_have_no_fold(tmp_path):
    base = ["--run-dir", str(tmp_path / "cv"), "--folds", "3"]
    with pytest.raises(ValueError, match=r"--teacher does not apply.*use --teacher-cv"):
        main([*base, "--student", "--teacher", str(tmp_path / "t.pt")])
    for flag in ("--test", "--init", "--export"):
        extra = [] if flag == "--test" else [str(tmp_path / "x")]
        with pytest.raises(ValueError, match=f"{flag} does not apply to a cross-validation"):
            main([*base, "--student", flag, *extra])
    with pytest.raises(ValueError, match="--teacher-cv is for --student runs"):
        main([*base, "--teacher-cv", str(tmp_path)])
    # a teacher cross-validation of other folds would have heard this fold's test speakers
    (tmp_path / "t5").mkdir()
    recipe = {"folds": 5, "limit": 0, "no_v1_subset": False}
    (tmp_path / "t5" / "summary.json").write_text(json.dumps({"recipe": recipe}))
    with pytest.raises(ValueError, match="cross-validate the teacher with the same flags"):
        main([*base, "--student", "--teacher-cv", str(tmp_path / "t5")])
    missing = re.escape("no fold<i>/best.pt for folds [0, 1, 2, 3, 4]")
    with pytest.raises(ValueError, match=missing):  # the same folds, but never trained
        main(["--run-dir", str(tmp_path / "cv"), "--student", "--teacher-cv", str(tmp_path / "t5")])


@pytest.mark.slow
def test_tiny_student_cross_validation_distils_each_fold_from_its_own_teacher(data_root, tmp_path):
    common = ["--data", str(data_root), "--limit", "120", "--folds", "3", "--threads", "1"]
    common += ["--no-progress"]
    teachers = tmp_path / "teachers"
    assert main([*common, "--channels", "8", "--epochs", "1", "--run-dir", str(teachers)]) == 0
    student = ["--student", "--memory-d", "2", "--order", "6", "--hidden", "8", "--epochs", "2"]
    student += ["--anneal-until", "0.4", "--clip-decision", "smoothed", "--smooth-frames", "5"]
    run = tmp_path / "students"
    flags = [*common, *student, "--teacher-cv", str(teachers), "--run-dir", str(run)]
    assert main(flags) == 0
    summary = json.loads((run / "summary.json").read_text())
    per_fold = summary["folds"]["per_fold"]
    assert summary["recipe"]["teacher_cv"] == str(teachers)
    tested = []
    for f in per_fold:
        assert f["best_epoch"] in (1, 2)
        with np.load(run / f"fold{f['fold']}" / "predictions.npz", allow_pickle=False) as z:
            post = z["posteriors"]
            assert post.shape == (f["test"]["clips"], len(KWS_LABELS))
            np.testing.assert_allclose(post.sum(1), 1.0, rtol=1e-5)
            np.testing.assert_array_equal(post.argmax(1), z["pred"])
            assert f["test_acc"] == pytest.approx(float((z["pred"] == z["labels"]).mean()))
            tested += list(z["files"])
    assert len(tested) == len(set(tested)) == 120
    # the teacher's targets reach the student: without them fold 0 trains other weights
    alone = tmp_path / "alone"
    flags = [*common, *student, "--only-folds", "0", "--run-dir", str(alone)]
    assert main(flags) == 0
    with_teacher = torch.load(run / "fold0" / "best.pt", weights_only=True)["model"]
    without = torch.load(alone / "fold0" / "best.pt", weights_only=True)["model"]
    assert any(not torch.equal(with_teacher[k], without[k]) for k in with_teacher)


def test_a_fold_trained_before_a_flag_existed_resumes_only_at_that_flags_default():
    from eventsp.train.lmu.kws_cv import _recipe, parse_cv_args, same_recipe

    args = parse_cv_args(["--run-dir", "cv", "--student", "--hidden", "32"])
    stored = {k: v for k, v in _recipe(args).items() if k != "memory2_d"}  # an older trainer's
    assert same_recipe(stored, args)
    wider = parse_cv_args(["--run-dir", "cv", "--student", "--hidden", "33"])
    assert not same_recipe(stored, wider)
    stacked = parse_cv_args(["--run-dir", "cv", "--student", "--hidden", "32", "--hidden2", "8",
                             "--memory2-d", "4"])  # fmt: skip
    assert not same_recipe({**stored, "hidden2": 8}, stacked)  # the new flag is not at its default
    assert not same_recipe({**stored, "gone": 1}, args)  # a flag the trainer no longer has
