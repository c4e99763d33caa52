"""System V message queues: numeric keys and typed messages.

>>> from ipcq import sysvmq
>>> q = sysvmq.Queue()          # a new private queue
>>> q.put("order", msg_type=2)
>>> q.put("note", msg_type=1)
>>> q.get(msg_type=2), q.get()
('order', 'note')
>>> q.close()                   # removes the queue from the system
"""

from ipcq._common import QueueError
from ipcq._sysv import Queue, ftok, remove

__all__ = ["Queue", "QueueError", "ftok", "remove"]
