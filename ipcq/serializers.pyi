# Stub of ipcq.serializers: what a serializer is, and the bundled ones.
from typing import Any, Protocol

from _typeshed import ReadableBuffer
from typing_extensions import TypeAlias

from ipcq._common import Codec
from ipcq._common import DecodeError as DecodeError

__all__ = [
    "DecodeError",
    "JsonSerializer",
    "MsgpackSerializer",
    "PickleSerializer",
    "RawSerializer",
    "SERIALIZERS",
    "StructSerializer",
    "resolve",
]

class _SerializerLike(Protocol):
    # An object (or a class with static methods) with dumps and loads.
    def dumps(self, obj: Any, /) -> ReadableBuffer: ...
    def loads(self, data: bytes, /) -> Any: ...

# What a queue's serializer argument takes: a name, a serializer, None.
_SerializerSpec: TypeAlias = str | _SerializerLike | type[_SerializerLike] | None

class PickleSerializer:
    protocol: int
    def __init__(self, protocol: int = 1) -> None: ...
    def dumps(self, obj: Any) -> bytes: ...
    @staticmethod
    def loads(data: ReadableBuffer) -> Any: ...

class MsgpackSerializer:
    @staticmethod
    def dumps(obj: Any) -> bytes: ...
    @staticmethod
    def loads(data: ReadableBuffer) -> Any: ...

class JsonSerializer:
    @staticmethod
    def dumps(obj: Any) -> bytes: ...
    @staticmethod
    def loads(data: ReadableBuffer | str) -> Any: ...

class RawSerializer:
    @staticmethod
    def dumps(obj: ReadableBuffer) -> memoryview: ...
    @staticmethod
    def loads(data: ReadableBuffer) -> bytes: ...

class StructSerializer:
    format: str
    cls: type[Any] | None
    def __init__(self, format: str | bytes, cls: type[Any] | None = None) -> None: ...
    @property
    def size(self) -> int: ...
    def dumps(self, obj: Any) -> bytes: ...
    def loads(self, data: ReadableBuffer) -> Any: ...

SERIALIZERS: dict[str, type[Any]]

def resolve(serializer: _SerializerSpec) -> Codec: ...
