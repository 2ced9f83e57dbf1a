"""Speaker-disjoint K-fold cross-validation of the keyword-spotting teacher, or of the
hybrid-spiking LMU student (``python -m eventsp.train.lmu.kws_cv``).

    python -m eventsp.train.lmu.kws_cv --folds 5 --run-dir runs/kws5-cv --epochs 40 \
        --synth-dir runs/kws-synth --synth-per-epoch 1500 --threads 1
    python -m eventsp.train.lmu.kws_cv --student --teacher-cv runs/kws5-cv --folds 5 \
        --run-dir runs/kws6-cv-d8 <the student's flags of python -m eventsp.train.lmu.kws>

``--student`` trains, per fold, what ``python -m eventsp.train.lmu.kws`` trains (every one of
its flags but ``--teacher``, ``--init``, ``--test`` and ``--export``), distilled from the
teacher cross-validation's network of the same fold (``--teacher-cv``), whose training clips
are the same; each test clip's answer is the one ``--clip-decision`` names.

A diagnostic, not a trainer of anything that ships: how well does a network without a
synaptic-operation budget (:class:`~eventsp.train.lmu.kws_distill.TeacherCNN`, trained as
``kws_teacher`` trains it, with every one of its flags) classify speakers it never saw, and
how well does the student that ships (``--student``)? One split of about 30 test speakers
cannot say; K folds test every speaker once.

- **Folds:** every speaker of ``speech_commands_v2_test_dev`` goes to fold
  ``crc32(speaker) % K`` (each ``_silence_`` clip is its own "speaker", as in
  :func:`~eventsp.apps.kws.speaker_split`). For fold ``i``: test = fold ``i``; validation
  (the epoch choice only) = fold ``(i + 1) % K``; training = the other folds, plus the v0.01
  clips of training-fold speakers and the espeak-ng clips (``--synth-dir``), augmented as in
  ``kws_teacher``. No clip of a test or validation speaker reaches training, whichever set it
  comes from; v0.01 clips are never tested.
- **Writes** ``RUN/fold<i>/`` (the fold's network, ``best.pt``, metrics and curves, ``result.json``,
  ``predictions.npz`` with every test clip's file, label, prediction and posteriors) and
  ``RUN/summary.json`` (:func:`summarise`): per fold the clip and speaker counts, the chosen
  epoch and the test accuracy; the accuracy pooled over all test clips with a 95% interval
  from resampling speakers; the mean and spread over folds; accuracy per class, and per
  bucket of the bundled model's fixed split (is its "test" split harder than the others?).
- A fold whose ``result.json`` exists is read, not trained again (resume after a stop).

It never reads or writes the bundled model; the bundled split (``speaker_split``) is used only
to group the pooled results.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eventsp.apps.kws import speaker_of, speaker_split
from eventsp.train import loop
from eventsp.train.lmu.kws import build_parser as student_parser
from eventsp.train.lmu.kws import clip_posteriors, normalise, train_student
from eventsp.train.lmu.kws_data import (
    KWS_LABELS,
    SAMPLE_RATE,
    SpeechSet,
    TrainingData,
    features,
    load_speech_commands,
    load_v1_subset,
    training_data,
)
from eventsp.train.lmu.kws_distill import load_teachers, teacher_posteriors
from eventsp.train.lmu.kws_synth import load_synth
from eventsp.train.lmu.kws_teacher import build_parser as teacher_parser
from eventsp.train.lmu.kws_teacher import parse_args, train_teacher

__all__ = ["Corpus", "assign_folds", "fold_of", "fold_split", "load_corpus", "main", "summarise"]

SILENCE = KWS_LABELS.index("_silence_")
SPLITS = ("train", "val", "test")


def fold_of(speaker: str, folds: int) -> int:
    """The fold of ``speaker``: ``crc32(speaker) % folds``, stable across runs and machines."""
    return zlib.crc32(speaker.encode()) % folds


@dataclass(frozen=True)
class Corpus:
    """Clips with their speakers: ``audio (N, 16000) float32``, ``labels (N,) int64``,
    ``files`` and ``speakers`` (``speaker_of`` each file), both ``(N,)`` str arrays."""

    audio: np.ndarray
    labels: np.ndarray
    files: np.ndarray
    speakers: np.ndarray

    def take(self, idx: np.ndarray) -> Corpus:
        return Corpus(self.audio[idx], self.labels[idx], self.files[idx], self.speakers[idx])

    def speech_set(self, idx: np.ndarray) -> SpeechSet:
        return SpeechSet(self.audio[idx], self.labels[idx], tuple(self.files[idx]))


def _corpus(audio: np.ndarray, labels: np.ndarray, files: Sequence[str]) -> Corpus:
    """``audio (N, 16000)`` as it is (no copy), with the speaker of each file."""
    speakers = [speaker_of(Path(f)) for f in files]
    return Corpus(
        audio, np.asarray(labels, np.int64), np.asarray(files, str), np.asarray(speakers, str)
    )


def load_corpus(speech: Path, skip_v1: bool = False, limit: int = 0) -> tuple[Corpus, Corpus]:
    """``(v2, v1)``: every 12-class clip of ``speech/speech_commands_v2_test_dev`` and every
    clip of ``speech/speech_commands_v1_subset`` (its 20 other words are ``_unknown_``; empty
    with ``skip_v1`` or when missing). ``limit``: keep about that many v2 clips, spread over
    the classes (tests)."""
    sets = load_speech_commands(speech / "speech_commands_v2_test_dev")
    v2 = _corpus(
        np.concatenate([sets[k].audio for k in SPLITS]),
        np.concatenate([sets[k].labels for k in SPLITS]),
        [f for k in SPLITS for f in sets[k].files],
    )
    if limit:
        v2 = v2.take(np.argsort(v2.files, kind="stable")[:: max(1, len(v2.files) // limit)][:limit])
    v1 = _corpus(
        *load_v1_subset(
            speech / "speech_commands_v1_subset", KWS_LABELS, SAMPLE_RATE, skip_v1, lambda _: True
        )
    )
    return v2, v1


def assign_folds(speakers: np.ndarray, folds: int) -> np.ndarray:
    """``(N,) int64``: the fold of every clip's speaker (:func:`fold_of`)."""
    if not isinstance(folds, int) or folds < 3:
        raise ValueError(
            f"folds is {folds!r}; expected an int >= 3 (one fold tests, the next selects the "
            "epoch, the rest train)"
        )
    return np.asarray([fold_of(str(s), folds) for s in speakers], np.int64)


