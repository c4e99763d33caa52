# Stub of the compiled module ipcq._posix, the engine of ipcq.posixmq.
from collections.abc import Iterable
from typing import Any, TypedDict, TypeVar

from _typeshed import WriteableBuffer
from typing_extensions import disjoint_base

from ipcq._common import PickleSecurityWarning as PickleSecurityWarning
from ipcq._common import QueueError as QueueError
from ipcq.serializers import _SerializerSpec

__all__ = ["Queue", "QueueError", "unlink", "PRIORITY_MAX"]

_Q = TypeVar("_Q", bound=Queue)

PRIORITY_MAX: int

class _Attributes(TypedDict):
    size: int
    max_size: int
    max_msgbytes: int

def unlink(name: str) -> None: ...

# A compiled class: nothing can derive from it and another base too.
@disjoint_base
class Queue:
    def __init__(
        self,
        name: str,
        maxsize: int = 10,
        maxmsgsize: int = 1024,
        serializer: _SerializerSpec = None,
        *,
        mode: int = 0o600,
        create: bool = True,
        exclusive: bool = False,
        read: bool = True,
        write: bool = True,
        retry_interrupted: bool = False,
    ) -> None: ...
    def __enter__(self: _Q) -> _Q: ...
    def __exit__(self, *exc_info: object) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def maxsize(self) -> int: ...
    @property
    def maxmsgsize(self) -> int: ...
    @property
    def serializer(self) -> Any: ...
    @property
    def closed(self) -> bool: ...
    def put(
        self,
        item: Any,
        block: bool = True,
        timeout: float | None = None,
        priority: int = 0,
        pickle_protocol: int | None = None,
    ) -> None: ...
    def put_nowait(
        self, item: Any, priority: int = 0, pickle_protocol: int | None = None
    ) -> None: ...
    def put_many(
        self,
        items: Iterable[Any],
        block: bool = True,
        timeout: float | None = None,
        priority: int = 0,
        pickle_protocol: int | None = None,
    ) -> int: ...
    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...
    def get_nowait(self) -> Any: ...
    def get_with_priority(
        self, block: bool = True, timeout: float | None = None
    ) -> tuple[Any, int]: ...
    def get_many(
        self, max_items: int, block: bool = True, timeout: float | None = None
    ) -> list[Any]: ...
    def get_into(
        self,
        buffer: WriteableBuffer,
        block: bool = True,
        timeout: float | None = None,
    ) -> tuple[int, int]: ...
    def qattr(self) -> _Attributes: ...
    def qsize(self) -> int: ...
    def empty(self) -> bool: ...
    def full(self) -> bool: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...
    def unlink(self) -> None: ...
