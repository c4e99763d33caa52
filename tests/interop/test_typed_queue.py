"""ipcq.typed: the kind registry, the wire format, selection and errors."""

import queue
from collections import namedtuple
from dataclasses import dataclass

import orjson
import pytest
from conftest import unique_key, unique_name

import ipcq
from ipcq.serializers import JsonSerializer, StructSerializer
from ipcq.typed import (
    HEADER,
    KIND_MAX,
    MessageKind,
    MessageKinds,
    TypedDecodeError,
    TypedQueue,
)

Order = namedtuple("Order", "item quantity")


@dataclass
class Payment:
    order: int
    cents: int


@dataclass
class Note:
    text: str
    tags: list


class Special(dict):
    pass


def make_kinds():
    kinds = MessageKinds()
    kinds.register(1, Order, StructSerializer("<iq", Order))
    kinds.register(2, Payment, StructSerializer("<Iq", Payment))
    kinds.register(3, Note, "json")
    kinds.register(4, Order, "msgpack")
    kinds.register(5, dict, "json")
    kinds.register(6, bytes, "raw")
    kinds.register(7, frozenset, "pickle")
    return kinds


@pytest.fixture
def pair(make_queue, kind):
    """A typed queue and a raw handle on the same queue."""
    if kind == "posix":
        where = {"name": unique_name(), "maxsize": 8}
    else:
        where = {"key": unique_key()}
    q = make_queue(kind, serializer="raw", **where)
    raw = make_queue(kind, serializer="raw", **where)
    return TypedQueue(q, make_kinds()), raw


def raw_get(raw):
    if isinstance(raw, ipcq.posixmq.Queue):
        return raw.get_with_priority(timeout=5)
    return raw.get_with_type(timeout=5)


def raw_put(raw, data, tag):
    if isinstance(raw, ipcq.posixmq.Queue):
        raw.put(data, priority=tag)
    else:
        raw.put(data, msg_type=tag)


# -- the registry ---------------------------------------------------------


def test_register_returns_the_kind_and_lookups_find_it():
    kinds = MessageKinds()
    order = kinds.register(1, Order, StructSerializer("<iq", Order))
    note = kinds.register(9, Note, "json")

    assert isinstance(order, MessageKind)
    assert (order.number, order.cls) == (1, Order)
    assert isinstance(note.serializer, JsonSerializer)
    assert kinds[1] is kinds[Order] is order
    assert kinds[Note] is note
    assert 9 in kinds and Note in kinds
    assert 2 not in kinds and Payment not in kinds
    assert list(kinds) == [order, note]
    assert len(kinds) == 2
    assert repr(order) == (
        "MessageKind(number=1, cls=Order, serializer=StructSerializer('<iq', Order))"
    )


@pytest.mark.parametrize(
    "number, error",
    [
        (0, ValueError),
        (-1, ValueError),
        (KIND_MAX + 1, ValueError),
        ("1", TypeError),
        (1.0, TypeError),
        (True, TypeError),
    ],
)
def test_register_refuses_bad_numbers(number, error):
    with pytest.raises(error):
        MessageKinds().register(number, dict, "json")


def test_register_refuses_duplicates_bad_classes_and_serializers():
    kinds = MessageKinds()
    kinds.register(KIND_MAX, dict, "json")

    with pytest.raises(ValueError, match="already registered"):
        kinds.register(KIND_MAX, list, "json")
    with pytest.raises(TypeError, match="must be a class"):
        kinds.register(2, "dict", "json")
    with pytest.raises(ValueError, match="unknown serializer"):
        kinds.register(3, dict, "yaml")
    with pytest.raises(TypeError, match="dumps"):
        kinds.register(4, dict, object())
    assert len(kinds) == 1


def test_lookup_errors():
    kinds = make_kinds()

    with pytest.raises(KeyError):
        kinds[99]
    with pytest.raises(KeyError):
        kinds[list]
    # Order is kinds 1 and 4: its number must be given.
    with pytest.raises(LookupError, match="kinds 1, 4"):
        kinds[Order]


def test_kind_of_follows_the_class_hierarchy():
    kinds = make_kinds()

    assert kinds.kind_of(Special(a=1)).number == 5
    assert kinds.kind_of(Payment(1, 2)).number == 2
    with pytest.raises(TypeError, match="no kind is registered for list"):
        kinds.kind_of([1])


