"""The commands end to end: `eventsp serve`, `stream-audio`, `stream-events` as subprocesses."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from eventsp.clients.client import Client

EVENTSP = [sys.executable, "-m", "eventsp"]


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*EVENTSP, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def serve_process(models_dir):
    """`eventsp serve --port 0 --models DIR` running; yields (process, address)."""
    process = subprocess.Popen(
        [*EVENTSP, "serve", "--port", "0", "--models", str(models_dir), "--grace", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = process.stdout.readline().strip()
    try:
        if not first.startswith("listening on 127.0.0.1:"):
            process.kill()
            pytest.fail(f"eventsp serve printed {first!r} first; stderr: {process.stderr.read()}")
        address = first.removeprefix("listening on ")
        assert int(address.rsplit(":", 1)[1]) > 0
        yield process, address
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        process.stdout.close()
        process.stderr.close()


def test_serve_prints_its_address_first_and_stops_on_sigterm(serve_process, held_stream):
    process, address = serve_process
    with Client(address) as client:
        client.wait_serving()
        assert {m.name for m in client.list_models()} == {"tiny-events", "tiny-kws"}
        held = held_stream(client, task="kws")
        process.send_signal(signal.SIGTERM)
        # The open stream may still finish: it gets its answers, then the server exits.
        held.finish()
        assert held.error is None, held.error
        assert len(held.responses) >= 2
    assert process.wait(20) == 0
    logs = [json.loads(line) for line in process.stderr.read().splitlines() if line.strip()]
    events = [entry.get("event") for entry in logs]
    assert "serving" in events
    assert "stopping" in events
    assert events.index("stream_close") < events.index("stopped")
    # The server runs on uvloop's event loop when it is installed (the serve extra).
    serving = logs[events.index("serving")]
    expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio.unix_events"
    assert serving["loop"] == expected


def test_stream_events_prints_json_predictions(serve_process, data_root):
    _, address = serve_process
    path = sorted((data_root / "nmnist_small" / "train").rglob("*.bin"))[0]
    with Client(address) as client:
        client.wait_serving()
    out = _run("stream-events", str(path), "--server", address, "--json", "--every")
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    predictions = [r for r in records if r["type"] == "prediction"]
    assert predictions[-1]["final"]
    assert predictions[-1]["label"] in [str(d) for d in range(10)]
    assert records[-1]["type"] == "summary"
    raw_events = path.stat().st_size // 5
    assert records[-1]["events"] == raw_events


def test_stream_audio_prints_predictions(serve_process, data_root):
    _, address = serve_process
    path = data_root / "speech" / "micro_speech" / "no_1000ms.wav"
    out = _run("stream-audio", str(path), "--server", address, "--json")
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r for r in records if r["type"] == "prediction"][-1]["final"]
    assert records[-1]["type"] == "summary"
    assert records[-1]["chunks"] == 50 + 1  # 1 s in 20 ms chunks, plus the final answer


def test_stream_audio_writes_separated_tracks(served, tmp_path, data_root):
    running, _ = served
    path = data_root / "speech" / "micro_speech" / "yes_1000ms.wav"
    out = _run(
        "stream-audio", str(path), "--server", running.address, "--task", "separate",
        "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    files = [json.loads(line) for line in out.stdout.splitlines()]
    files = [r for r in files if r["type"] == "audio_file"]
    assert [r["source"] for r in files] == [1, 2]
    original, _ = soundfile.read(path, dtype="float32")
    first, rate = soundfile.read(files[0]["path"], dtype="float32")
    second, _ = soundfile.read(files[1]["path"], dtype="float32")
    assert rate == 16000
    # The test separation task returns (x, -x); through int16 PCM both ways.
    np.testing.assert_allclose(first, original, atol=2 / 32768)
    np.testing.assert_allclose(second, -original, atol=2 / 32768)


def test_commands_report_user_errors(tmp_path, served):
    running, _ = served
    missing = _run("stream-audio", str(tmp_path / "nope.wav"), "--server", running.address)
    assert missing.returncode == 2
    assert "nope.wav" in missing.stderr
    both = _run("stream-audio", "x.wav", "--mic")
    assert both.returncode == 2
    soundfile.write(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000)
    wrong_model = _run(
        "stream-audio", str(tmp_path / "a.wav"), "--server", running.address, "--model", "ghost"
    )
    assert wrong_model.returncode == 1
    assert "NOT_FOUND" in wrong_model.stderr
    bad_tls = _run("serve", "--port", "0", "--tls-cert", str(tmp_path / "a.wav"))
    assert bad_tls.returncode == 2
    assert "give both" in bad_tls.stderr


def test_mic_without_a_device_is_a_clear_error(served):
    running, _ = served
    out = _run("stream-audio", "--mic", "--server", running.address)
    if out.returncode == 0:
        pytest.skip("this machine has a microphone")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "microphone" in out.stderr.lower() or "portaudio" in out.stderr.lower()


def test_serve_refuses_a_busy_port(serve_process):
    _, address = serve_process
    port = address.rsplit(":", 1)[1]
    out = _run("serve", "--port", port, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "bind" in out.stderr


@pytest.mark.slow
def test_serve_workers_share_one_port(models_dir):
    process = subprocess.Popen(
        [*EVENTSP, "serve", "--port", "0", "--workers", "2", "--models", str(models_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline().strip()
        assert first.startswith("listening on 127.0.0.1:"), first
        address = first.removeprefix("listening on ")
        for _ in range(6):  # separate connections are spread over the workers by the kernel
            with Client(address) as client:
                client.wait_serving()
                responses = list(client.stream_audio([np.zeros(1600)], sample_rate_hz=16000))
                assert responses[-1].predictions[-1].final
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        logs = [json.loads(line) for line in process.stderr.read().splitlines() if line.strip()]
        pids = {entry["pid"] for entry in logs if entry.get("event") == "serving"}
        assert len(pids) == 2
        assert sum(entry.get("event") == "stopped" for entry in logs) == 2
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        process.stdout.close()
        process.stderr.close()
