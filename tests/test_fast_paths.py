"""The batch calls and receiving into a caller's buffer, on both kinds."""

import array
import fcntl
import os
import queue
import resource
import time

import pytest
from reliability_util import collect, run_in_child, start_child

import ipcq
from ipcq import QueueError, posixmq


def tag_kw(kind, tag):
    return {"priority": tag} if kind == "posix" else {"msg_type": tag}


@pytest.fixture
def raw(make_queue, kind):
    """An empty raw queue of each kind that holds 5 messages (POSIX) or
    200 bytes (System V)."""
    if kind == "posix":
        return make_queue.posix(maxsize=5, maxmsgsize=64, serializer="raw")
    return make_queue.sysv(max_bytes=200, serializer="raw")


def test_put_many_keeps_order_and_counts(raw):
    items = [bytes([i]) * 10 for i in range(5)]
    assert raw.put_many(items) == 5
    assert raw.get_many(10) == items


def test_put_many_takes_any_iterable(raw):
    assert raw.put_many(bytes([i]) for i in range(3)) == 3
    assert raw.put_many(iter([])) == 0
    assert raw.get_many(5) == [b"\x00", b"\x01", b"\x02"]


def test_put_many_with_a_tag(raw, kind):
    raw.put(b"low", **tag_kw(kind, 1))
    assert raw.put_many([b"a", b"b"], **tag_kw(kind, 3)) == 2
    if kind == "posix":
        # Higher priority first, FIFO within it.
        assert raw.get_many(5) == [b"a", b"b", b"low"]
    else:
        assert raw.get_many(5, msg_type=3) == [b"a", b"b"]
        assert raw.get_with_type() == (b"low", 1)


def test_partial_batch_without_blocking(raw, kind):
    items = [b"x" * 40] * 10
    sent = raw.put_many(items, block=False)
    assert 0 < sent < 10
    assert raw.qsize() == sent
    # Nothing was sent past the first item that found no room.
    assert raw.put_many(items, block=False) == 0
    assert len(raw.get_many(10)) == sent


def test_partial_batch_with_a_timeout(raw):
    sent = raw.put_many([b"y" * 40] * 10, timeout=0.05)
    assert 0 < sent < 10
    assert raw.qsize() == sent


def test_put_many_stops_at_a_bad_item_and_says_how_many(raw):
    with pytest.raises(TypeError) as info:
        raw.put_many([b"a", b"b", "not bytes", b"c"])
    assert info.value.count == 2
    assert raw.get_many(10) == [b"a", b"b"]


def test_put_many_refuses_a_bad_tag_before_sending(raw, kind):
    with pytest.raises(QueueError):
        raw.put_many([b"a"], **tag_kw(kind, -1))
    assert raw.qsize() == 0


def test_get_many_takes_only_what_is_there(raw):
    raw.put_many([b"1", b"2"])
    assert raw.get_many(5) == [b"1", b"2"]
    with pytest.raises(queue.Empty):
        raw.get_many(5, block=False)
    with pytest.raises(queue.Empty):
        raw.get_many(5, timeout=0.05)


def test_get_many_respects_max_items(raw):
    raw.put_many([b"1", b"2", b"3"])
    assert raw.get_many(2) == [b"1", b"2"]
    assert raw.get_many(2) == [b"3"]


class Refill:
    """A serializer whose loads() sends another message through *writer*
    for each one read, until *total* were sent: a batch then finds more
    messages than the queue holds at once, as when a writer keeps up."""

    def __init__(self, writer, total, sent):
        self.writer, self.total, self.sent = writer, total, sent

    def dumps(self, obj):
        return obj

    def loads(self, data):
        if self.sent < self.total:
            self.writer.put(b"%d" % self.sent)
            self.sent += 1
        return data


def test_get_many_takes_more_than_the_queue_holds_at_once(raw, make_queue):
    raw.put_many([b"0", b"1", b"2"])
    reader = make_queue.reopen(raw, serializer=Refill(raw, 40, 3))
    items = reader.get_many(100)
    assert items == [b"%d" % i for i in range(40)]
    # A list like any other.
    items.append(b"more")
    assert len(items) == 41 and items[-1] == b"more"
    assert raw.qsize() == 0


