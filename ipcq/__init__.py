"""ipcq: the kernel's POSIX and System V message queues for Python.

``ipcq.posixmq.Queue`` and ``ipcq.sysvmq.Queue`` follow ipcqueue's API
(``from ipcq import posixmq, sysvmq``); ``ipcq.serializers`` decides the
bytes each message carries.
"""

from ipcq import posixmq, serializers, sysvmq
from ipcq._common import (
    DecodeError,
    PickleSecurityWarning,
    QueueError,
    QueueExistsError,
    QueueInterruptedError,
    QueueNotFoundError,
    QueuePermissionError,
    QueueTimeoutError,
    QueueValueError,
)

__version__ = "0.1.0"

__all__ = [
    "DecodeError",
    "PickleSecurityWarning",
    "QueueError",
    "QueueExistsError",
    "QueueInterruptedError",
    "QueueNotFoundError",
    "QueuePermissionError",
    "QueueTimeoutError",
    "QueueValueError",
    "posixmq",
    "serializers",
    "sysvmq",
]
