"""The service part of ``make demo``: serve the bundled models and stream real data through them.

Starts the server in this process on the bundled default models (port 0), then for every
model it holds streams real recordings from the shared data folder through the public client:

- ``classify-events``: held-out N-MNIST recordings replayed in 10 ms packets; prints each
  final class with the true label, and the accuracy on those recordings;
- ``kws``: Speech Commands clips of held-out speakers; prints keyword events and the final
  prediction;
- ``separate``: a two-talker mixture of real clips; writes the separated tracks.

Then prints the server's metrics and stops it gracefully. Everything printed is computed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

N_RECORDINGS = 10
PACKET_US = 10_000


def _events_demo(client, model, data: Path, say: Callable[[str], None]) -> None:
    from eventsp.cli.stream_events import time_packets
    from eventsp.events import open_recording
    from eventsp.train.data.events import nmnist_small_split

    folder = data / "nmnist_small" / "train"
    # Held-out recordings: the trainers never see the split's test part.
    held_out = nmnist_small_split(folder)["test"][:N_RECORDINGS]
    labels = {path.name: str(label) for path, label in held_out}
    files = [path.name for path, _ in held_out]
    correct, latencies = 0, []
    for name in files:
        recording = open_recording(folder / name)
        packets = time_packets(recording.packets(), PACKET_US)
        final, count = None, 0
        for response in client.stream_events(
            packets, sensor_size=recording.sensor_size, model=model.name
        ):
            latencies.append(response.latency_ms)
            count = response.events_total
            final = response.predictions[-1] if response.predictions else final
        hit = final is not None and final.label == labels[name]
        correct += hit
        say(
            f"   {name}: {count:5d} events -> class {final.label} "
            f"({max(final.scores):.2f}), true {labels[name]} {'ok' if hit else 'MISS'}"
        )
    p50, p99 = np.percentile(latencies, [50, 99])
    say(
        f"   {model.name}: {correct}/{len(files)} correct; packet latency p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms"
    )


def _speech_clips(data: Path, words: tuple[str, ...]) -> list[Path]:
    """One clip per word, each from a speaker the keyword trainer held out."""
    from eventsp.apps.kws import speaker_of, speaker_split

    folder = data / "speech" / "speech_commands_v2_test_dev"
    clips = []
    for word in words:
        files = sorted((folder / word).glob("*.flac"))
        held_out = [f for f in files if speaker_split(speaker_of(f)) == "test"]
        clips.append((held_out or files)[0])
    return clips


def _kws_demo(client, model, data: Path, say: Callable[[str], None]) -> None:
    from eventsp.audio import iter_audio

    for path in _speech_clips(data, ("yes", "stop", "left")):
        rate = model.sample_rate_hz
        chunks = iter_audio(path, rate // 50, rate)  # 20 ms chunks
        events, final = [], None
        for response in client.stream_audio(chunks, sample_rate_hz=rate, model=model.name):
            events.extend(response.keywords)
            final = response.predictions[-1] if response.predictions else final
        heard = ", ".join(f"{k.label}@{k.time_s:.2f}s" for k in events) or "no keyword"
        guess = f"; final {final.label}" if final is not None else ""
        say(f"   {path.parent.name}/{path.name}: {heard}{guess}")


def _separate_demo(client, model, data: Path, say: Callable[[str], None]) -> None:
    from eventsp.audio import read_audio, write_audio

    a, b = _speech_clips(data, ("go", "right"))
    rate = model.sample_rate_hz
    x, _ = read_audio(a, rate)
    y, _ = read_audio(b, rate)
    n = min(x.size, y.size)
    mixture = (0.5 * x[:n] + 0.5 * y[:n]).astype(np.float32)
    tracks: list[list[np.ndarray]] = []
    chunks = [mixture[i : i + rate // 50] for i in range(0, n, rate // 50)]
    for response in client.stream_audio(chunks, sample_rate_hz=rate, model=model.name):
        for i, data_bytes in enumerate(response.separated.tracks):
            while len(tracks) <= i:
                tracks.append([])
            tracks[i].append(np.frombuffer(data_bytes, "<f4"))
    out = Path(tempfile.mkdtemp(prefix="eventsp-separated-"))
    for i, parts in enumerate(tracks):
        path = out / f"source{i + 1}.wav"
        write_audio(path, np.concatenate(parts), rate)
        say(f"   wrote {path}")
    if not tracks:
        say(f"   {model.name} returned no separated audio")


DEMOS = {"classify-events": _events_demo, "kws": _kws_demo, "separate": _separate_demo}


def run_service_demo(
    data: Path, models_dir: Path | None = None, say: Callable[[str], None] = print
) -> int:
    """Serve the bundled models (or ``models_dir``'s), exercise each on real data.

    Returns the number of models served.
    """
    from eventsp.clients.client import Client
    from eventsp.services.background import BackgroundServer
    from eventsp.services.config import ServerConfig

    with BackgroundServer(ServerConfig(port=0, models_dir=models_dir, grace_s=2.0)) as server:
        say(f"   server listening on {server.address}")
        with Client(server.address) as client:
            client.wait_serving()
            models = client.list_models()
            say(f"   bundled models: {', '.join(f'{m.name} ({m.task})' for m in models) or 'none'}")
            for model in models:
                demo = DEMOS.get(model.task)
                if demo is not None:
                    demo(client, model, data, say)
            m = client.metrics()
            say(
                f"   server metrics: {m.streams_total} streams, {m.chunks_total} chunks, "
                f"latency p50 {m.latency_p50_ms:.2f} ms p99 {m.latency_p99_ms:.2f} ms, "
                f"{m.synops_total:.3g} synops, open streams {m.open_streams}"
            )
    say("   server stopped")
    return len(models)