def fold_split(fold_ids: np.ndarray, fold: int, folds: int) -> dict[str, np.ndarray]:
    """Clip indices ``{"train", "val", "test"}`` of ``fold``: test = ``fold``, validation =
    ``(fold + 1) % folds``, training = the rest."""
    if not 0 <= fold < folds:
        raise ValueError(f"fold is {fold}; expected 0 <= fold < {folds}")
    val = (fold + 1) % folds
    return {
        "train": np.flatnonzero((fold_ids != fold) & (fold_ids != val)),
        "val": np.flatnonzero(fold_ids == val),
        "test": np.flatnonzero(fold_ids == fold),
    }


def fold_training_data(
    v2: Corpus, split: dict[str, np.ndarray], v1: Corpus, v1_train: np.ndarray, synth
) -> TrainingData:
    """The :class:`TrainingData` of one fold (``kws_data.training_data``, as the bundled
    split's is built): statistics and noise from the fold's v2 training clips only, then the
    v0.01 clips ``v1_train`` (of training-fold speakers) appended."""
    sets = {k: v2.speech_set(idx) for k, idx in split.items()}
    return training_data(sets, v1.audio[v1_train], v1.labels[v1_train], synth)


def _counts(corpus: Corpus, idx: np.ndarray) -> dict[str, int]:
    words = corpus.labels[idx] != SILENCE
    return {
        "clips": len(idx),
        "speakers": len(set(corpus.speakers[idx][words])),
        "silence_clips": int((~words).sum()),
    }


def _by_speaker(right: np.ndarray, files: Sequence[str]) -> tuple[np.ndarray, ...]:
    """``(speakers, right clips, clips)`` per speaker of the clips ``files``."""
    names, group = np.unique([speaker_of(Path(f)) for f in files], return_inverse=True)
    return names, np.bincount(group, right.astype(float)), np.bincount(group).astype(float)


