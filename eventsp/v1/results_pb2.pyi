from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class KeywordEvent(_message.Message):
    __slots__ = ("label", "score", "time_s", "end_s")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TIME_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    time_s: float
    end_s: float
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ..., time_s: _Optional[float] = ..., end_s: _Optional[float] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("label", "index", "scores", "time_s", "final")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    TIME_S_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    label: str
    index: int
    scores: _containers.RepeatedScalarFieldContainer[float]
    time_s: float
    final: bool
    def __init__(self, label: _Optional[str] = ..., index: _Optional[int] = ..., scores: _Optional[_Iterable[float]] = ..., time_s: _Optional[float] = ..., final: _Optional[bool] = ...) -> None: ...
