"""StructSerializer: C struct layouts, refusals, and decode errors."""

import struct
from collections import namedtuple
from dataclasses import dataclass, field

import pytest
from conftest import unique_key, unique_name

import ipcq
from ipcq.serializers import StructSerializer

Point = namedtuple("Point", "x y")


@dataclass
class Sample:
    code: int
    amount: float
    name: bytes


def test_tuple_round_trip_is_struct_pack():
    s = StructSerializer("<iq")

    data = s.dumps((-5, 2**40))

    assert data == struct.pack("<iq", -5, 2**40)
    assert s.loads(data) == (-5, 2**40)
    assert s.dumps([-5, 2**40]) == data


def test_named_tuple_round_trip():
    s = StructSerializer("<hh", Point)

    data = s.dumps(Point(3, -4))

    assert data == b"\x03\x00\xfc\xff"
    loaded = s.loads(data)
    assert type(loaded) is Point
    assert loaded == Point(3, -4)


def test_dataclass_round_trip():
    s = StructSerializer("<Hd5s", Sample)

    data = s.dumps(Sample(7, 0.5, b"abc"))

    assert data == struct.pack("<Hd5s", 7, 0.5, b"abc")
    assert s.size == len(data) == 15
    assert s.loads(data) == Sample(7, 0.5, b"abc\x00\x00")


def test_native_layout_needs_a_zero_count_code_for_tail_padding():
    # struct { int64_t a; int32_t b; } is 16 bytes in C.
    assert StructSerializer("@qi").size == 12
    assert StructSerializer("@qi0q").size == 16
    assert StructSerializer("@qi0q").dumps((1, 2))[12:] == bytes(4)


def test_counts_padding_and_strings_make_the_right_fields():
    s = StructSerializer("<2xh3B4s0s?")

    data = s.dumps((-1, 1, 2, 3, b"ab", b"", True))

    assert data == b"\x00\x00\xff\xff\x01\x02\x03ab\x00\x00\x01"
    assert s.loads(data) == (-1, 1, 2, 3, b"ab\x00\x00", b"", True)


@pytest.mark.parametrize(
    "values",
    [(1,), (1, 2, 3), ()],
    ids=["too-few", "too-many", "none"],
)
def test_wrong_number_of_values_is_a_type_error(values):
    with pytest.raises(TypeError, match="has 2 fields, got"):
        StructSerializer("<iq").dumps(values)


@pytest.mark.parametrize(
    "fmt, value",
    [
        ("<i", "1"),
        ("<i", 1.5),
        ("<i", None),
        ("<d", "2.5"),
        ("<d", b"x"),
        ("<4s", "text"),
        ("<c", 65),
    ],
)
def test_value_of_the_wrong_type_is_a_type_error(fmt, value):
    with pytest.raises(TypeError, match=r"field 0 \("):
        StructSerializer(fmt).dumps((value,))


@pytest.mark.parametrize(
    "fmt, value",
    [
        ("<B", 256),
        ("<b", -129),
        ("<I", -1),
        ("<q", 2**63),
        ("<e", 1e10),
        ("<4s", b"abcde"),
        ("<5p", b"abcde"),
        ("<c", b"ab"),
    ],
)
def test_value_out_of_range_is_a_value_error(fmt, value):
    with pytest.raises(ValueError, match="field 0"):
        StructSerializer(fmt).dumps((value,))


def test_error_names_the_field_of_a_class():
    s = StructSerializer("<Hd5s", Sample)

    with pytest.raises(ValueError, match="field 0 'code'"):
        s.dumps(Sample(70000, 0.0, b""))
    with pytest.raises(TypeError, match="field 1 'amount'"):
        s.dumps(Sample(1, "x", b""))


def test_objects_other_than_tuples_or_the_class_are_refused():
    with pytest.raises(TypeError, match="packs a tuple"):
        StructSerializer("<i").dumps(5)
    with pytest.raises(TypeError, match="packs Point objects, not tuple"):
        StructSerializer("<hh", Point).dumps((1, 2))


@pytest.mark.parametrize("size", [0, 7, 9, 100])
def test_wrong_size_on_loads_is_a_value_error(size):
    with pytest.raises(ValueError, match=f"is 8 bytes, got {size}"):
        StructSerializer("<q").loads(bytes(size))


def test_bad_constructions():
    with pytest.raises(ValueError, match="invalid struct format"):
        StructSerializer("<iZ")
    with pytest.raises(TypeError, match="format must be a str"):
        StructSerializer(5)
    with pytest.raises(ValueError, match="Point has 2 fields but format"):
        StructSerializer("<hhh", Point)
    with pytest.raises(TypeError, match="dataclass or a named tuple"):
        StructSerializer("<hh", dict)
    with pytest.raises(TypeError, match="dataclass or a named tuple"):
        StructSerializer("<hh", tuple)

    @dataclass
    class Derived:
        a: int
        b: int = field(init=False, default=0)

    with pytest.raises(ValueError, match="__init__"):
        StructSerializer("<hh", Derived)


def test_bytes_format_and_repr():
    assert StructSerializer(b"<iq").format == "<iq"
    assert repr(StructSerializer("<iq")) == "StructSerializer('<iq')"
    assert repr(StructSerializer("<hh", Point)) == "StructSerializer('<hh', Point)"


def test_queue_round_trip(make_queue, kind):
    q = make_queue(kind, serializer=StructSerializer("<hh", Point))

    q.put(Point(1, 2))
    q.put(Point(-3, 4))

    assert q.get(timeout=5) == Point(1, 2)
    assert type(q.get(timeout=5)) is Point


def test_refused_values_send_nothing(make_queue, kind):
    q = make_queue(kind, serializer=StructSerializer("<hh", Point))

    with pytest.raises(TypeError):
        q.put((1, 2))
    with pytest.raises(TypeError):
        q.put(Point(1, "2"))
    with pytest.raises(ValueError):
        q.put(Point(1, 2**20))

    assert q.qsize() == 0


def test_wrong_size_on_get_is_a_decode_error_with_the_payload(make_queue, kind):
    where = {"name": unique_name()} if kind == "posix" else {"key": unique_key()}
    q = make_queue(kind, serializer=StructSerializer("<hh", Point), **where)
    raw = make_queue(kind, serializer="raw", **where)
    if kind == "posix":
        raw.put(b"\x01\x02\x03", priority=4)
        raw.put(b"\x01\x00\x02\x00", priority=4)
    else:
        raw.put(b"\x01\x02\x03", msg_type=4)
        raw.put(b"\x01\x00\x02\x00", msg_type=4)

    with pytest.raises(ipcq.DecodeError) as caught:
        q.get(timeout=5)
    error = caught.value
    assert error.payload == b"\x01\x02\x03"
    assert 4 in (error.priority, error.msg_type)
    assert isinstance(error.__cause__, ValueError)
    assert "is 4 bytes, got 3" in str(error)
    # The message is gone; the next one decodes.
    assert q.get(timeout=5) == Point(1, 2)
    assert q.qsize() == 0