def _fixed_split(names, hits, clips, draws: int, rng: np.random.Generator) -> dict:
    """Accuracy over each bucket of ``speaker_split``, and how often ``draws`` random groups
    of as many speakers score at most that (0.05: harder than 95% of such groups)."""
    fixed = np.asarray([speaker_split(str(s)) for s in names])
    out = {}
    for bucket in SPLITS:
        mask = fixed == bucket
        if not mask.any():
            out[bucket] = {"acc": None, "clips": 0, "speakers": 0}
            continue
        acc = hits[mask].sum() / clips[mask].sum()
        picks = [rng.choice(len(names), int(mask.sum()), replace=False) for _ in range(draws)]
        groups = np.asarray([hits[p].sum() / clips[p].sum() for p in picks])
        out[bucket] = {
            "acc": float(acc),
            "clips": int(clips[mask].sum()),
            "speakers": int(mask.sum()),
            "random_groups_at_or_below": float((groups <= acc + 1e-12).mean()),
        }
    return out


def summarise(
    folds: Sequence[dict],
    labels: np.ndarray,
    pred: np.ndarray,
    files: Sequence[str],
    draws: int = 2000,
    seed: int = 0,
) -> dict:
    """The cross-validation summary of per-fold ``result.json`` dicts and the pooled test
    clips' ``labels``, predictions ``pred`` and ``files``.

    ``pooled``: accuracy over all clips, with a 95% percentile interval from ``draws`` draws
    of speakers with replacement (a speaker's clips stay together); ``folds``: mean, sample
    std, min and max of the fold accuracies; ``per_class``: accuracy (recall) and clips per
    label, and for keywords only / non-keywords only; ``by_fixed_split``: accuracy over the
    clips of each bucket of ``speaker_split`` (the bundled model's split), against random
    groups of as many speakers; ``hardest_speakers``: the ten with the most errors;
    ``confusion``: rows true, columns predicted.
    """
    labels, pred = np.asarray(labels), np.asarray(pred)
    if labels.shape != pred.shape or len(files) != len(labels):
        raise ValueError(
            f"{len(labels)} labels, {len(pred)} predictions and {len(files)} files; expected "
            "one of each per test clip"
        )
    right = labels == pred
    names, hits, clips = _by_speaker(right, files)
    rng = np.random.default_rng(seed)
    boot = np.empty(draws)
    for d in range(draws):
        pick = rng.integers(len(clips), size=len(clips))
        boot[d] = hits[pick].sum() / clips[pick].sum()
    accs = np.asarray([f["test_acc"] for f in folds], float)
    keyword = labels < KWS_LABELS.index("_unknown_")
    confusion = np.zeros((len(KWS_LABELS), len(KWS_LABELS)), np.int64)
    np.add.at(confusion, (labels, pred), 1)
    worst = np.lexsort((names, -(clips - hits)))[:10]

    def acc(mask: np.ndarray) -> dict:
        return {"acc": float(right[mask].mean()) if mask.any() else None, "clips": int(mask.sum())}

    return {
        "pooled": {
            **acc(np.ones(len(right), bool)),
            "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "speakers": len(clips),
        },
        "folds": {
            "mean": float(accs.mean()),
            "std": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
            "min": float(accs.min()),
            "max": float(accs.max()),
            "per_fold": list(folds),
        },
        "per_class": {name: acc(labels == k) for k, name in enumerate(KWS_LABELS)},
        "keywords": acc(keyword),
        "non_keywords": acc(~keyword),
        "by_fixed_split": _fixed_split(names, hits, clips, draws, rng),
        "hardest_speakers": [
            {
                "speaker": str(names[k]),
                "clips": int(clips[k]),
                "errors": int(clips[k] - hits[k]),
                "acc": float(hits[k] / clips[k]),
                "fixed_split": speaker_split(str(names[k])),
            }
            for k in worst
        ],
        "confusion": {"labels": list(KWS_LABELS), "counts": confusion.tolist()},
    }


# Flags of the student trainer that have no meaning per fold: the folds choose the data, the
# epoch and the test clips, and the teacher of fold i is --teacher-cv's fold i.
_NOT_PER_FOLD = {"teacher": "--teacher-cv", "init": None, "test": None, "export": None}


