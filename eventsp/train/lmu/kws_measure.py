"""Measure a keyword-spotting model as issue 6 asks (``python -m eventsp.train.lmu.kws_measure``).

    python -m eventsp.train.lmu.kws_measure [--model PATH] [--data ../shared/data] [--split val]

Prints JSON lines (``--split val``: accuracy and false alarms on the VALIDATION speakers only,
for choosing between candidate models without looking at the test split):

- 12-class accuracy of the whole-clip answer on the TEST speakers (never used for training or
  model selection) and the runtime's effective synaptic operations per second of audio;
- false alarms per hour, at several thresholds (``--thresholds``), on one continuous stream
  of every ``_unknown_`` (non-keyword words) and ``_silence_`` clip of the validation and test
  speakers (validation only with ``--split val``);
- at the same thresholds, the hit rate: the fraction of the split's keyword clips that give
  an event of their keyword when streamed with a second of silence before and after (the
  detections that those false alarms are the price of);
- the real-time factor of the whole streaming path (log-mel, network, smoothing, events) at
  10 ms hops (160-sample chunks), as wall and process CPU time over 20 s of audio.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eventsp.apps.kws import KeywordSpotter, KWSConfig, speaker_of, speaker_split
from eventsp.audio import read_audio
from eventsp.train.lmu.kws_data import KWS_LABELS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eventsp.train.lmu.kws_measure")
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument(
        "--thresholds", type=float, nargs="+", default=[0.6, 0.8, 0.9], help="event thresholds"
    )
    args = parser.parse_args(argv)
    spotter = KeywordSpotter(args.model)
    rate = spotter.sample_rate
    root = args.data / "speech" / "speech_commands_v2_test_dev"
    correct = total = 0
    synops = seconds = 0.0
    negatives, keywords = [], []
    for index, label in enumerate(KWS_LABELS):
        for path in sorted((root / label).glob("*.flac")):
            split = speaker_split(speaker_of(path))
            if split == "train" or (args.split == "val" and split != "val"):
                continue
            signal, _ = read_audio(path, rate)
            if label in ("_unknown_", "_silence_"):
                negatives.append(signal)
            if split != args.split:
                continue
            if label not in ("_unknown_", "_silence_"):
                keywords.append((label, signal))
            result = spotter.classify(signal)
            correct += KWS_LABELS.index(result.label) == index
            total += 1
            synops += result.synops
            seconds += len(signal) / rate
    print(
        json.dumps(
            {
                f"{args.split}_clips": total,
                "accuracy": correct / total,
                "synops_per_s": synops / seconds,
                "clip_decision": spotter.clip_decision,
                "frame_stack": spotter.stack,
            }
        )
    )
    stream = np.concatenate(negatives)
    hours = len(stream) / rate / 3600
    gap = np.zeros(rate, np.float32)
    for threshold in args.thresholds:
        config = KWSConfig(threshold=threshold, release=min(0.4, threshold))
        detector = KeywordSpotter(args.model, config)
        events, _ = detector.stream(stream[i : i + 1600] for i in range(0, len(stream), 1600))
        record = {"threshold": threshold, "stream_s": len(stream) / rate}
        record |= {"false_alarms": len(events), "false_alarms_per_hour": len(events) / hours}
        hits = sum(
            any(e.keyword == label for e in detector.classify(np.concatenate([gap, x, gap])).events)
            for label, x in keywords
        )
        record |= {"keyword_clips": len(keywords), "hit_rate": hits / max(1, len(keywords))}
        print(json.dumps(record))
    audio = stream[: 20 * rate]
    spotter.step(audio[:1600], spotter.init_state())  # warm the kernels
    state = spotter.init_state()
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(audio), 160):
        _, _, state = spotter.step(audio[i : i + 160], state)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    duration = len(audio) / rate
    print(json.dumps({"rtf_wall": wall / duration, "rtf_cpu": cpu / duration, "audio_s": duration}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
