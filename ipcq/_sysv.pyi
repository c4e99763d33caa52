# Stub of the compiled module ipcq._sysv, the engine of ipcq.sysvmq.
from collections.abc import Iterable
from typing import Any, TypedDict, TypeVar

from _typeshed import StrOrBytesPath, WriteableBuffer
from typing_extensions import disjoint_base

from ipcq._common import PickleSecurityWarning as PickleSecurityWarning
from ipcq._common import QueueError as QueueError
from ipcq.serializers import _SerializerSpec

__all__ = ["Queue", "QueueError", "ftok", "remove"]

_Q = TypeVar("_Q", bound=Queue)

class _Attributes(TypedDict):
    size: int
    max_bytes: int
    bytes: int
    mode: int
    uid: int
    gid: int
    cuid: int
    cgid: int
    last_send_pid: int
    last_receive_pid: int
    last_send_time: int
    last_receive_time: int
    last_change_time: int

def ftok(path: StrOrBytesPath, proj_id: int) -> int: ...
def remove(msqid: int) -> None: ...

# A compiled class: nothing can derive from it and another base too.
@disjoint_base
class Queue:
    def __init__(
        self,
        key: int | None = None,
        max_bytes: int | None = None,
        serializer: _SerializerSpec = None,
        *,
        mode: int = 0o600,
        create: bool = True,
        exclusive: bool = False,
        retry_interrupted: bool = False,
    ) -> None: ...
    def __enter__(self: _Q) -> _Q: ...
    def __exit__(self, *exc_info: object) -> None: ...
    @property
    def key(self) -> int: ...
    @property
    def id(self) -> int: ...
    @property
    def serializer(self) -> Any: ...
    @property
    def closed(self) -> bool: ...
    @property
    def max_bytes(self) -> int: ...
    @max_bytes.setter
    def max_bytes(self, value: int) -> None: ...
    def put(
        self,
        item: Any,
        block: bool = True,
        msg_type: int = 1,
        pickle_protocol: int | None = None,
        timeout: float | None = None,
    ) -> None: ...
    def put_nowait(
        self, item: Any, msg_type: int = 1, pickle_protocol: int | None = None
    ) -> None: ...
    def put_many(
        self,
        items: Iterable[Any],
        block: bool = True,
        msg_type: int = 1,
        pickle_protocol: int | None = None,
        timeout: float | None = None,
    ) -> int: ...
    def get(
        self, block: bool = True, msg_type: int = 0, timeout: float | None = None
    ) -> Any: ...
    def get_nowait(self, msg_type: int = 0) -> Any: ...
    def get_with_type(
        self, block: bool = True, msg_type: int = 0, timeout: float | None = None
    ) -> tuple[Any, int]: ...
    def get_many(
        self,
        max_items: int,
        block: bool = True,
        msg_type: int = 0,
        timeout: float | None = None,
    ) -> list[Any]: ...
    def get_into(
        self,
        buffer: WriteableBuffer,
        block: bool = True,
        msg_type: int = 0,
        timeout: float | None = None,
    ) -> tuple[int, int]: ...
    def qattr(self) -> _Attributes: ...
    def qsize(self) -> int: ...
    def empty(self) -> bool: ...
    def close(self) -> None: ...
    def detach(self) -> None: ...
