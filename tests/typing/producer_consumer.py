"""Sample user code for mypy: a job queue over both kinds of queue.

mypy --strict checks this file against ipcq's stubs; it is not a test
that pytest runs.
"""

from __future__ import annotations

import dataclasses
import queue
import warnings
from typing import Any

import ipcq
from ipcq import posixmq, sysvmq
from ipcq.serializers import (
    SERIALIZERS,
    JsonSerializer,
    PickleSerializer,
    RawSerializer,
    StructSerializer,
    resolve,
)


@dataclasses.dataclass
class Job:
    name: str
    attempts: int = 0


class UpperSerializer:
    """A serializer of the user's own: any object with dumps and loads."""

    def dumps(self, obj: str) -> bytes:
        return obj.upper().encode()

    def loads(self, data: bytes) -> str:
        return data.decode()


class StaticSerializer:
    """ipcqueue style: a class with static methods."""

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return repr(obj).encode()

    @staticmethod
    def loads(data: bytes) -> str:
        return data.decode()


def posix_jobs(name: str) -> list[Job]:
    done: list[Job] = []
    with posixmq.Queue(name, 8, 512, PickleSerializer(protocol=5)) as q:
        q.put(Job("build"), priority=3)
        q.put_nowait(Job("test"), priority=posixmq.PRIORITY_MAX)
        sent: int = q.put_many([Job("a"), Job("b")], block=False)
        assert sent <= 2
        item, priority = q.get_with_priority(timeout=0.5)
        assert isinstance(item, Job) and priority >= 0
        done.append(item)
        done.extend(q.get_many(10, block=False))
        attrs = q.qattr()
        total: int = attrs["size"] + attrs["max_size"] + attrs["max_msgbytes"]
        assert total >= 0
        fd: int = q.fileno()
        assert fd >= 0 and not q.full() and q.empty() == (q.qsize() == 0)
        print(q.name, q.maxsize, q.maxmsgsize, q.serializer, q.closed)
    posixmq.unlink(name)
    return done


def sysv_orders() -> None:
    key = sysvmq.ftok("/", 42)
    q = sysvmq.Queue(key, 4096, "msgpack", mode=0o600, exclusive=False)
    try:
        q.put({"order": 1}, msg_type=2)
        q.put_nowait({"note": "x"})
        order, msg_type = q.get_with_type(msg_type=2, timeout=1.0)
        print(order, msg_type + 1, q.get(msg_type=-5), q.qattr()["last_send_pid"])
        q.max_bytes = q.max_bytes // 2
        buffer = bytearray(8192)
        q.put(b"raw bytes", block=False)
        try:
            nbytes, kind = q.get_into(buffer, block=False)
            print(bytes(buffer[:nbytes]), kind)
        except queue.Empty:
            pass
    finally:
        q.close()
    private = sysvmq.Queue(serializer=UpperSerializer())
    private.put("shout")
    word: Any = private.get()
    print(word, private.id, private.key)
    sysvmq.remove(private.id)
    private.detach()


def errors(name: str) -> None:
    try:
        posixmq.Queue(name, create=False)
    except ipcq.QueueNotFoundError as exc:
        assert exc.errno == ipcq.QueueError.DOES_NOT_EXIST
    except FileNotFoundError:
        pass
    except ipcq.QueueError as exc:
        print(exc.errno, exc.msg, exc.strerror)
    raw = sysvmq.Queue(serializer=RawSerializer)
    try:
        raw.get(block=False)
    except queue.Empty:
        pass
    except ipcq.DecodeError as exc:
        print(exc.payload, exc.priority, exc.msg_type, len(exc.items))
    finally:
        raw.close()
    error = ipcq.QueueError(ipcq.QueueError.TIMEOUT, "too slow")
    assert isinstance(error, OSError)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ipcq.PickleSecurityWarning)


def serializers() -> None:
    record = StructSerializer("<iq")
    print(record.size, record.format, record.loads(record.dumps((1, 2))))
    print(JsonSerializer.loads(JsonSerializer.dumps({"a": 1})))
    print(sorted(SERIALIZERS), resolve("json").kind, resolve(None).serializer)
    for spec in ("raw", StaticSerializer, UpperSerializer(), None):
        q = sysvmq.Queue(serializer=spec)
        q.close()
