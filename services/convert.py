"""Converters between protobuf messages and the numpy data the tasks take.

Servicers hold no logic: they call these to validate and decode requests (raising
``ValueError`` with a message for the client, which :mod:`eventsp.services.errors` maps to
INVALID_ARGUMENT) and to pack task results into responses.
"""

from __future__ import annotations

import numpy as np

from eventsp.clients.wire import decode_pcm, unpack_events
from eventsp.events.contract import OrderState, order_packet
from eventsp.services.tasks import EVENT_DTYPE, KeywordEvent, Prediction, StepResult, TaskInfo
from eventsp.v1 import (
    audio_pb2,
    events_pb2,
    models_pb2,
    recording_pb2,
    results_pb2,
)

# SampleFormat numbers -> names, looked up once (the enum wrapper's Name() is slow per chunk).
_FORMAT_NAMES = {number: name for name, number in audio_pb2.SampleFormat.items()}


def model_info(info: TaskInfo) -> models_pb2.ModelInfo:
    return models_pb2.ModelInfo(
        name=info.name,
        task=info.task,
        format_version=info.format_version,
        version=info.version,
        sample_rate_hz=info.sample_rate_hz,
        sensor_size=list(info.sensor_size),
        labels=list(info.labels),
        parameter_bytes=info.parameter_bytes,
    )


def audio_samples(
    request: audio_pb2.StreamAudioRequest, info: TaskInfo, first: audio_pb2.StreamAudioRequest
) -> np.ndarray:
    """Validate one StreamAudio request against the model and the stream's first request."""
    if request.sample_rate_hz != info.sample_rate_hz:
        raise ValueError(
            f"sample_rate_hz is {request.sample_rate_hz}; model {info.name!r} takes "
            f"{info.sample_rate_hz} Hz; resample the audio (eventsp.audio) before sending"
        )
    if request.sample_format != first.sample_format:
        raise ValueError(
            f"sample_format changed within the stream from "
            f"{audio_pb2.SampleFormat.Name(first.sample_format)} to "
            f"{audio_pb2.SampleFormat.Name(request.sample_format)}; keep one format per stream"
        )
    if request.sample_format == audio_pb2.SAMPLE_FORMAT_UNSPECIFIED:
        raise ValueError("sample_format is unspecified; set PCM_S16LE or PCM_F32LE")
    return decode_pcm(
        request.pcm, _FORMAT_NAMES.get(request.sample_format, str(request.sample_format))
    )


def event_records(
    request: events_pb2.StreamEventsRequest, info: TaskInfo, order: OrderState
) -> tuple[np.ndarray, OrderState]:
    """Decode and validate one packet -> (events in time order, new order state).

    The time-order policy is :func:`eventsp.events.contract.order_packet`'s: sorted within the
    packet; events earlier than the stream's watermark are dropped and counted in the state.
    """
    sensor = tuple(request.sensor_size)
    if sensor != tuple(info.sensor_size):
        raise ValueError(
            f"sensor_size is {list(sensor)}; model {info.name!r} takes "
            f"{list(info.sensor_size)} (width, height, polarities); crop or downsample first"
        )
    if request.layout != events_pb2.XYTP_PACKED_V1:
        raise ValueError(
            f"layout is {events_pb2.EventLayout.Name(request.layout)}; set XYTP_PACKED_V1"
        )
    wire = unpack_events(request.events)
    width, height, polarities = info.sensor_size
    if wire.size:
        for name, limit in (("x", width), ("y", height), ("p", polarities)):
            column = wire[name]
            if int(column.max()) >= limit:
                bad = int(np.argmax(column >= limit))
                raise ValueError(
                    f"event {bad} has {name}={int(column[bad])}, outside the sensor "
                    f"({name} < {limit} for sensor_size {list(info.sensor_size)})"
                )
        if int(wire["t"].min()) < 0:
            bad = int(np.argmin(wire["t"]))
            raise ValueError(
                f"event {bad} has t={int(wire['t'][bad])} us; times must be >= 0 microseconds"
            )
    events = np.empty(wire.size, dtype=EVENT_DTYPE)
    for name in ("x", "y", "t", "p"):
        events[name] = wire[name]
    return order_packet(events, order)


def prediction(p: Prediction) -> results_pb2.Prediction:
    return results_pb2.Prediction(
        label=p.label, index=p.index, scores=list(p.scores), time_s=p.time_s, final=p.final
    )


def keyword(k: KeywordEvent) -> results_pb2.KeywordEvent:
    end_s = k.time_s if k.end_s is None else k.end_s
    return results_pb2.KeywordEvent(label=k.label, score=k.score, time_s=k.time_s, end_s=end_s)


def audio_response(
    sequence: int, result: StepResult, info: TaskInfo, latency_ms: float, samples_total: int
) -> audio_pb2.StreamAudioResponse:
    if not (result.keywords or result.predictions) and result.tracks is None:
        # Most chunks answer only their latency: skip the empty repeated fields.
        return audio_pb2.StreamAudioResponse(
            sequence=sequence, latency_ms=latency_ms, samples_total=samples_total
        )
    response = audio_pb2.StreamAudioResponse(
        sequence=sequence,
        keywords=[keyword(k) for k in result.keywords],
        predictions=[prediction(p) for p in result.predictions],
        latency_ms=latency_ms,
        samples_total=samples_total,
    )
    if result.tracks is not None:
        tracks = np.asarray(result.tracks, dtype="<f4")
        response.separated.sample_rate_hz = info.sample_rate_hz
        response.separated.tracks.extend(track.tobytes() for track in tracks)
    return response


def events_response(
    sequence: int, result: StepResult, latency_ms: float, total: int, dropped: int
) -> events_pb2.StreamEventsResponse:
    return events_pb2.StreamEventsResponse(
        sequence=sequence,
        predictions=[prediction(p) for p in result.predictions],
        events_total=total,
        events_dropped=dropped,
        latency_ms=latency_ms,
    )


def recording_response(
    name: str, results: list[StepResult], inputs_total: int, duration_s: float
) -> recording_pb2.ProcessRecordingResponse:
    return recording_pb2.ProcessRecordingResponse(
        model=name,
        predictions=[prediction(p) for r in results for p in r.predictions],
        keywords=[keyword(k) for r in results for k in r.keywords],
        inputs_total=inputs_total,
        duration_s=duration_s,
    )
