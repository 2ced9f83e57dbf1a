from eventsp.v1 import results_pb2 as _results_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SampleFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAMPLE_FORMAT_UNSPECIFIED: _ClassVar[SampleFormat]
    PCM_S16LE: _ClassVar[SampleFormat]
    PCM_F32LE: _ClassVar[SampleFormat]
SAMPLE_FORMAT_UNSPECIFIED: SampleFormat
PCM_S16LE: SampleFormat
PCM_F32LE: SampleFormat

class StreamAudioRequest(_message.Message):
    __slots__ = ("model", "task", "sample_rate_hz", "sample_format", "pcm")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    PCM_FIELD_NUMBER: _ClassVar[int]
    model: str
    task: str
    sample_rate_hz: int
    sample_format: SampleFormat
    pcm: bytes
    def __init__(self, model: _Optional[str] = ..., task: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., sample_format: _Optional[_Union[SampleFormat, str]] = ..., pcm: _Optional[bytes] = ...) -> None: ...

class SeparatedAudio(_message.Message):
    __slots__ = ("sample_rate_hz", "tracks")
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    sample_rate_hz: int
    tracks: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, sample_rate_hz: _Optional[int] = ..., tracks: _Optional[_Iterable[bytes]] = ...) -> None: ...

class StreamAudioResponse(_message.Message):
    __slots__ = ("sequence", "keywords", "separated", "latency_ms", "samples_total", "predictions")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    SEPARATED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    keywords: _containers.RepeatedCompositeFieldContainer[_results_pb2.KeywordEvent]
    separated: SeparatedAudio
    latency_ms: float
    samples_total: int
    predictions: _containers.RepeatedCompositeFieldContainer[_results_pb2.Prediction]
    def __init__(self, sequence: _Optional[int] = ..., keywords: _Optional[_Iterable[_Union[_results_pb2.KeywordEvent, _Mapping]]] = ..., separated: _Optional[_Union[SeparatedAudio, _Mapping]] = ..., latency_ms: _Optional[float] = ..., samples_total: _Optional[int] = ..., predictions: _Optional[_Iterable[_Union[_results_pb2.Prediction, _Mapping]]] = ...) -> None: ...
