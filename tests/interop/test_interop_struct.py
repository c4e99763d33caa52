"""C structs and typed messages between ipcq and the C peer, byte for byte.

The C peer's ``struct reading`` has fields of seven types, with padding
after the first and at the end; ``struct packed_reading`` has the same
fields without padding.  Both are filled from the test's values and sent
as they lie in memory, and what the peer receives it reads through the
same structs.
"""

import math
import struct
from dataclasses import dataclass

import interop_peers as peers
import orjson
import pytest

import ipcq
from ipcq import posixmq, sysvmq
from ipcq.serializers import StructSerializer
from ipcq.typed import HEADER, MessageKinds, TypedDecodeError, TypedQueue

# The C peer's two structs, in the struct module's language.
LAYOUTS = {"reading": "@BhIqdf6s0q", "packed": "<BhIqdf6s"}


@dataclass
class Reading:
    flags: int
    delta: int
    sensor: int
    stamp: int
    value: float
    ratio: float
    label: bytes


def float32(x):
    """*x* rounded to the nearest C float."""
    return struct.unpack("f", struct.pack("f", x))[0]


# Extreme values for most fields; a label shorter than its char[6] field
# (the struct pads it with NUL bytes) holding non-ASCII bytes.
SAMPLE = Reading(
    flags=0xA5,
    delta=-2,
    sensor=2**32 - 1,
    stamp=-(2**62) - 3,
    value=math.pi,
    ratio=float32(0.1),
    label=b"gr\xc3\xbcn\x00",
)
OTHER = Reading(0, 32767, 1, 2**63 - 1, -0.0, float32(-1e30), b"\xff" * 6)


def token(layout, r):
    """The C peer's DATA token for a struct of *layout* holding *r*."""
    return (
        f"@{layout}={r.flags},{r.delta},{r.sensor},{r.stamp},"
        f"{r.value!r},{r.ratio!r},{r.label.hex()}"
    )


def as_reading(fields):
    """The Reading the C peer printed (its name=value words)."""
    return Reading(
        flags=int(fields["flags"]),
        delta=int(fields["delta"]),
        sensor=int(fields["sensor"]),
        stamp=int(fields["stamp"]),
        value=float(fields["value"]),
        ratio=float32(float(fields["ratio"])),
        label=bytes.fromhex(fields["label"]),
    )


@pytest.fixture
def c_peer():
    return peers.peer("c")


@pytest.fixture
def scratch():
    with peers.scratch() as s:
        yield s


@pytest.fixture(params=sorted(LAYOUTS))
def layout(request):
    return request.param


def open_queue(kind, target, serializer="raw"):
    if kind == "posix":
        return posixmq.Queue(target, 4, 256, serializer)
    return sysvmq.Queue(target, serializer=serializer)


def get(q):
    """The next message and its priority or type."""
    if isinstance(q, posixmq.Queue):
        return q.get_with_priority(timeout=5)
    return q.get_with_type(timeout=5)


def test_struct_sizes_match_the_c_compiler(c_peer):
    native = StructSerializer(LAYOUTS["reading"], Reading)
    packed = StructSerializer(LAYOUTS["packed"], Reading)

    assert c_peer.run("layout") == [f"reading={native.size} packed={packed.size}"]


def test_struct_from_ipcq_is_read_by_c(c_peer, kind, layout, scratch):
    target = scratch.target(kind)
    serializer = StructSerializer(LAYOUTS[layout], Reading)

    with open_queue(kind, target, serializer) as q:
        q.put(SAMPLE)
        q.put(OTHER)

        received = c_peer.recv(kind, target, 2, layout)
        for (_, text), sent in zip(received, [SAMPLE, OTHER]):
            fields = c_peer.fields(text)
            assert bytes.fromhex(fields.pop("raw")) == serializer.dumps(sent)
            assert as_reading(fields) == sent


def test_struct_from_c_is_read_by_ipcq(c_peer, kind, layout, scratch):
    target = scratch.target(kind)
    serializer = StructSerializer(LAYOUTS[layout], Reading)

    with open_queue(kind, target) as q:
        c_peer.send(kind, target, [(3, token(layout, SAMPLE))])
        c_peer.send(kind, target, [(2, token(layout, OTHER))])

        for sent in (SAMPLE, OTHER):
            data, _ = get(q)
            # Padding included: the peer zeroes the struct before filling
            # it, and struct.pack writes zero padding.
            assert data == serializer.dumps(sent)
            assert serializer.loads(data) == sent


