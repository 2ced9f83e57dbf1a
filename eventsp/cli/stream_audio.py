"""``eventsp stream-audio``: stream a file or the microphone to the service, print results.

Keyword events, predictions and (``--task separate``) the separated tracks, written as WAV
files under ``--out`` when the stream ends, are printed as they arrive; ``--json`` prints one
JSON object per line (``type``: ``keyword``, ``prediction``, ``audio_file``, ``summary``).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from eventsp.cli import UsageError

HELP = "stream a sound file or the microphone to an eventsp server and print what it hears"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", type=Path, help="WAV/FLAC file to stream")
    source.add_argument("--mic", action="store_true", help="stream the default microphone")
    parser.add_argument("--task", choices=["kws", "separate"], default="kws")
    parser.add_argument(
        "--chunk-ms", type=float, default=20.0, help="audio per message (default: %(default)s)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("separated"), help="folder for separated tracks"
    )
    from eventsp.clients.common import add_connection_arguments

    add_connection_arguments(parser)


def _model(client, args: argparse.Namespace):
    if args.model:
        return client.get_model(args.model)
    for info in client.list_models():
        if info.task == args.task:
            return info
    raise UsageError(f"the server at {args.server} holds no {args.task!r} model; pass --model")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from eventsp.audio import MicrophoneError, MicrophoneStream, iter_audio, write_audio
    from eventsp.clients.client import ServiceCallError
    from eventsp.clients.common import connect, emit, emit_prediction, fail

    if args.chunk_ms <= 0:
        raise UsageError(f"--chunk-ms is {args.chunk_ms}; expected milliseconds > 0")
    if args.file is not None and not args.file.is_file():
        raise UsageError(f"{args.file} is not a file; pass a WAV/FLAC file or --mic")
    tracks: list[list[np.ndarray]] = []
    latencies: list[float] = []
    with connect(args) as client, contextlib.ExitStack() as stack:
        try:
            info = _model(client, args)
            rate = info.sample_rate_hz
            chunk = max(1, round(rate * args.chunk_ms / 1000))
            if args.mic:
                try:
                    source = stack.enter_context(MicrophoneStream(rate, chunk))
                except MicrophoneError as exc:
                    raise UsageError(str(exc)) from None
            else:
                source = iter_audio(args.file, chunk, rate)
            responses = client.stream_audio(
                source, sample_rate_hz=rate, model=info.name, realtime=args.realtime
            )
            for response in responses:
                latencies.append(response.latency_ms)
                for k in response.keywords:
                    record = {
                        "type": "keyword",
                        "label": k.label,
                        "score": round(k.score, 4),
                        "time_s": round(k.time_s, 4),
                        "end_s": round(k.end_s, 4),
                        "latency_ms": round(response.latency_ms, 3),
                    }
                    text = f"{k.time_s:8.3f}-{k.end_s:.3f} s  keyword {k.label:12s} {k.score:.3f}"
                    emit(args, record, text)
                for p in response.predictions:
                    emit_prediction(args, p, response.latency_ms)
                for i, data in enumerate(response.separated.tracks):
                    while len(tracks) <= i:
                        tracks.append([])
                    tracks[i].append(np.frombuffer(data, "<f4"))
        except ServiceCallError as exc:
            return fail(f"eventsp stream-audio: {exc}")
    stem = args.file.stem if args.file is not None else "mic"
    for i, parts in enumerate(tracks):
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"{stem}_source{i + 1}.wav"
        signal = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        write_audio(path, signal, rate)
        emit(
            args,
            {"type": "audio_file", "path": str(path), "source": i + 1, "samples": signal.size},
            f"wrote {path} ({signal.size / rate:.2f} s)",
        )
    if latencies:
        p50, p99 = np.percentile(latencies, [50, 99])
        emit(
            args,
            {"type": "summary", "chunks": len(latencies), "p50_ms": p50, "p99_ms": p99},
            f"{len(latencies)} chunks, server latency p50 {p50:.2f} ms, p99 {p99:.2f} ms",
        )
    return 0