# -- the wrapper ----------------------------------------------------------


def test_wrapper_needs_a_raw_queue_and_a_registry(make_queue, kind):
    with pytest.raises(ValueError, match="serializer='raw'"):
        TypedQueue(make_queue(kind, serializer="json"), make_kinds())
    with pytest.raises(TypeError, match="MessageKinds"):
        TypedQueue(make_queue(kind, serializer="raw"), {1: Order})
    with pytest.raises(TypeError, match="wraps an ipcq"):
        TypedQueue(queue.Queue(), make_kinds())


def test_every_kind_comes_back_as_its_class(pair):
    tq, _ = pair
    items = [
        (Order(3, -7), 1),
        (Payment(12, 2**40), None),
        (Note("gr\u00fcn", ["a", 1]), None),
        (Order(1, 2), 4),
        ({"k": [1, 2]}, None),
        (b"\x00\xff", None),
        (frozenset({1, 2}), None),
    ]

    for item, number in items:
        tq.put(item, kind=number)
    got = [tq.get_with_kind(timeout=5) for _ in items]

    assert got == [(item, n) for (item, _), n in zip(items, range(1, 8))]
    for (item, _), (back, _) in zip(items, got):
        assert type(back) is type(item)


def test_wire_format(pair, kind):
    tq, raw = pair

    tq.put(Order(1, 2), kind=1)
    tq.put(Note("hi", []))
    order, order_tag = raw_get(raw)
    note, note_tag = raw_get(raw)

    order_payload = StructSerializer("<iq").dumps((1, 2))
    note_payload = orjson.dumps({"text": "hi", "tags": []})
    if kind == "posix":
        assert order == b"\x01\x00\x00\x00" + order_payload
        assert note == HEADER.pack(3) + note_payload
        assert (order_tag, note_tag) == (0, 0)
    else:
        assert (order, note) == (order_payload, note_payload)
        assert (order_tag, note_tag) == (1, 3)


def test_priority_on_posix(make_queue):
    tq = TypedQueue(make_queue("posix", serializer="raw"), make_kinds())

    tq.put(b"low", priority=1)
    tq.put(b"high", priority=9)

    assert tq.get(timeout=5) == b"high"
    assert tq.get(timeout=5) == b"low"


def test_sysv_has_no_priority(make_queue):
    tq = TypedQueue(make_queue("sysv", serializer="raw"), make_kinds())

    with pytest.raises(ValueError, match="no priority"):
        tq.put(b"x", priority=1)
    assert tq.queue.qsize() == 0


def test_sysv_consumer_takes_one_kind(make_queue):
    tq = TypedQueue(make_queue("sysv", serializer="raw"), make_kinds())
    tq.put(b"first")
    tq.put(Payment(1, 100))
    tq.put({"n": 1})
    tq.put(Payment(2, 200))

    assert tq.get(kind=Payment, timeout=5) == Payment(1, 100)
    assert tq.get(kind=2, timeout=5) == Payment(2, 200)
    with pytest.raises(queue.Empty):
        tq.get(kind=Payment, timeout=0.05)
    assert tq.get_nowait(kind=dict) == {"n": 1}
    assert tq.get_nowait() == b"first"


def test_posix_cannot_select_a_kind(make_queue):
    tq = TypedQueue(make_queue("posix", serializer="raw"), make_kinds())
    tq.put(Payment(1, 100))

    with pytest.raises(ValueError, match="POSIX queue cannot select"):
        tq.get(kind=Payment)
    with pytest.raises(ValueError, match="POSIX queue cannot select"):
        tq.get_nowait(kind=2)
    assert tq.queue.qsize() == 1
    assert tq.get(timeout=5) == Payment(1, 100)


def test_refused_items_send_nothing(pair):
    tq, _ = pair

    with pytest.raises(TypeError, match="no kind is registered for list"):
        tq.put([1, 2])
    with pytest.raises(TypeError, match="kind 2 carries Payment"):
        tq.put(Order(1, 2), kind=2)
    with pytest.raises(LookupError):
        tq.put(Order(1, 2))
    with pytest.raises(TypeError):
        tq.put(Payment("1", 2))
    with pytest.raises(ValueError):
        tq.put(Payment(-1, 2))
    with pytest.raises(KeyError):
        tq.put(b"x", kind=99)

    assert tq.queue.qsize() == 0