def test_struct_of_the_wrong_size_is_a_decode_error(c_peer, kind, scratch):
    target = scratch.target(kind)
    native = StructSerializer(LAYOUTS["reading"], Reading)
    packed = StructSerializer(LAYOUTS["packed"], Reading)

    with open_queue(kind, target, native) as q:
        c_peer.send(kind, target, [(5, token("packed", SAMPLE))])
        c_peer.send(kind, target, [(5, token("reading", SAMPLE))])

        with pytest.raises(ipcq.DecodeError) as caught:
            q.get(timeout=5)
        assert caught.value.payload == packed.dumps(SAMPLE)
        assert isinstance(caught.value.__cause__, ValueError)
        if kind == "posix":
            assert (caught.value.priority, caught.value.msg_type) == (5, None)
        else:
            assert (caught.value.priority, caught.value.msg_type) == (None, 5)

        assert q.get(timeout=5) == SAMPLE


def reading_kinds():
    kinds = MessageKinds()
    kinds.register(1, Reading, StructSerializer(LAYOUTS["reading"], Reading))
    kinds.register(2, dict, "json")
    return kinds


def test_typed_messages_from_ipcq_are_read_by_c(c_peer, kind, scratch):
    target = scratch.target(kind)
    serializer = StructSerializer(LAYOUTS["reading"], Reading)
    note = {"note": "gr\u00fcn", "n": 3}

    with open_queue(kind, target) as q:
        tq = TypedQueue(q, reading_kinds())
        tq.put(SAMPLE)
        tq.put(note)
        tq.put(OTHER)

        first, second = c_peer.recv(kind, target, 2, "typed")
        fields = c_peer.fields(first[1])
        assert fields.pop("kind") == "1"
        assert as_reading(fields) == SAMPLE
        assert c_peer.fields(second[1]) == {
            "kind": "2",
            "payload": orjson.dumps(note).hex(),
        }

        [(tag, data)] = c_peer.recv_bytes(kind, target, 1)
        if kind == "posix":
            assert data == b"\x01\x00\x00\x00" + serializer.dumps(OTHER)
            assert data[:4] == HEADER.pack(1)
        else:
            assert (tag, data) == (1, serializer.dumps(OTHER))


def test_typed_messages_from_c_are_read_by_ipcq(c_peer, kind, scratch):
    target = scratch.target(kind)
    note = b'{"from":"C","n":[1,2]}'

    with open_queue(kind, target) as q:
        tq = TypedQueue(q, reading_kinds())
        if kind == "posix":
            c_peer.send(
                kind,
                target,
                [
                    (0, f"@typed=2/{note.hex()}"),
                    (0, "@typed=1/" + token("reading", SAMPLE)),
                ],
            )
            assert tq.get_with_kind(timeout=5) == (orjson.loads(note), 2)
            assert tq.get(timeout=5) == SAMPLE
        else:
            c_peer.send(kind, target, [(2, note), (1, token("reading", SAMPLE))])
            # The kernel selects the kind: the later Reading comes first.
            assert tq.get(timeout=5, kind=Reading) == SAMPLE
            assert tq.get_with_kind(timeout=5) == (orjson.loads(note), 2)


def test_unregistered_kind_from_c_keeps_its_bytes(c_peer, kind, scratch):
    target = scratch.target(kind)

    with open_queue(kind, target) as q:
        tq = TypedQueue(q, reading_kinds())
        if kind == "posix":
            c_peer.send(kind, target, [(6, "@typed=9/0102")])
        else:
            c_peer.send(kind, target, [(9, b"\x01\x02")])

        with pytest.raises(TypedDecodeError) as caught:
            tq.get(timeout=5)
        error = caught.value
        assert error.kind == 9
        if kind == "posix":
            assert error.payload == b"\x09\x00\x00\x00\x01\x02"
            assert (error.priority, error.msg_type) == (6, None)
        else:
            assert error.payload == b"\x01\x02"
            assert (error.priority, error.msg_type) == (None, 9)
        assert q.qsize() == 0
