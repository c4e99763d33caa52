# Stub of the compiled module ipcq._common: exceptions and the codec.
from typing import Any, ClassVar

from typing_extensions import disjoint_base

ERROR: int
KIND_RAW: int
KIND_PICKLE: int
KIND_OTHER: int

class QueueError(OSError):
    ERROR: ClassVar[int]
    INVALID_VALUE: ClassVar[int]
    NO_PERMISSIONS: ClassVar[int]
    NO_SYSTEM_RESOURCES: ClassVar[int]
    INVALID_DESCRIPTOR: ClassVar[int]
    INTERRUPTED: ClassVar[int]
    TOO_BIG_MESSAGE: ClassVar[int]
    TIMEOUT: ClassVar[int]
    DOES_NOT_EXIST: ClassVar[int]
    msg: str
    # QueueError(errno, msg) returns the subclass matching errno.
    def __new__(cls, errno: int = -1, msg: str | None = None) -> QueueError: ...
    def __init__(self, errno: int = -1, msg: str | None = None) -> None: ...

class QueueNotFoundError(QueueError, FileNotFoundError): ...
class QueueExistsError(QueueError, FileExistsError): ...
class QueuePermissionError(QueueError, PermissionError): ...
class QueueInterruptedError(QueueError, InterruptedError): ...
class QueueValueError(QueueError, ValueError): ...
class QueueTimeoutError(QueueError, TimeoutError): ...

class DecodeError(ValueError):
    payload: bytes
    priority: int | None
    msg_type: int | None
    # Set by get_many(): the items received before the undecodable one.
    items: list[Any]
    def __init__(
        self,
        message: str,
        payload: bytes,
        priority: int | None = None,
        msg_type: int | None = None,
    ) -> None: ...

class PickleSecurityWarning(UserWarning): ...

def read_limit(path: str) -> int | None: ...

# A compiled class: nothing can derive from it and another base too.
@disjoint_base
class Codec:
    @property
    def serializer(self) -> Any: ...
    @property
    def kind(self) -> int: ...
    @property
    def unpickles(self) -> bool: ...
    def __init__(
        self, serializer: Any, kind: int, protocol: int = -1, unpickles: bool = False
    ) -> None: ...
