"""Every decoder fed random and damaged bytes through a real queue.

A raw handle writes the bytes; a handle with the serializer under test
reads them.  Whatever the bytes, the reader either returns what the
serializer itself makes of them or raises :class:`ipcq.DecodeError`
carrying the bytes and the message's priority or type; nothing else comes
out and nothing crashes.  Messages that failed to decode have left the
queue, and the queue goes on working.
"""

import collections
import math
import pickle
import resource

import msgpack
import orjson
import pytest
from conftest import unique_key, unique_name
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ipcq
from ipcq import posixmq, serializers, sysvmq

# Hypothesis's report of a failing example can import mypy_extensions,
# whose deprecation warning would otherwise replace the report.
pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)

MAXMSGSIZE = 1024

# Every serializer that decodes (raw does not), by the name queues take.
DECODERS = sorted(name for name in serializers.SERIALIZERS if name != "raw")


Record = collections.namedtuple("Record", "tag count label")

# Two StructSerializer layouts, when ipcq.serializers has the class:
# packed fields read as a tuple, and a natively aligned C struct (with
# padding bytes, which decoding must ignore) read as a named tuple.
STRUCT_LAYOUTS = {
    "struct": ("<iqd", None),
    "struct-record": ("@hq8s0q", Record),
}


def struct_serializer(name):
    """The StructSerializer called *name* above, or None without the class."""
    cls = getattr(serializers, "StructSerializer", None)
    if cls is None:
        return None
    return cls(*STRUCT_LAYOUTS[name])


if struct_serializer("struct") is not None:
    DECODERS += list(STRUCT_LAYOUTS)


def reader_spec(name):
    return struct_serializer(name) if name in STRUCT_LAYOUTS else name


class Pair:
    """A raw writer and a decoding reader on one queue."""

    def __init__(self, kind, decoder):
        self.kind = kind
        self.decoder = decoder
        spec = reader_spec(decoder)
        self.serializer = ipcq.serializers.resolve(spec).serializer
        if kind == "posix":
            self.name = unique_name("fuzz")
            self.writer = posixmq.Queue(self.name, 4, MAXMSGSIZE, serializer="raw")
            self.reader = posixmq.Queue(self.name, serializer=spec)
        else:
            key = unique_key()
            self.writer = sysvmq.Queue(key, serializer="raw")
            self.reader = sysvmq.Queue(key, serializer=spec)
        # A first put of an empty message on a fresh System V handle has
        # a test of its own (test_limits.py); here the writer is warmed up
        # so that the decoders are what is tested.
        self.writer.put(b"warm-up")
        assert self.writer.get_nowait() == b"warm-up"

    def put(self, data, tag):
        if self.kind == "posix":
            self.writer.put_nowait(data, priority=tag)
        else:
            self.writer.put_nowait(data, msg_type=tag)

    def close(self):
        if self.kind == "posix":
            self.reader.close()
            self.writer.close()
            posixmq.unlink(self.name)
        else:
            self.reader.detach()
            self.writer.close()


def virtual_size():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


with open("/proc/self/maps") as _maps:
    UNDER_ASAN = "libasan" in _maps.read()


@pytest.fixture(autouse=True)
def memory_cap():
    """Cap the address space at 1 GiB above its size now, during a test.

    A few bytes can make a decoder allocate gigabytes: pickle's BINBYTES
    opcode takes a 4-byte length, and the unpickler allocates that much
    before it finds the data missing.  The cap turns that into the
    MemoryError (then DecodeError) it should be, instead of a machine out
    of memory.  AddressSanitizer reserves terabytes of address space, so
    under it the cap is left to its own allocator limit.
    """
    if UNDER_ASAN:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = virtual_size() + 2**30
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture(params=DECODERS)
def pair(request, kind):
    p = Pair(kind, request.param)
    yield p
    p.close()


def same(a, b):
    """Equality that also holds for NaN inside containers."""
    if a == b:
        return True
    if isinstance(a, float) and isinstance(b, float):
        return math.isnan(a) and math.isnan(b)
    return repr(a) == repr(b)


def direct(serializer, data):
    """What the serializer itself makes of *data*: (True, item) or (False, exc)."""
    try:
        return True, serializer.loads(data)
    except Exception as exc:
        return False, exc


def check_one(p, data, tag, how):
    p.put(data, tag)
    ok, expected = direct(p.serializer, data)
    try:
        if how == "get":
            got = p.reader.get_nowait()
        elif how == "tagged":
            if p.kind == "posix":
                got, got_tag = p.reader.get_with_priority(block=False)
            else:
                got, got_tag = p.reader.get_with_type(block=False)
            assert got_tag == tag
        else:
            (got,) = p.reader.get_many(4, block=False)
    except ipcq.DecodeError as exc:
        assert not ok, f"the serializer decodes {data!r}, the queue did not"
        assert exc.payload == data
        assert type(exc.payload) is bytes
        if p.kind == "posix":
            assert (exc.priority, exc.msg_type) == (tag, None)
        else:
            assert (exc.priority, exc.msg_type) == (None, tag)
        assert isinstance(exc.__cause__, Exception)
        if how == "many":
            assert exc.items == []
    else:
        assert ok, f"the queue decoded {data!r}, the serializer raises {expected!r}"
        assert same(got, expected)
    assert p.reader.qsize() == 0


