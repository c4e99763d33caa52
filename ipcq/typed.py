"""Typed messages: one queue carrying several kinds of message.

Each kind has a number, a Python class and a serializer.  Register the
kinds once, wrap a queue opened with ``serializer='raw'``, and every
``get`` returns an object of the class its kind was registered with:

>>> from collections import namedtuple
>>> from ipcq import sysvmq
>>> from ipcq.serializers import StructSerializer
>>> from ipcq.typed import MessageKinds, TypedQueue
>>> Order = namedtuple("Order", "item quantity")
>>> kinds = MessageKinds()
>>> kinds.register(1, Order, StructSerializer("<iq", Order))
MessageKind(number=1, cls=Order, serializer=StructSerializer('<iq', Order))
>>> kinds.register(2, dict, "json")
MessageKind(number=2, cls=dict, serializer=JsonSerializer())
>>> q = sysvmq.Queue(serializer="raw")
>>> tq = TypedQueue(q, kinds)
>>> tq.put({"note": "restock"})
>>> tq.put(Order(7, 3))
>>> tq.get(kind=Order), tq.get()
(Order(item=7, quantity=3), {'note': 'restock'})
>>> q.close()

How the kind travels:

* System V: the kind number is the message type (``mtype``), and the
  message text is the serializer's bytes alone.  A consumer can take one
  kind only (``get(kind=...)``), which the kernel selects.
* POSIX: the message starts with a 4-byte header, the kind number as an
  unsigned 32-bit little-endian integer, then the serializer's bytes.  A
  POSIX queue cannot select messages, so ``get(kind=...)`` is a
  ValueError there; use one queue per kind, or System V.

A C reader of a POSIX queue decodes the header with::

    uint32_t kind = buf[0] | buf[1] << 8 | buf[2] << 16
                    | (uint32_t)buf[3] << 24;
    /* the payload is buf + 4, n - 4 bytes long */

Kind numbers are 1 to 2**32 - 1 on both queue kinds, so one registry
works with either.
"""

import dataclasses
import struct
from collections.abc import Mapping

from ipcq._common import DecodeError
from ipcq.posixmq import Queue as PosixQueue
from ipcq.serializers import (
    JsonSerializer,
    MsgpackSerializer,
    RawSerializer,
    resolve,
)
from ipcq.sysvmq import Queue as SysvQueue

__all__ = [
    "HEADER",
    "KIND_MAX",
    "MessageKind",
    "MessageKinds",
    "TypedDecodeError",
    "TypedQueue",
]

#: The POSIX header: the kind number, unsigned 32-bit little-endian.
HEADER = struct.Struct("<I")

#: The largest kind number (the header's range).
KIND_MAX = 2**32 - 1


class TypedDecodeError(DecodeError):
    """A typed message that could not be turned into its kind's class.

    The kind is unknown, the POSIX header is missing, or the kind's
    serializer failed (its exception is the ``__cause__``).  As for
    :class:`ipcq.DecodeError`, the message has left the queue and
    ``payload`` holds its bytes as received (on POSIX, header included);
    ``kind`` is the kind number, or None if the message was too short to
    have a header.
    """

    def __init__(self, message, payload, kind, priority=None, msg_type=None):
        DecodeError.__init__(self, message, payload, priority, msg_type)
        self.kind = kind


def _is_record(cls):
    """True for a dataclass or a named tuple class."""
    if not isinstance(cls, type):
        return False
    if issubclass(cls, tuple):
        return hasattr(cls, "_fields")
    return dataclasses.is_dataclass(cls)