def test_get_many_of_many_small_messages(make_queue):
    q = make_queue.sysv(serializer="raw")
    sent = [bytes([i]) for i in range(60)]
    assert q.put_many(sent) == 60
    assert q.get_many(1000) == sent


@pytest.mark.parametrize(
    "bad, exc", [(0, QueueError), (-1, QueueError), (1.5, TypeError), ("2", TypeError)]
)
def test_get_many_bad_counts(raw, bad, exc):
    raw.put(b"kept")
    with pytest.raises(exc):
        raw.get_many(bad)
    assert raw.get_many(1) == [b"kept"]


def test_get_many_keeps_items_before_an_undecodable_one(q, make_queue, kind):
    writer = make_queue.reopen(q, serializer="raw")
    reader = make_queue.reopen(q, serializer="json")
    writer.put_many([b"1", b"2", b"\xff", b"3"])
    with pytest.raises(ipcq.DecodeError) as info:
        reader.get_many(10)
    assert info.value.items == [1, 2]
    assert info.value.payload == b"\xff"
    assert reader.get_many(10) == [3]


class StopOn:
    """A serializer whose loads() raises KeyboardInterrupt on one payload,
    as a signal handler would in the middle of a batch."""

    def __init__(self, payload):
        self.payload = payload

    def dumps(self, obj):
        return obj

    def loads(self, data):
        if data == self.payload:
            raise KeyboardInterrupt
        return data


def test_get_many_keeps_items_before_any_exception(q, make_queue, kind):
    writer = make_queue.reopen(q, serializer="raw")
    reader = make_queue.reopen(q, serializer=StopOn(b"stop"))
    writer.put_many([b"1", b"2", b"stop", b"3"])
    with pytest.raises(KeyboardInterrupt) as info:
        reader.get_many(10)
    assert info.value.items == [b"1", b"2"]
    assert reader.get_many(10) == [b"3"]


def test_get_into_fills_the_buffer(raw, kind):
    raw.put(b"hello", **tag_kw(kind, 4))
    buf = bytearray(64)
    assert raw.get_into(buf) == (5, 4)
    assert buf[:5] == b"hello"


def test_get_into_results_stay_as_returned(raw, kind):
    buf = bytearray(64)
    raw.put(b"first", **tag_kw(kind, 2))
    raw.put(b"second!", **tag_kw(kind, 2))
    kept = raw.get_into(buf)
    again = raw.get_into(buf)
    assert kept == (5, 2)
    assert again == (7, 2)
    assert buf[:7] == b"second!"
    # A result let go of may be refilled by the next call; one still
    # held never changes.
    del kept
    raw.put(b"x" * 9, **tag_kw(kind, 1))
    assert raw.get_into(buf) == (9, 1)
    assert again == (7, 2)


def test_get_into_a_bytearray_that_other_views_share(raw):
    buf = bytearray(64)
    view = memoryview(buf)
    raw.put(b"shared")
    assert raw.get_into(buf)[0] == 6
    assert view[:6] == b"shared"
    view.release()


def test_get_into_other_buffers(raw):
    raw.put(b"\x01\x00\x00\x00\x02\x00\x00\x00")
    arr = array.array("i", [0] * 16)
    assert raw.get_into(arr)[0] == 8
    assert arr[:2] == array.array("i", [1, 2])
    raw.put(b"view")
    buf = bytearray(100)
    assert raw.get_into(memoryview(buf)[10:80])[0] == 4
    assert buf[10:14] == b"view"


def test_get_into_empty(raw):
    with pytest.raises(queue.Empty):
        raw.get_into(bytearray(64), block=False)
    with pytest.raises(queue.Empty):
        raw.get_into(bytearray(64), timeout=0.05)