def test_unknown_kind_is_a_decode_error_with_the_payload(pair, kind):
    tq, raw = pair
    if kind == "posix":
        raw_put(raw, HEADER.pack(40) + b"abc", 2)
    else:
        raw_put(raw, b"abc", 40)
    tq.put(b"next")

    with pytest.raises(TypedDecodeError, match="unregistered kind 40") as caught:
        tq.get(timeout=5)

    error = caught.value
    assert isinstance(error, ipcq.DecodeError)
    assert error.kind == 40
    if kind == "posix":
        assert error.payload == b"\x28\x00\x00\x00abc"
        assert (error.priority, error.msg_type) == (2, None)
    else:
        assert error.payload == b"abc"
        assert (error.priority, error.msg_type) == (None, 40)
    assert tq.get(timeout=5) == b"next"


def test_undecodable_payload_is_a_decode_error(pair, kind):
    tq, raw = pair
    if kind == "posix":
        raw_put(raw, HEADER.pack(1) + b"short", 0)
        raw_put(raw, HEADER.pack(5) + b"[1, 2]", 0)
    else:
        raw_put(raw, b"short", 1)
        raw_put(raw, b"[1, 2]", 5)

    with pytest.raises(TypedDecodeError, match=r"kind 1 \(Order\)") as caught:
        tq.get(timeout=5)
    assert caught.value.kind == 1
    assert caught.value.payload.endswith(b"short")
    assert isinstance(caught.value.__cause__, ValueError)

    # JSON that decodes, but to a list where kind 5 carries dicts.
    with pytest.raises(TypedDecodeError, match="decoded a list") as caught:
        tq.get(timeout=5)
    assert isinstance(caught.value.__cause__, TypeError)


def test_short_posix_message_has_no_kind(make_queue):
    name = unique_name()
    tq = TypedQueue(make_queue("posix", name=name, serializer="raw"), make_kinds())
    raw = make_queue("posix", name=name, serializer="raw")
    raw.put(b"\x01\x00", priority=3)

    with pytest.raises(TypedDecodeError, match="too short") as caught:
        tq.get(timeout=5)
    assert caught.value.kind is None
    assert caught.value.payload == b"\x01\x00"
    assert caught.value.priority == 3


def test_records_arrive_as_arrays_or_maps(pair, kind):
    # A peer may send a record kind's fields as an array (msgpack) or a
    # map (JSON); both become the class.
    tq, raw = pair
    array = bytes([0x92, 0x05, 0x06])  # msgpack [5, 6]
    as_map = b'{"text": "t", "tags": [1]}'
    if kind == "posix":
        raw_put(raw, HEADER.pack(4) + array, 0)
        raw_put(raw, HEADER.pack(3) + as_map, 0)
    else:
        raw_put(raw, array, 4)
        raw_put(raw, as_map, 3)

    assert tq.get(timeout=5) == Order(5, 6)
    assert tq.get(timeout=5) == Note("t", [1])


def test_blocking_and_timeouts(make_queue, kind):
    size = {"maxsize": 1} if kind == "posix" else {}
    tq = TypedQueue(make_queue(kind, serializer="raw", **size), make_kinds())

    with pytest.raises(queue.Empty):
        tq.get_nowait()
    with pytest.raises(queue.Empty):
        tq.get(timeout=0.05)
    tq.put_nowait(b"one")
    if kind == "posix":
        with pytest.raises(queue.Full):
            tq.put_nowait(b"two")
        with pytest.raises(queue.Full):
            tq.put(b"two", timeout=0.05)
    assert tq.get(block=False) == b"one"


def test_repr():
    kinds = make_kinds()
    q = ipcq.sysvmq.Queue(serializer="raw")
    try:
        assert repr(TypedQueue(q, kinds)).startswith(
            "<ipcq.typed.TypedQueue 7 kinds <ipcq.sysvmq.Queue"
        )
    finally:
        q.close()
