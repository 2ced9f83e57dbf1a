from eventsp.v1 import audio_pb2 as _audio_pb2
from eventsp.v1 import events_pb2 as _events_pb2
from eventsp.v1 import models_pb2 as _models_pb2
from eventsp.v1 import recording_pb2 as _recording_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GetMetricsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetMetricsResponse(_message.Message):
    __slots__ = ("open_streams", "streams_total", "streams_refused", "chunks_total", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_max_ms", "synops_total", "dense_ops_total", "samples_total", "events_total")
    OPEN_STREAMS_FIELD_NUMBER: _ClassVar[int]
    STREAMS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    STREAMS_REFUSED_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P90_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MAX_MS_FIELD_NUMBER: _ClassVar[int]
    SYNOPS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DENSE_OPS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    open_streams: int
    streams_total: int
    streams_refused: int
    chunks_total: int
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    synops_total: float
    dense_ops_total: float
    samples_total: int
    events_total: int
    def __init__(self, open_streams: _Optional[int] = ..., streams_total: _Optional[int] = ..., streams_refused: _Optional[int] = ..., chunks_total: _Optional[int] = ..., latency_p50_ms: _Optional[float] = ..., latency_p90_ms: _Optional[float] = ..., latency_p99_ms: _Optional[float] = ..., latency_max_ms: _Optional[float] = ..., synops_total: _Optional[float] = ..., dense_ops_total: _Optional[float] = ..., samples_total: _Optional[int] = ..., events_total: _Optional[int] = ...) -> None: ...