def test_get_into_sysv_selects_by_type(make_queue):
    q = make_queue.sysv(serializer="raw")
    q.put(b"one", msg_type=1)
    q.put(b"two", msg_type=2)
    buf = bytearray(16)
    assert q.get_into(buf, msg_type=2) == (3, 2)
    assert buf[:3] == b"two"


def test_get_into_a_buffer_too_small_keeps_the_message(raw, kind):
    raw.put(b"z" * 30)
    small = bytearray(10)
    with pytest.raises(QueueError) as info:
        raw.get_into(small)
    assert info.value.errno == QueueError.TOO_BIG_MESSAGE
    assert raw.qsize() == 1
    assert small == bytearray(10)
    assert raw.get() == b"z" * 30


@pytest.mark.parametrize("bad", [b"immutable", "text", 42])
def test_get_into_needs_a_writable_buffer(raw, bad):
    raw.put(b"kept")
    with pytest.raises(TypeError):
        raw.get_into(bad)
    assert raw.get() == b"kept"


# -- the POSIX handle's own non-blocking descriptor ---------------------------


def test_posix_handle_holds_two_descriptors_and_closes_both(make_queue):
    q = make_queue.posix(maxsize=2, maxmsgsize=16, serializer="raw")
    assert descriptors_of(q.name) == 2
    q.close()
    assert descriptors_of(q.name) == 0


def descriptors_of(name):
    """How many of this process's descriptors are open on the queue *name*."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == name
        except OSError:
            pass  # the descriptor of the listing itself, closed since
    return count


def exercise(q):
    """Every kind of try that must not wait, and a wait, on a 2-deep queue."""
    with pytest.raises(queue.Empty):
        q.get(block=False)
    with pytest.raises(queue.Empty):
        q.get_into(bytearray(16), block=False)
    assert q.put_many([b"a", b"b", b"c"], block=False) == 2
    with pytest.raises(queue.Full):
        q.put(b"x", block=False)
    with pytest.raises(queue.Full):
        q.put(b"x", timeout=0.02)
    assert q.get_many(5) == [b"a", b"b"]
    q.put(b"d", priority=3)
    buf = bytearray(16)
    assert q.get_into(buf) == (1, 3) and buf[:1] == b"d"
    with pytest.raises(queue.Empty):
        q.get(timeout=0.02)
    return "ok"


def test_posix_handle_works_with_one_descriptor(make_queue):
    """With no descriptor to spare for the second one, the handle falls
    back to tries with an expired deadline, and behaves the same."""
    name = make_queue.posix(maxsize=2, maxmsgsize=16).name

    def child():
        # While the queue opens, its descriptor is the last one that
        # RLIMIT_NOFILE allows; then the limit is as it was, for the
        # eventfd of the timed waits.
        inherited = descriptors_of(name)
        limits = resource.getrlimit(resource.RLIMIT_NOFILE)
        spare = os.open("/dev/null", os.O_RDONLY)
        os.close(spare)
        resource.setrlimit(resource.RLIMIT_NOFILE, (spare + 1, limits[1]))
        try:
            q = posixmq.Queue(name, serializer="raw")
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
        try:
            assert descriptors_of(name) == inherited + 1
            return exercise(q)
        finally:
            q.close()

    assert run_in_child(child) == "ok"
    assert exercise(make_queue.posix(name=name, serializer="raw")) == "ok"


def test_posix_non_blocking_mode_stays_private(make_queue):
    """The handle's tries never put the shared descriptor in O_NONBLOCK:
    a blocking get on it from a forked child still waits for a message."""
    q = make_queue.posix(maxsize=2, maxmsgsize=16, serializer="raw")
    with pytest.raises(queue.Empty):
        q.get(block=False)
    assert not fcntl.fcntl(q.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK

    def child():
        started = time.monotonic()
        item = q.get()  # the parent sends after 0.2 s
        return item, time.monotonic() - started

    pid, r = start_child(child)
    time.sleep(0.2)
    q.put(b"late")
    kind, (item, waited) = collect(pid, r)
    assert kind == "ok" and item == b"late" and waited >= 0.15
