"""Serializers: what turns an item into a message's bytes and back.

A serializer is any object with ``dumps(obj)``, returning a bytes-like
object, and ``loads(data)``, returning the item.  Classes with static
methods (as ipcqueue's are) work as they are, and so do instances.  A
queue resolves its serializer once, when it is built; see
:func:`resolve`.

========== ============================ ===================================
name       class                        bytes on the wire
========== ============================ ===================================
``pickle`` :class:`PickleSerializer`    pickle, protocol 1 unless chosen
``msgpack````:class:`MsgpackSerializer`` MessagePack
``json``   :class:`JsonSerializer`      UTF-8 JSON (orjson)
``raw``    :class:`RawSerializer`       the buffer as it is; bytes out
========== ============================ ===================================
"""

import dataclasses
import pickle
import re
import struct

import msgpack
import orjson

from ipcq._common import KIND_OTHER, KIND_PICKLE, KIND_RAW, Codec, DecodeError

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


class PickleSerializer:
    """Python objects through :mod:`pickle`.

    *protocol* defaults to 1, which ipcqueue peers write and every Python
    reads; ``put(..., pickle_protocol=N)`` overrides it for one message.
    Unpickling runs code chosen by whoever wrote the message: use pickle
    only on queues that only trusted users can write to.
    """

    def __init__(self, protocol=1):
        if not isinstance(protocol, int) or isinstance(protocol, bool):
            raise TypeError(
                f"pickle protocol must be an int, not {type(protocol).__name__}"
            )
        if protocol > pickle.HIGHEST_PROTOCOL:
            raise ValueError(
                f"pickle protocol {protocol} is above the highest this Python "
                f"supports, {pickle.HIGHEST_PROTOCOL}"
            )
        self.protocol = protocol

    def dumps(self, obj):
        return pickle.dumps(obj, self.protocol)

    @staticmethod
    def loads(data):
        return pickle.loads(data)

    def __repr__(self):
        return f"PickleSerializer(protocol={self.protocol})"


class MsgpackSerializer:
    """MessagePack: maps, arrays, strings, numbers, bytes.

    Arrays decode as lists and strings as str, which is what a C, Go or
    Rust peer's msgpack library produces and reads.
    """

    @staticmethod
    def dumps(obj):
        return msgpack.packb(obj, use_bin_type=True)

    @staticmethod
    def loads(data):
        return msgpack.unpackb(data, raw=False, strict_map_key=False)

    def __repr__(self):
        return "MsgpackSerializer()"


class JsonSerializer:
    """JSON as UTF-8 bytes, through orjson."""

    @staticmethod
    def dumps(obj):
        return orjson.dumps(obj)

    @staticmethod
    def loads(data):
        return orjson.loads(data)

    def __repr__(self):
        return "JsonSerializer()"


class RawSerializer:
    """Bytes as they are.

    ``put`` takes any object with the buffer protocol (bytes, bytearray,
    memoryview, a contiguous array) and hands its memory to the system
    call without copying it; anything else is a TypeError.  ``get``
    returns bytes.
    """

    @staticmethod
    def dumps(obj):
        return memoryview(obj)

    @staticmethod
    def loads(data):
        return bytes(data)

    def __repr__(self):
        return "RawSerializer()"


SERIALIZERS = {
    "pickle": PickleSerializer,
    "msgpack": MsgpackSerializer,
    "json": JsonSerializer,
    "raw": RawSerializer,
}


def resolve(serializer):
    """Return the :class:`Codec` a queue uses for *serializer*.

    *serializer* is None (pickle, protocol 1), a name from
    :data:`SERIALIZERS`, or an object or class with ``dumps`` and
    ``loads``.  An unknown name is a ValueError that lists the valid ones.
    """
    if serializer is None:
        serializer = "pickle"
    if isinstance(serializer, str):
        try:
            serializer = SERIALIZERS[serializer]()
        except KeyError:
            names = ", ".join(repr(name) for name in SERIALIZERS)
            raise ValueError(
                f"unknown serializer {serializer!r}; valid names: {names}"
            ) from None
    elif isinstance(serializer, type) and serializer in (
        PickleSerializer,
        RawSerializer,
    ):
        serializer = serializer()

    for method in ("dumps", "loads"):
        if not callable(getattr(serializer, method, None)):
            raise TypeError(
                f"a serializer needs callable dumps() and loads(); "
                f"{serializer!r} has no {method}()"
            )

    if type(serializer) is PickleSerializer:
        return Codec(serializer, KIND_PICKLE, serializer.protocol)
    if type(serializer) is RawSerializer:
        return Codec(serializer, KIND_RAW)
    return Codec(serializer, KIND_OTHER)