def build_parser(student: bool = False) -> argparse.ArgumentParser:
    """The recipe of every fold, ``kws_teacher``'s flags (or with ``student``, those of the
    hybrid-spiking LMU's trainer ``kws``), plus ``--folds``."""
    p = student_parser() if student else teacher_parser()
    p.prog = "python -m eventsp.train.lmu.kws_cv"
    p.description = __doc__
    p.add_argument("--folds", type=int, default=5, help="K; every speaker is tested once")
    p.add_argument(
        "--only-folds",
        type=int,
        nargs="+",
        default=None,
        help="train and summarise these folds only (a paired comparison of recipes that costs "
        "less than all K)",
    )
    p.add_argument(
        "--student",
        action="store_true",
        help="cross-validate the hybrid-spiking LMU (the flags of python -m "
        "eventsp.train.lmu.kws) instead of the non-spiking teacher",
    )
    p.add_argument(
        "--teacher-cv",
        type=Path,
        default=None,
        help="with --student: distil fold i from RUN/fold<i>/best.pt of this teacher "
        "cross-validation (run with the same --folds, --limit and --no-v1-subset)",
    )
    return p


def parse_cv_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags of :func:`build_parser`, the teacher's or the student's by ``--student``."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--student", action="store_true")
    student = pre.parse_known_args(argv)[0].student
    args = parse_args(build_parser(student), argv)
    if not student:
        if args.teacher_cv is not None:
            raise ValueError("--teacher-cv is for --student runs (a teacher has no teacher)")
        return args
    for flag, instead in _NOT_PER_FOLD.items():
        if getattr(args, flag) not in (None, False):
            option = "--" + flag.replace("_", "-")
            fix = f"; use {instead}" if instead else ""
            raise ValueError(f"{option} does not apply to a cross-validation{fix}")
    if args.teacher_cv is not None:
        _check_teacher_cv(args)
    return args


def _check_teacher_cv(args: argparse.Namespace) -> None:
    """``--teacher-cv`` must hold a teacher per fold, trained on the same folds of the same
    clips: else a teacher would have heard this fold's test speakers."""
    summary = args.teacher_cv / "summary.json"
    recipe = json.loads(summary.read_text()).get("recipe", {}) if summary.is_file() else {}
    same = {"folds": args.folds, "limit": args.limit, "no_v1_subset": args.no_v1_subset}
    theirs = {k: recipe.get(k) for k in same}
    if theirs != same:
        raise ValueError(
            f"--teacher-cv {str(args.teacher_cv)!r}: its summary.json gives {theirs}, this run "
            f"{same}; cross-validate the teacher with the same flags first (python -m "
            "eventsp.train.lmu.kws_cv --run-dir DIR ...)"
        )
    chosen = range(args.folds) if args.only_folds is None else args.only_folds
    missing = [f for f in chosen if not (args.teacher_cv / f"fold{f}" / "best.pt").is_file()]
    if missing:
        raise ValueError(
            f"--teacher-cv {str(args.teacher_cv)!r} has no fold<i>/best.pt for folds {missing}"
        )


def _recipe(args: argparse.Namespace) -> dict:
    """The flags that change what a fold trains (not where it writes or how it reports)."""
    skip = {"run_dir", "threads", "no_progress", "only_folds"}
    if not args.student:  # as teacher runs recorded their recipe before --student existed
        skip |= {"student", "teacher_cv"}
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in skip}


# Just enough flags to parse the defaults of either recipe.
_DEFAULTS_ARGV = {False: ["--run-dir", "."], True: ["--run-dir", ".", "--student"]}


def same_recipe(stored: dict, args: argparse.Namespace) -> bool:
    """Whether a fold trained with the recipe ``stored`` is what ``args`` would train. A flag
    that the trainer gained after the fold was trained counts as the same when ``args``
    leaves it at its default (the fold was trained as that default trains)."""
    now = _recipe(args)
    defaults = _recipe(parse_args(build_parser(args.student), _DEFAULTS_ARGV[args.student]))
    added = {k for k in now.keys() - stored.keys() if now[k] == defaults.get(k)}
    return (
        stored.keys() <= now.keys()
        and all(stored[k] == now[k] for k in stored)
        and (now.keys() - stored.keys() <= added)
    )


