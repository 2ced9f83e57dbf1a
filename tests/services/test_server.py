"""Every RPC of the service through a real socket on 127.0.0.1 (port 0), with test tasks."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from eventsp.clients.client import Client, ServiceCallError
from eventsp.clients.wire import decode_pcm
from eventsp.events.contract import EVENT_DTYPE
from eventsp.v1 import audio_pb2


def _events(t: list[int], p: list[int], x: int = 3, y: int = 4) -> np.ndarray:
    events = np.zeros(len(t), dtype=EVENT_DTYPE)
    events["t"], events["p"], events["x"], events["y"] = t, p, x, y
    return events


def _softmax(x: list[float]) -> np.ndarray:
    e = np.exp(np.asarray(x) - max(x))
    return e / e.sum()


def test_models_are_listed_and_warmed_before_serving(served, audio_task):
    _running, client = served
    names = [m.name for m in client.list_models()]
    assert names == ["test-loudness", "test-polarity", "test-split"]
    info = client.get_model("test-polarity")
    assert info.task == "classify-events"
    assert list(info.sensor_size) == [34, 34, 2]
    assert list(info.labels) == ["off", "on"]
    assert audio_task.warmed, "the server reported SERVING before warming its models"
    assert client.health() == "SERVING"
    assert client.health("eventsp.v1.StreamingService") == "SERVING"


def test_unknown_model_is_not_found(served):
    _, client = served
    with pytest.raises(ServiceCallError) as info:
        client.get_model("no-such-model")
    assert info.value.code == "NOT_FOUND"
    assert "no-such-model" in info.value.message
    assert "test-loudness" in info.value.message  # says what the server has


def test_reflection_lists_the_services(served):
    _running, client = served
    services = set(ProtoReflectionDescriptorDatabase(client.channel).get_services())
    assert {"eventsp.v1.StreamingService", "grpc.health.v1.Health"} <= services


def test_stream_audio_answers_every_chunk_in_order(served, audio_task):
    _running, client = served
    loud = [i % 2 == 1 for i in range(6)]
    chunks = [np.full(800, 0.5 if is_loud else 0.01, np.float32) for is_loud in loud]
    responses = list(client.stream_audio(chunks, sample_rate_hz=16000, task="kws"))
    assert [r.sequence for r in responses] == list(range(7))  # one per chunk + the final one
    for r, is_loud in zip(responses, loud, strict=False):
        assert [k.label for k in r.keywords] == (["loud"] if is_loud else [])
        assert r.latency_ms > 0
    assert responses[1].keywords[0].time_s == pytest.approx(800 / 16000)
    assert responses[5].samples_total == 6 * 800
    final = responses[-1].predictions[0]
    assert final.final
    assert final.label == "loud"
    metrics = client.metrics()
    assert metrics.chunks_total == 7
    assert metrics.samples_total == 4800
    assert metrics.synops_total == 4800  # the test task reports one op per sample
    assert 0 < metrics.latency_p50_ms <= metrics.latency_p99_ms <= metrics.latency_max_ms
    assert metrics.open_streams == 0
    assert audio_task.live == 0


def test_stream_audio_float_format_and_separated_tracks(served, rng):
    _, client = served
    chunk = (rng.standard_normal(1000) * 0.1).astype(np.float32)
    (response, *_) = client.stream_audio(
        [chunk], sample_rate_hz=16000, model="test-split", sample_format="PCM_F32LE"
    )
    tracks = [decode_pcm(t, "PCM_F32LE") for t in response.separated.tracks]
    assert response.separated.sample_rate_hz == 16000
    np.testing.assert_array_equal(tracks[0], chunk)
    np.testing.assert_array_equal(tracks[1], -chunk)


def test_stream_events_predicts_and_counts_late_events(served, event_task):
    _, client = served
    packets = [
        _events([10, 5, 20], [1, 1, 0]),  # unsorted within the packet: sorted, nothing lost
        _events([15, 30, 40], [1, 1, 1]),  # t=15 is before the watermark 20: dropped, counted
        _events([], []),
    ]
    responses = list(client.stream_events(packets, sensor_size=(34, 34, 2)))
    assert [r.sequence for r in responses] == [0, 1, 2, 3]
    assert [(r.events_total, r.events_dropped) for r in responses] == [
        (3, 0),
        (5, 1),
        (5, 1),
        (5, 1),
    ]
    assert responses[0].predictions[0].label == "on"
    assert responses[0].predictions[0].time_s == pytest.approx(20e-6)
    assert responses[-1].predictions[0].final
    # The test task's readout is the fraction of each polarity; scores are its softmax.
    assert responses[-1].predictions[0].scores == pytest.approx(_softmax([1 / 5, 4 / 5]))
    assert event_task.live == 0


def test_process_recording_audio_file(served, data_root):
    _, client = served
    path = data_root / "speech" / "micro_speech" / "yes_1000ms.wav"
    samples, rate = soundfile.read(path, dtype="float32")
    response = client.process_file(path, model="test-loudness")
    assert response.model == "test-loudness"
    assert response.inputs_total == samples.size
    assert response.duration_s == pytest.approx(samples.size / rate)
    metrics = client.metrics()
    assert metrics.samples_total == samples.size
    assert metrics.synops_total == samples.size  # the test task reports one op per sample
    assert metrics.chunks_total == 0  # an upload is not a live chunk: no latency recorded
    assert response.predictions[-1].final
    # The test task marks each 100 ms chunk whose RMS is above 0.1.
    expected = [
        i / 10
        for i in range(0, 10)
        if np.sqrt(np.mean(samples[i * 1600 : (i + 1) * 1600].astype(np.float64) ** 2)) > 0.1
    ]
    assert [k.time_s for k in response.keywords] == pytest.approx(expected)


def test_process_recording_nmnist_file(served, data_root):
    _, client = served
    path = sorted((data_root / "nmnist_small" / "train").rglob("*.bin"))[0]
    raw = np.frombuffer(path.read_bytes(), np.uint8).reshape(-1, 5)
    response = client.process_file(path)
    assert response.model == "test-polarity"  # the default event model
    assert response.inputs_total == raw.shape[0]
    on = int((raw[:, 2] >> 7).sum())
    fraction_on = on / raw.shape[0]
    assert response.predictions[-1].scores == pytest.approx(
        _softmax([1 - fraction_on, fraction_on]), rel=1e-6
    )


def _pcm_request(**fields) -> list[audio_pb2.StreamAudioRequest]:
    base = {
        "task": "kws",
        "sample_rate_hz": 16000,
        "sample_format": audio_pb2.PCM_S16LE,
        "pcm": b"\0\0" * 10,
    }
    base.update(fields)
    return [audio_pb2.StreamAudioRequest(**base)]


BAD_AUDIO = {
    "wrong sample rate": (_pcm_request(sample_rate_hz=8000), "INVALID_ARGUMENT", "8000"),
    "odd byte count": (_pcm_request(pcm=b"\0" * 7), "INVALID_ARGUMENT", "multiple of 2"),
    "NaN": (
        _pcm_request(sample_format=audio_pb2.PCM_F32LE, pcm=np.array([0, np.nan], "<f4").tobytes()),
        "INVALID_ARGUMENT",
        "finite",
    ),
    "no format": (
        _pcm_request(sample_format=audio_pb2.SAMPLE_FORMAT_UNSPECIFIED),
        "INVALID_ARGUMENT",
        "PCM_S16LE",
    ),
    "format changes": (
        _pcm_request() + _pcm_request(sample_format=audio_pb2.PCM_F32LE, pcm=b""),
        "INVALID_ARGUMENT",
        "changed",
    ),
    "empty stream": ([], "INVALID_ARGUMENT", "first message"),
    "unknown model": (_pcm_request(model="nope"), "NOT_FOUND", "nope"),
    "unknown task": (_pcm_request(task="sing"), "INVALID_ARGUMENT", "sing"),
    "event model": (_pcm_request(model="test-polarity"), "INVALID_ARGUMENT", "events"),
}


@pytest.mark.parametrize("case", list(BAD_AUDIO))
def test_bad_audio_is_refused_with_a_clear_message(
    served, wait_until, held_stream, audio_task, case
):
    running, client = served
    requests, code, fragment = BAD_AUDIO[case]
    with pytest.raises(ServiceCallError) as info:
        list(client._stream(client.stub.StreamAudio, iter(requests)))
    assert info.value.code == code
    assert fragment in info.value.message
    assert "Traceback" not in info.value.message
    assert wait_until(lambda: running.server.metrics.open_streams == 0)
    assert audio_task.live == 0


@pytest.mark.parametrize(
    ("events", "sensor", "fragment"),
    [
        (_events([1], [1], x=34), (34, 34, 2), "x=34"),
        (_events([1], [1], y=40), (34, 34, 2), "y=40"),
        (_events([-5], [1]), (34, 34, 2), "t=-5"),
        (_events([1], [1]), (128, 128, 2), "[128, 128, 2]"),
    ],
)
def test_bad_events_are_refused(served, event_task, events, sensor, fragment):
    _, client = served
    with pytest.raises(ServiceCallError) as info:
        list(client.stream_events([events], sensor_size=sensor))
    assert info.value.code == "INVALID_ARGUMENT"
    assert fragment in info.value.message
    assert event_task.live == 0


def test_truncated_event_packet_is_refused(served):
    _, client = served
    from eventsp.v1 import events_pb2

    request = events_pb2.StreamEventsRequest(
        sensor_size=[34, 34, 2], layout=events_pb2.XYTP_PACKED_V1, events=b"\0" * 20
    )
    with pytest.raises(ServiceCallError) as info:
        list(client._stream(client.stub.StreamEvents, iter([request])))
    assert info.value.code == "INVALID_ARGUMENT"
    assert "multiple of 13" in info.value.message


@pytest.mark.parametrize(
    ("data", "filename", "fragment"),
    [
        (b"", "x.wav", "empty"),
        (b"RIFF not really a wav file", "x.wav", "could not be decoded"),
        (b"\0" * 12, "x.bin", "x.bin: 2 trailing bytes"),
        (b"\0" * 10, "x.mp4", "unknown event format"),
    ],
)
def test_bad_recordings_are_refused(served, data, filename, fragment):
    running, client = served
    with pytest.raises(ServiceCallError) as info:
        client.process_recording(data, filename=filename)
    assert info.value.code == "INVALID_ARGUMENT"
    assert fragment in info.value.message
    assert running.server.metrics.open_streams == 0


def test_wrong_rate_recording_is_refused(served):
    _, client = served
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(800, np.float32), 8000, format="WAV")
    with pytest.raises(ServiceCallError) as info:
        client.process_recording(buffer.getvalue(), filename="a.wav")
    assert info.value.code == "INVALID_ARGUMENT"
    assert "8000 Hz" in info.value.message


def test_oversized_message_is_refused(start_server, wait_until, audio_task):
    from eventsp.services.config import ServerConfig

    running = start_server(ServerConfig(max_message_bytes=64 * 1024), [audio_task])
    with Client(running.address) as client:
        client.wait_serving()
        big = np.zeros(64 * 1024, np.float32)  # 128 KiB of int16
        with pytest.raises(ServiceCallError) as info:
            list(client.stream_audio([big], sample_rate_hz=16000))
        assert info.value.code == "RESOURCE_EXHAUSTED"
        # Within the limit the same stream works.
        assert len(list(client.stream_audio([big[:16000]], sample_rate_hz=16000))) == 2
    assert wait_until(lambda: running.server.metrics.open_streams == 0)


def test_max_streams_refuses_the_next_stream(start_server, wait_until, held_stream, audio_task):
    from eventsp.services.config import ServerConfig

    running = start_server(ServerConfig(max_streams=2), [audio_task])
    with Client(running.address) as client:
        client.wait_serving()
        held = [held_stream(client), held_stream(client)]
        assert running.server.metrics.open_streams == 2
        with pytest.raises(ServiceCallError) as info:
            list(client.stream_audio([np.zeros(10)], sample_rate_hz=16000))
        assert info.value.code == "RESOURCE_EXHAUSTED"
        assert "max_streams=2" in info.value.message
        for stream in held:
            stream.finish()
            assert stream.error is None
            assert len(stream.responses) == 3
        assert client.metrics().streams_refused == 1
    assert wait_until(lambda: running.server.metrics.open_streams == 0)


def test_idle_and_total_stream_deadlines(start_server, held_stream, wait_until, audio_task):
    from eventsp.services.config import ServerConfig

    running = start_server(ServerConfig(idle_timeout_s=0.3), [audio_task])
    with Client(running.address) as client:
        client.wait_serving()
        held = held_stream(client)
        assert wait_until(lambda: held.error is not None, 5)
        assert held.error.code == "DEADLINE_EXCEEDED"
        assert "idle_timeout_s" in held.error.message
        held.finish()
    running = start_server(ServerConfig(stream_deadline_s=0.3), [audio_task])
    with Client(running.address) as client:
        client.wait_serving()
        held = held_stream(client)
        assert wait_until(lambda: held.error is not None, 5)
        assert held.error.code == "DEADLINE_EXCEEDED"
        assert "stream_deadline_s" in held.error.message
        held.finish()
    assert audio_task.live == 0


class ExplodingTestTask:
    """TEST-ONLY task whose push fails with an internal error carrying a secret."""

    def __init__(self, inner) -> None:
        self.info = inner.info
        self.inner = inner

    def warm(self) -> None:
        pass

    def open_stream(self):
        return self.inner.open_stream()

    def push(self, state, chunk):
        raise RuntimeError("secret internal detail /etc/passwd")

    def finish(self, state):
        return self.inner.finish(state)

    def close(self, state) -> None:
        self.inner.close(state)


def test_internal_errors_hide_details_from_clients(start_server, audio_task, caplog):
    running = start_server(tasks=[ExplodingTestTask(audio_task)])
    with Client(running.address) as client:
        client.wait_serving()
        with pytest.raises(ServiceCallError) as info:
            list(client.stream_audio([np.zeros(10)], sample_rate_hz=16000))
    assert info.value.code == "INTERNAL"
    assert "secret" not in info.value.message
    assert "reference" in info.value.message
    ref = info.value.message.split("reference ")[1].split(" ")[0]
    logged = [r for r in caplog.records if getattr(r, "ref", None) == ref]
    assert logged, "the traceback was not logged under the reference given to the client"
    assert "secret internal detail" in str(logged[0].exc_info[1])
    assert audio_task.live == 0


def test_process_recording_reads_other_event_formats(served, data_root):
    _, client = served
    path = data_root / "events" / "formats" / "sample.aedat4"
    with pytest.raises(ServiceCallError) as info:
        client.process_file(path)
    # Read and recognised (320 x 240), then refused for the 34 x 34 model.
    assert info.value.code == "INVALID_ARGUMENT"
    assert "[320, 240, 2]" in info.value.message
    assert "[34, 34, 2]" in info.value.message


def test_models_can_run_on_compute_threads(start_server, audio_task, event_task, wait_until):
    from eventsp.services.config import ServerConfig

    running = start_server(ServerConfig(compute_threads=2), [audio_task, event_task])
    with Client(running.address) as client:
        client.wait_serving()
        chunks = [np.full(800, 0.5 if i % 2 else 0.01, np.float32) for i in range(6)]
        responses = list(client.stream_audio(chunks, sample_rate_hz=16000))
        assert [len(r.keywords) for r in responses[:6]] == [0, 1, 0, 1, 0, 1]
        assert responses[-1].predictions[0].final
        packets = [_events([1, 2, 3], [1, 0, 1])]
        events = list(client.stream_events(packets, sensor_size=(34, 34, 2)))
        assert events[-1].predictions[0].label == "on"
    assert wait_until(lambda: audio_task.live == 0 and event_task.live == 0)
