from eventsp.v1 import results_pb2 as _results_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventLayout(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_LAYOUT_UNSPECIFIED: _ClassVar[EventLayout]
    XYTP_PACKED_V1: _ClassVar[EventLayout]
EVENT_LAYOUT_UNSPECIFIED: EventLayout
XYTP_PACKED_V1: EventLayout

class StreamEventsRequest(_message.Message):
    __slots__ = ("model", "sensor_size", "layout", "events")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SENSOR_SIZE_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    sensor_size: _containers.RepeatedScalarFieldContainer[int]
    layout: EventLayout
    events: bytes
    def __init__(self, model: _Optional[str] = ..., sensor_size: _Optional[_Iterable[int]] = ..., layout: _Optional[_Union[EventLayout, str]] = ..., events: _Optional[bytes] = ...) -> None: ...

class StreamEventsResponse(_message.Message):
    __slots__ = ("sequence", "predictions", "events_total", "events_dropped", "latency_ms")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    predictions: _containers.RepeatedCompositeFieldContainer[_results_pb2.Prediction]
    events_total: int
    events_dropped: int
    latency_ms: float
    def __init__(self, sequence: _Optional[int] = ..., predictions: _Optional[_Iterable[_Union[_results_pb2.Prediction, _Mapping]]] = ..., events_total: _Optional[int] = ..., events_dropped: _Optional[int] = ..., latency_ms: _Optional[float] = ...) -> None: ...
