from eventsp.v1 import results_pb2 as _results_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordingChunk(_message.Message):
    __slots__ = ("model", "format", "filename", "data")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    model: str
    format: str
    filename: str
    data: bytes
    def __init__(self, model: _Optional[str] = ..., format: _Optional[str] = ..., filename: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ProcessRecordingResponse(_message.Message):
    __slots__ = ("model", "predictions", "keywords", "inputs_total", "duration_s")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    model: str
    predictions: _containers.RepeatedCompositeFieldContainer[_results_pb2.Prediction]
    keywords: _containers.RepeatedCompositeFieldContainer[_results_pb2.KeywordEvent]
    inputs_total: int
    duration_s: float
    def __init__(self, model: _Optional[str] = ..., predictions: _Optional[_Iterable[_Union[_results_pb2.Prediction, _Mapping]]] = ..., keywords: _Optional[_Iterable[_Union[_results_pb2.KeywordEvent, _Mapping]]] = ..., inputs_total: _Optional[int] = ..., duration_s: _Optional[float] = ...) -> None: ...