HOW = st.sampled_from(["get", "tagged", "many"])
TAG = st.integers(1, 9)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FUZZ_LONG = settings(FUZZ, max_examples=5000)


@FUZZ
@given(data=st.binary(max_size=MAXMSGSIZE), tag=TAG, how=HOW)
def test_random_bytes(pair, data, tag, how):
    check_one(pair, data, tag, how)


# Valid messages, then damaged: cut short, or one byte changed.
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def encodings(decoder):
    if decoder == "pickle":
        return st.builds(
            pickle.dumps,
            JSONISH | st.binary(max_size=40) | st.tuples(JSONISH, st.binary()),
            st.integers(0, pickle.HIGHEST_PROTOCOL),
        )
    if decoder == "msgpack":
        return st.builds(
            lambda obj: msgpack.packb(obj, use_bin_type=True),
            JSONISH | st.binary(max_size=40),
        )
    if decoder == "json":
        return st.builds(orjson.dumps, JSONISH)
    serializer = struct_serializer(decoder)
    if decoder == "struct":
        values = st.tuples(
            st.integers(-(2**31), 2**31 - 1),
            st.integers(-(2**63), 2**63 - 1),
            st.floats(),
        )
    else:
        values = st.builds(
            Record,
            st.integers(-(2**15), 2**15 - 1),
            st.integers(-(2**63), 2**63 - 1),
            st.binary(max_size=8),
        )
    return st.builds(lambda v: bytes(serializer.dumps(v)), values)


def damage(encoded, data):
    if not encoded:
        return encoded
    what = data.draw(st.sampled_from(["cut", "flip", "whole"]))
    if what == "cut":
        return encoded[: data.draw(st.integers(0, len(encoded) - 1))]
    if what == "flip":
        at = data.draw(st.integers(0, len(encoded) - 1))
        value = data.draw(st.integers(0, 255))
        return encoded[:at] + bytes([value]) + encoded[at + 1 :]
    return encoded


def damaged_case(pair, draw, tag, how):
    data = damage(draw.draw(encodings(pair.decoder)), draw)
    check_one(pair, data[:MAXMSGSIZE], tag, how)


@FUZZ
@given(draw=st.data(), tag=TAG, how=HOW)
def test_damaged_messages(pair, draw, tag, how):
    damaged_case(pair, draw, tag, how)


@pytest.mark.parametrize(
    "data",
    [
        b"B\xff\xff\xff\x7f",  # BINBYTES claiming 2 GiB
        b"\x8e\xff\xff\xff\xff\xff\xff\xff\x00",  # BINBYTES8
        b"\x80\x05\x96\x00\x00\x00\x00\x01\x00\x00\x00",  # BYTEARRAY8
    ],
    ids=["binbytes", "binbytes8", "bytearray8"],
)
def test_pickle_length_claims_are_decode_errors(kind, data):
    # A message of a few bytes that claims gigabytes of data.
    p = Pair(kind, "pickle")
    try:
        check_one(p, data, 2, "get")
    finally:
        p.close()


def test_get_many_keeps_what_came_before_a_bad_message(pair):
    sample = {
        "struct": (1, 2, 3.5),
        "struct-record": Record(1, 2, b"label"),
    }.get(pair.decoder, [1, "a"])
    good = bytes(pair.serializer.dumps(sample))
    for data in (good, b"\xff\x00 not a message \xc1", good):
        pair.put(data, 3)

    with pytest.raises(ipcq.DecodeError) as info:
        pair.reader.get_many(10, block=False)
    assert info.value.payload == b"\xff\x00 not a message \xc1"
    assert len(info.value.items) == 1
    assert same(info.value.items[0], pair.serializer.loads(good))
    rest = pair.reader.get_many(10, block=False)
    assert len(rest) == 1 and same(rest[0], pair.serializer.loads(good))


@pytest.mark.slow
@FUZZ_LONG
@given(data=st.binary(max_size=MAXMSGSIZE), tag=TAG, how=HOW)
def test_random_bytes_long(pair, data, tag, how):
    check_one(pair, data, tag, how)


@pytest.mark.slow
@FUZZ_LONG
@given(draw=st.data(), tag=TAG, how=HOW)
def test_damaged_messages_long(pair, draw, tag, how):
    damaged_case(pair, draw, tag, how)