def _run_fold(args, v2, fold_ids, v1, v1_ids, synth, fold: int) -> tuple[dict, dict]:
    """Train and test one fold (or read it back); ``(result, predictions)``."""
    run_dir = args.run_dir / f"fold{fold}"
    split = fold_split(fold_ids, fold, args.folds)
    v1_train = fold_split(v1_ids, fold, args.folds)["train"]  # training speakers only
    done = run_dir / "result.json"
    if done.is_file():
        result = json.loads(done.read_text())
        with np.load(run_dir / "predictions.npz", allow_pickle=False) as z:
            preds = {k: z[k] for k in ("files", "labels", "pred")}
        if not same_recipe(result.get("recipe") or {}, args):
            raise ValueError(
                f"{str(done)!r} was trained with {result.get('recipe')}, not with these flags "
                f"{_recipe(args)}; pass a new --run-dir"
            )
        if list(preds["files"]) != list(v2.files[split["test"]]):
            raise ValueError(
                f"{str(done)!r} tested other clips than fold {fold} of {args.folds} holds now; "
                "pass a new --run-dir (or the same --folds, --data and --limit as before)"
            )
        print(
            json.dumps({"fold": fold, "resumed": True, "test_acc": result["test_acc"]}), flush=True
        )
        return result, preds
    tic = time.perf_counter()
    data = fold_training_data(v2, split, v1, v1_train, synth)
    test = data.sets["test"]
    if args.student:
        teachers = []
        if args.teacher_cv is not None:
            teachers = load_teachers([args.teacher_cv / f"fold{fold}" / "best.pt"])
        fold_args = argparse.Namespace(**{**vars(args), "run_dir": run_dir})
        student = train_student(fold_args, data, teachers, loop.DistEnv())
        x_test = normalise(data, args.stack, features(test.audio, data.front))
        last, smoothed = clip_posteriors(student.model, x_test, student.dt, args.smooth_frames)
        post = last if args.clip_decision == "last" else smoothed
        best_epoch, best_val = student.best_epoch, student.best
    else:
        run = train_teacher(args, data, run_dir)
        post = teacher_posteriors(
            load_teachers([run_dir / "best.pt"]), features(test.audio, data.front), 1.0
        ).numpy()
        best_epoch, best_val = run.best_epoch, run.best_val_acc
    pred = post.argmax(1)
    result = {
        "fold": fold,
        "train": {**_counts(v2, split["train"]), "v1_clips": len(v1_train)},
        "val": _counts(v2, split["val"]),
        "test": _counts(v2, split["test"]),
        "best_epoch": best_epoch,
        "best_val_acc": best_val,
        "test_acc": float((pred == test.labels).mean()),
        "seconds": time.perf_counter() - tic,
        "recipe": _recipe(args),
    }
    preds = {"files": v2.files[split["test"]], "labels": test.labels, "pred": pred}
    np.savez(run_dir / "predictions.npz", **preds, posteriors=post)
    done.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result), flush=True)
    return result, preds


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cv_args(argv)
    chosen = range(args.folds) if args.only_folds is None else sorted(set(args.only_folds))
    if not all(0 <= fold < args.folds for fold in chosen):
        raise ValueError(
            f"--only-folds is {args.only_folds}; expected folds from 0 to {args.folds - 1}"
        )
    v2, v1 = load_corpus(args.data / "speech", skip_v1=args.no_v1_subset, limit=args.limit)
    fold_ids = assign_folds(v2.speakers, args.folds)
    v1_ids = assign_folds(v1.speakers, args.folds)
    synth = load_synth(args.synth_dir) if args.synth_dir is not None else None
    tic = time.perf_counter()
    results, preds = [], []
    for fold in chosen:
        result, pred = _run_fold(args, v2, fold_ids, v1, v1_ids, synth, fold)
        results.append(result)
        preds.append(pred)
    summary = summarise(
        results,
        np.concatenate([p["labels"] for p in preds]),
        np.concatenate([p["pred"] for p in preds]),
        [str(f) for p in preds for f in p["files"]],
    )
    summary["recipe"] = _recipe(args)
    summary["seconds_this_call"] = time.perf_counter() - tic
    (args.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    short = {k: summary[k] for k in ("pooled", "keywords", "non_keywords", "by_fixed_split")}
    print(
        json.dumps(
            {**short, "fold_mean": summary["folds"]["mean"], "fold_std": summary["folds"]["std"]}
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