@dataclasses.dataclass(frozen=True)
class MessageKind:
    """One registered kind: its number, its class and its serializer.

    When the serializer is ``'json'`` or ``'msgpack'`` and the class is a
    dataclass or a named tuple, a message carries a map of the fields by
    name, and a received map is turned back into the class.
    """

    number: int
    cls: type
    serializer: object

    def __repr__(self):
        return (
            f"MessageKind(number={self.number}, cls={self.cls.__name__}, "
            f"serializer={self.serializer!r})"
        )

    @property
    def _as_map(self):
        serializer = self.serializer
        mapping = (JsonSerializer, MsgpackSerializer)
        return _is_record(self.cls) and (
            isinstance(serializer, mapping) or serializer in mapping
        )

    def encode(self, item):
        """Return the payload bytes of *item* (a bytes-like object)."""
        if not isinstance(item, self.cls):
            raise TypeError(
                f"kind {self.number} carries {self.cls.__name__} objects, "
                f"not {type(item).__name__}"
            )
        if self._as_map:
            if isinstance(item, tuple):
                item = item._asdict()
            else:
                item = {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
        return self.serializer.dumps(item)

    def decode(self, payload):
        """Return the object of :attr:`cls` that *payload* encodes.

        A map becomes ``cls(**map)`` and a tuple or list ``cls(*values)``
        when the serializer returns one instead of a ``cls`` object.
        """
        obj = self.serializer.loads(payload)
        cls = self.cls
        if isinstance(obj, cls):
            return obj
        if _is_record(cls):
            if isinstance(obj, Mapping):
                return cls(**obj)
            if isinstance(obj, (tuple, list)):
                return cls(*obj)
        raise TypeError(
            f"{self.serializer!r} decoded a {type(obj).__name__}, not a {cls.__name__}"
        )


class MessageKinds:
    """The registry of the kinds a queue carries.

    ``kinds.register(1, Order, StructSerializer('<iq', Order))`` adds one.
    A class may be registered under several numbers; ``put`` then needs
    the number (``kind=``).  Look kinds up with ``kinds[1]`` or
    ``kinds[Order]``.
    """

    def __init__(self):
        self._by_number = {}
        self._by_class = {}

    def register(self, number, cls, serializer):
        """Register kind *number* for objects of *cls* and return it.

        *number* is 1 to :data:`KIND_MAX`, and not registered yet.
        *serializer* is a name (``'pickle'``, ``'msgpack'``, ``'json'``,
        ``'raw'``) or an object with ``dumps`` and ``loads``, such as a
        :class:`~ipcq.serializers.StructSerializer`.
        """
        if not isinstance(number, int) or isinstance(number, bool):
            raise TypeError(f"a kind number is an int, not {type(number).__name__}")
        if not 1 <= number <= KIND_MAX:
            raise ValueError(f"kind number must be 1 to {KIND_MAX}: {number}")
        if number in self._by_number:
            raise ValueError(
                f"kind {number} is already registered: {self._by_number[number]!r}"
            )
        if not isinstance(cls, type):
            raise TypeError(f"cls must be a class, not {cls!r}")

        kind = MessageKind(number, cls, resolve(serializer).serializer)
        self._by_number[number] = kind
        self._by_class.setdefault(cls, []).append(kind)
        return kind

    def __getitem__(self, key):
        """``kinds[number]`` or ``kinds[cls]``: the registered kind.

        A class registered under several numbers is a LookupError: name
        the number instead.
        """
        if isinstance(key, type):
            kinds = self._by_class.get(key, ())
            if len(kinds) == 1:
                return kinds[0]
            if kinds:
                numbers = ", ".join(str(k.number) for k in kinds)
                raise LookupError(
                    f"{key.__name__} is registered as kinds {numbers}; give the number"
                )
        elif key in self._by_number:
            return self._by_number[key]
        raise KeyError(f"no kind is registered for {key!r}")

    def __contains__(self, key):
        if isinstance(key, type):
            return key in self._by_class
        return key in self._by_number

    def __iter__(self):
        """The kinds, in the order they were registered."""
        return iter(self._by_number.values())

    def __len__(self):
        return len(self._by_number)

    def kind_of(self, item):
        """Return the kind that carries *item*, found by its class.

        The closest registered class in the item's method resolution
        order wins; TypeError if none is registered.
        """
        for cls in type(item).__mro__:
            if cls in self._by_class:
                return self[cls]
        names = ", ".join(k.cls.__name__ for k in self) or "none"
        raise TypeError(
            f"no kind is registered for {type(item).__name__} (registered: {names})"
        )


class TypedQueue:
    """Typed messages on a queue opened with ``serializer='raw'``.

    ``TypedQueue(queue, kinds)`` wraps an :class:`ipcq.posixmq.Queue` or
    :class:`ipcq.sysvmq.Queue`; *kinds* is a :class:`MessageKinds`.  The
    wrapper does not own the queue: close (and unlink) the queue itself.
    The wire format is in the module's documentation.
    """

    def __init__(self, queue, kinds):
        if isinstance(queue, PosixQueue):
            self._posix = True
        elif isinstance(queue, SysvQueue):
            self._posix = False
        else:
            raise TypeError(
                "a TypedQueue wraps an ipcq.posixmq.Queue or an "
                f"ipcq.sysvmq.Queue, not {type(queue).__name__}"
            )
        if not isinstance(queue.serializer, RawSerializer):
            raise ValueError(
                "typed messages need a queue opened with serializer='raw', "
                f"not {queue.serializer!r}: the kinds do the encoding"
            )
        if not isinstance(kinds, MessageKinds):
            raise TypeError(f"kinds must be a MessageKinds, not {type(kinds).__name__}")
        self._queue = queue
        self._kinds = kinds

    @property
    def queue(self):
        """The wrapped queue."""
        return self._queue

    @property
    def kinds(self):
        """The :class:`MessageKinds` registry."""
        return self._kinds

    def __repr__(self):
        return f"<ipcq.typed.TypedQueue {len(self._kinds)} kinds {self._queue!r}>"

    def _resolve(self, item, kind):
        if kind is None:
            return self._kinds.kind_of(item)
        return self._kinds[kind]

    def put(self, item, block=True, timeout=None, *, kind=None, priority=0):
        """Put *item* as a message of its kind.

        The kind is found from the item's class, or given as *kind* (a
        number or a class).  *block* and *timeout* are as for the queue's
        ``put``; *priority* applies to POSIX queues only (on System V the
        message type is the kind).  Nothing is sent if encoding fails.
        """
        message_kind = self._resolve(item, kind)
        payload = message_kind.encode(item)

        if self._posix:
            data = b"".join((HEADER.pack(message_kind.number), payload))
            self._queue.put(data, block, timeout, priority)
            return
        if priority:
            raise ValueError(
                "System V messages have no priority: the message type carries the kind"
            )
        self._queue.put(payload, block, message_kind.number, timeout=timeout)

    def put_nowait(self, item, *, kind=None, priority=0):
        """Put *item* without waiting: ``put(item, block=False)``."""
        self.put(item, False, kind=kind, priority=priority)

    def get(self, block=True, timeout=None, *, kind=None):
        """Remove and return the next item, as an object of its class.

        *kind* (a number or a class) takes the next message of that kind
        only; the kernel selects it on System V.  POSIX queues cannot
        select, so *kind* there is a ValueError.  *block* and *timeout*
        are as for the queue's ``get``.  A message of an unregistered kind
        or one its serializer cannot decode raises
        :class:`TypedDecodeError`.
        """
        return self._get(block, timeout, kind)[0]

    def get_nowait(self, *, kind=None):
        """Get an item without waiting: ``get(block=False)``."""
        return self._get(False, None, kind)[0]

    def get_with_kind(self, block=True, timeout=None, *, kind=None):
        """Like :meth:`get`, but return ``(item, kind number)``."""
        return self._get(block, timeout, kind)

    def _get(self, block, timeout, kind):
        if self._posix:
            if kind is not None:
                raise ValueError(
                    "a POSIX queue cannot select messages by kind: it has no "
                    "message types; use a System V queue, or one POSIX queue "
                    "per kind"
                )
            data, priority = self._queue.get_with_priority(block, timeout)
            if len(data) < HEADER.size:
                raise TypedDecodeError(
                    f"a {len(data)}-byte message is too short for the "
                    f"{HEADER.size}-byte kind header",
                    data,
                    None,
                    priority=priority,
                )
            number = HEADER.unpack_from(data)[0]
            payload = data[HEADER.size :]
            tags = {"priority": priority}
        else:
            msg_type = 0 if kind is None else self._kinds[kind].number
            data, number = self._queue.get_with_type(block, msg_type, timeout)
            payload = data
            tags = {"msg_type": number}

        message_kind = self._kinds._by_number.get(number)
        if message_kind is None:
            raise TypedDecodeError(
                f"message of unregistered kind {number} ({len(payload)}-byte payload)",
                data,
                number,
                **tags,
            )
        try:
            return message_kind.decode(payload), number
        except Exception as exc:
            raise TypedDecodeError(
                f"cannot decode a {len(payload)}-byte message of kind "
                f"{number} ({message_kind.cls.__name__}): {exc!r}",
                data,
                number,
                **tags,
            ) from exc
