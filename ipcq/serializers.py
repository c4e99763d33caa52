"""Serializers: what turns an item into a message's bytes and back.

A serializer is any object with ``dumps(obj)``, returning a bytes-like
object, and ``loads(data)``, returning the item.  Classes with static
methods (as ipcqueue's are) work as they are, and so do instances.  A
queue resolves its serializer once, when it is built; see
:func:`resolve`.

=========== ============================= ==================================
name        class                         bytes on the wire
=========== ============================= ==================================
``pickle``  :class:`PickleSerializer`     pickle, protocol 1 unless chosen
``msgpack`` :class:`MsgpackSerializer`    MessagePack
``json``    :class:`JsonSerializer`       UTF-8 JSON (orjson)
``raw``     :class:`RawSerializer`        the buffer as it is; bytes out
(none)      :class:`StructSerializer`     a C struct's exact bytes
=========== ============================= ==================================
"""

import dataclasses
import pickle
import re
import struct

import msgpack
import orjson

from ipcq import _pickle
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

    The bytes are those of :func:`pickle.dumps`; trees of None, bool,
    int, float, str, list, tuple and dict are written and read by ipcq
    itself, without the pickle module's per-call setup (about a quarter
    of its instructions for a small object), and everything else by
    :mod:`pickle`.
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
        return _pickle.dumps(obj, self.protocol)

    @staticmethod
    def loads(data):
        return _pickle.loads(data)

    def __repr__(self):
        return f"PickleSerializer(protocol={self.protocol})"


# Idle msgpack Packers, and the largest item after which one is kept.
_packers = []
_packers_take = _packers.pop
_packers_give = _packers.append
_PACKER_KEEP = 1 << 20


class MsgpackSerializer:
    """MessagePack: maps, arrays, strings, numbers, bytes.

    Arrays decode as lists and strings as str, which is what a C, Go or
    Rust peer's msgpack library produces and reads.
    """

    @staticmethod
    def dumps(obj):
        # msgpack.packb builds a Packer, with its buffer, on every call:
        # two thirds of its time for a small item.  A Packer is reused
        # instead, taken from a pool so that no two threads (nor a nested
        # call, from a finalizer, say) ever share one; a failed call drops
        # its Packer, and one that grew for a large item is let go.
        try:
            packer = _packers_take()
        except IndexError:
            packer = msgpack.Packer(use_bin_type=True)
        data = packer.pack(obj)
        if len(data) <= _PACKER_KEEP:
            _packers_give(packer)
        return data

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


# One field of a struct format: an optional count, then a code.  's' and
# 'p' with their count make one bytes field; 'x' is padding, no field.
_FIELD = re.compile(r"(\d*)([xcbB?hHiIlLqQnNefdspP])")
_INTEGER_CODES = frozenset("bBhHiIlLqQnNP")
_FLOAT_CODES = frozenset("efd")


