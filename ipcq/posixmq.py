"""POSIX message queues: named ``/name``, with priorities and a descriptor.

>>> from ipcq import posixmq
>>> with posixmq.Queue("/ipcq-doc") as q:
...     q.put("low", priority=1)
...     q.put("high", priority=9)
...     q.get(), q.get()
('high', 'low')
>>> posixmq.unlink("/ipcq-doc")
"""

from ipcq._common import QueueError
from ipcq._posix import PRIORITY_MAX, Queue, unlink

__all__ = ["PRIORITY_MAX", "Queue", "QueueError", "unlink"]