class StructSerializer:
    """Fixed-layout records, byte for byte the C struct they mirror.

    *format* is in the :mod:`struct` module's language: ``'<iqd8s'`` is a
    packed little-endian ``int32_t, int64_t, double, char[8]``.  With the
    native ``'@'`` prefix (the default), fields are aligned as the C
    compiler aligns them, but the struct's tail padding is not added: end
    the format with a zero-count code of the widest member (``'@qi0q'``
    is ``struct { int64_t a; int32_t b; }``, 16 bytes) so that
    :attr:`size` equals ``sizeof``.

    Without *cls*, ``dumps`` takes a tuple (or list) with one value per
    field and ``loads`` returns a tuple.  With *cls*, a dataclass or a
    named tuple class whose fields are the struct's in order, ``dumps``
    takes instances of it and ``loads`` returns one.

    ``dumps`` refuses, before anything is sent, the wrong number of values
    (TypeError), a value of the wrong type (TypeError), a number out of
    its field's range or a byte string longer than its ``char[N]`` field
    (ValueError; shorter ones are padded with NUL bytes, as
    :func:`struct.pack` does).  ``loads`` raises ValueError when a message
    is not exactly :attr:`size` bytes long, which a queue's ``get``
    reports as :class:`DecodeError` with the message's bytes.
    """

    def __init__(self, format, cls=None):
        if isinstance(format, bytes):
            format = format.decode("ascii")
        if not isinstance(format, str):
            kind = type(format).__name__
            raise TypeError(f"format must be a str such as '<iq', not {kind}")
        try:
            self._struct = struct.Struct(format)
        except struct.error as exc:
            message = f"invalid struct format {format!r}: {exc}"
            raise ValueError(message) from None

        order = format[:1] if format[:1] in "@=<>!" else ""
        self._codes = []
        for count, code in _FIELD.findall(format):
            if code == "x":
                continue
            if code in "sp":
                length = int(count or 1)
                self._codes.append((code, f"{order}{length}{code}", length))
            else:
                self._codes.extend([(code, order + code, 0)] * int(count or 1))
        # The struct module is the authority on how many values it packs.
        self._arity = len(self._struct.unpack(bytes(self._struct.size)))
        if len(self._codes) != self._arity:
            raise ValueError(f"cannot read the fields of format {format!r}")
        self._limited = [
            (i, length - (code == "p"))
            for i, (code, _, length) in enumerate(self._codes)
            if code in "sp"
        ]

        self._names = None
        self._is_tuple = False
        if cls is not None:
            self._names = self._field_names(cls)
            if len(self._names) != self._arity:
                raise ValueError(
                    f"{cls.__name__} has {len(self._names)} fields but format "
                    f"{format!r} has {self._arity}"
                )
        self.format = format
        self.cls = cls

    def _field_names(self, cls):
        if isinstance(cls, type) and issubclass(cls, tuple):
            if hasattr(cls, "_fields"):
                self._is_tuple = True
                return list(cls._fields)
        elif isinstance(cls, type) and dataclasses.is_dataclass(cls):
            fields = dataclasses.fields(cls)
            if not all(f.init for f in fields):
                raise ValueError(
                    f"every field of {cls.__name__} must be an __init__ "
                    "argument, so that a record can be rebuilt from the struct"
                )
            return [f.name for f in fields]
        message = f"cls must be a dataclass or a named tuple class: {cls!r}"
        raise TypeError(message)

    @property
    def size(self):
        """The size of one record in bytes (``sizeof`` of the C struct)."""
        return self._struct.size

    def dumps(self, obj):
        """Return the record's bytes, or raise TypeError or ValueError."""
        cls = self.cls
        if cls is None:
            if not isinstance(obj, (tuple, list)):
                raise TypeError(
                    f"{self!r} packs a tuple of {self._arity} values, "
                    f"not {type(obj).__name__}"
                )
            values = obj
        elif not isinstance(obj, cls):
            message = f"{self!r} packs {cls.__name__} objects"
            raise TypeError(f"{message}, not {type(obj).__name__}")
        elif self._is_tuple:
            values = obj
        else:
            values = [getattr(obj, name) for name in self._names]

        if len(values) != self._arity:
            raise TypeError(
                f"format {self.format!r} has {self._arity} fields, "
                f"got {len(values)} values"
            )
        # struct.pack cuts a bytes value to its field's length without a
        # word; a C reader would get a different string than was sent.
        for i, limit in self._limited:
            value = values[i]
            if isinstance(value, (bytes, bytearray)) and len(value) > limit:
                field = self._field(i)
                raise ValueError(
                    f"{field} holds at most {limit} bytes, got {len(value)}"
                )
        try:
            return self._struct.pack(*values)
        except (struct.error, OverflowError) as exc:
            raise self._explain(values) from exc

    def _field(self, i):
        name = f" {self._names[i]!r}" if self._names else ""
        return f"field {i}{name} ({self._codes[i][1]!r})"

    def _explain(self, values):
        # Find the value struct.pack refused and say why, as TypeError for
        # a value of the wrong type and ValueError for one out of range.
        for i, ((code, fmt, _), value) in enumerate(zip(self._codes, values)):
            try:
                struct.pack(fmt, value)
            except (struct.error, OverflowError) as exc:
                if code in _INTEGER_CODES:
                    wrong_type = not hasattr(type(value), "__index__")
                elif code in _FLOAT_CODES:
                    wrong_type = not hasattr(type(value), "__float__")
                else:
                    wrong_type = not isinstance(value, (bytes, bytearray))
                error = TypeError if wrong_type else ValueError
                return error(f"{self._field(i)} cannot hold {value!r}: {exc}")
        return ValueError(f"values do not fit format {self.format!r}")

    def loads(self, data):
        """Return the record in *data*, exactly :attr:`size` bytes long."""
        if len(data) != self._struct.size:
            raise ValueError(
                f"a {self.format!r} record is {self._struct.size} bytes, "
                f"got {len(data)}"
            )
        values = self._struct.unpack(data)
        if self.cls is None:
            return values
        return self.cls(*values)

    def __repr__(self):
        if self.cls is None:
            return f"StructSerializer({self.format!r})"
        return f"StructSerializer({self.format!r}, {self.cls.__name__})"


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
    # A subclass of PickleSerializer, or the pickle module itself, takes
    # the generic path but still runs pickle on what it receives.
    unpickles = isinstance(serializer, PickleSerializer) or serializer is pickle
    return Codec(serializer, KIND_OTHER, unpickles=unpickles)
