"""System limits reached on purpose, message sizes at their bounds, bad input.

Each limit error must name the limit, its current value and how to raise
it.  The system-wide limits (fs.mqueue.queues_max, kernel.msgmni) and
the ones only root may change are reached in a forked child that moved
into an IPC namespace of its own, where it may lower them without
touching any other process; RLIMIT_MSGQUEUE is lowered in a forked child.
Limits are read from /proc when the test runs, never assumed.
"""

import errno
import queue
import resource
import threading
import time

import pytest
from conftest import unique_name
from reliability_util import (  # noqa: F401 (reap_children is a fixture)
    can_unshare_ipc,
    cpu_seconds,
    reap_children,
    run_in_child,
    unshare_ipc_namespace,
    write_sysctl,
)

import ipcq
from ipcq import posixmq, sysvmq
from ipcq._common import read_limit

MQ = "/proc/sys/fs/mqueue/"
KERNEL = "/proc/sys/kernel/"


def has_cap_sys_resource():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 24))
    return False


@pytest.fixture(scope="module")
def namespace():
    """Run a function in a child inside a new IPC namespace."""
    if not can_unshare_ipc():
        pytest.skip("cannot create an IPC namespace (needs CAP_SYS_ADMIN)")

    def run(func, *args, timeout=20):
        def inside():
            assert unshare_ipc_namespace()
            return func(*args)

        return run_in_child(inside, timeout=timeout)

    return run


def drain(q):
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items


# -- RLIMIT_MSGQUEUE ----------------------------------------------------------


def create_under_rlimit(soft, name, existing):
    _, hard = resource.getrlimit(resource.RLIMIT_MSGQUEUE)
    resource.setrlimit(resource.RLIMIT_MSGQUEUE, (soft, hard))
    # Opening a queue that exists costs nothing: the bytes were charged
    # to its creator.
    with posixmq.Queue(existing, create=False, serializer="raw") as q:
        q.put(b"opened under the limit")
    try:
        posixmq.Queue(name, 4, 256)
    except ipcq.QueueError as exc:
        return exc
    posixmq.unlink(name)
    return None


def test_rlimit_msgqueue(make_queue):
    existing = make_queue("posix", maxsize=2, maxmsgsize=64, serializer="raw")
    name = unique_name("rlimit")
    exc = run_in_child(create_under_rlimit, 1, name, existing.name)

    assert exc is not None, "a queue was created with RLIMIT_MSGQUEUE at 1 byte"
    assert exc.errno == errno.EMFILE
    message = str(exc)
    assert "RLIMIT_MSGQUEUE" in message
    assert "(1 bytes" in message
    assert "ulimit -q" in message
    assert str(4 * 256) in message  # what this queue needs
    assert existing.get_nowait() == b"opened under the limit"
    with pytest.raises(FileNotFoundError):
        posixmq.Queue(name, create=False)


# -- queues_max and msgmni, in a namespace of their own ------------------------


def fill_queues_max(limit):
    write_sysctl(MQ + "queues_max", limit)
    made = []
    try:
        for n in range(limit):
            made.append(posixmq.Queue(f"/ns-{n}", 1, 16, serializer="raw"))
        try:
            posixmq.Queue("/ns-one-too-many", 1, 16, serializer="raw")
        except ipcq.QueueError as exc:
            error = exc
        else:
            return "no error"
        # A freed slot can be used again.
        made.pop().close()
        posixmq.unlink(f"/ns-{limit - 1}")
        made.append(posixmq.Queue("/ns-again", 1, 16, serializer="raw"))
        return error
    finally:
        for q in made:
            q.close()
            posixmq.unlink(q.name)


@pytest.mark.skipif(has_cap_sys_resource(), reason="CAP_SYS_RESOURCE lifts queues_max")
def test_queues_max(namespace):
    exc = namespace(fill_queues_max, 3)

    assert isinstance(exc, ipcq.QueueError), exc
    assert exc.errno == errno.ENOSPC
    message = str(exc)
    assert "queues_max=3" in message
    assert MQ + "queues_max" in message
    assert "sysctl fs.mqueue.queues_max" in message


def fill_msgmni(limit):
    write_sysctl(KERNEL + "msgmni", limit)
    made = [sysvmq.Queue() for _ in range(limit)]
    try:
        try:
            sysvmq.Queue()
        except ipcq.QueueError as exc:
            return exc
        return "no error"
    finally:
        for q in made:
            q.close()


def test_msgmni(namespace):
    exc = namespace(fill_msgmni, 2)

    assert isinstance(exc, ipcq.QueueError), exc
    assert exc.errno == errno.ENOSPC
    message = str(exc)
    assert "msgmni=2" in message
    assert KERNEL + "msgmni" in message
    assert "sysctl kernel.msgmni" in message


# -- sizes above the system's per-queue limits --------------------------------


def posix_sizes_over(msg_max, msgsize_max):
    write_sysctl(MQ + "msg_max", msg_max)
    write_sysctl(MQ + "msgsize_max", msgsize_max)
    errors = []
    for args in [(msg_max + 1, 64), (2, msgsize_max + 1)]:
        try:
            posixmq.Queue("/ns-sizes", *args)
        except ipcq.QueueError as exc:
            errors.append(exc)
        else:
            posixmq.unlink("/ns-sizes")
            errors.append(None)
    with posixmq.Queue("/ns-sizes", msg_max, msgsize_max, serializer="raw") as q:
        q.put(b"x" * msgsize_max)
        errors.append(len(q.get_nowait()))
    posixmq.unlink("/ns-sizes")
    return errors


@pytest.mark.skipif(has_cap_sys_resource(), reason="CAP_SYS_RESOURCE lifts msg_max")
def test_posix_sizes_above_lowered_limits(namespace):
    too_many, too_big, largest = namespace(posix_sizes_over, 3, 200)

    for exc in (too_many, too_big):
        assert isinstance(exc, ipcq.QueueValueError), exc
        assert exc.errno == errno.EINVAL
    assert "maxsize=4" in str(too_many) and "msg_max=3" in str(too_many)
    assert "sysctl fs.mqueue.msg_max" in str(too_many)
    assert "maxmsgsize=201" in str(too_big) and "msgsize_max=200" in str(too_big)
    assert "sysctl fs.mqueue.msgsize_max" in str(too_big)
    assert largest == 200


def sysv_sizes_over(msgmnb, msgmax):
    write_sysctl(KERNEL + "msgmnb", msgmnb)
    write_sysctl(KERNEL + "msgmax", msgmax)
    found = []
    key = 4242
    try:
        sysvmq.Queue(key, msgmnb + 1)
    except ipcq.QueueError as exc:
        found.append(exc)
    # The queue that call made is gone again.
    try:
        sysvmq.Queue(key, create=False)
        found.append("left behind")
    except FileNotFoundError:
        found.append("rolled back")
    q = sysvmq.Queue(key, msgmnb, serializer="raw")
    try:
        q.put(b"keep")
        try:
            q.put(b"x" * (msgmax + 1))
        except ipcq.QueueError as exc:
            found.append(exc)
        q.put(b"y" * msgmax)
        found.append([len(item) for item in drain(q)])
        try:
            q.max_bytes = msgmnb + 1
        except ipcq.QueueError as exc:
            found.append((exc, q.max_bytes))
    finally:
        q.close()
    return found


@pytest.mark.skipif(has_cap_sys_resource(), reason="CAP_SYS_RESOURCE lifts msgmnb")
def test_sysv_sizes_above_lowered_limits(namespace):
    refused, rolled, too_big, sizes, (setter, kept) = namespace(
        sysv_sizes_over, 3000, 1000
    )

    assert isinstance(refused, ipcq.QueuePermissionError), refused
    assert "max_bytes=3001" in str(refused) and "msgmnb=3000" in str(refused)
    assert "CAP_SYS_RESOURCE" in str(refused) and "sysctl kernel.msgmnb" in str(refused)
    assert rolled == "rolled back"
    assert isinstance(too_big, ipcq.QueueValueError), too_big
    assert too_big.errno == errno.EMSGSIZE
    assert "1001" in str(too_big) and "1000" in str(too_big)
    assert "msgmax" in str(too_big)
    assert sizes == [4, 1000]
    assert isinstance(setter, ipcq.QueuePermissionError)
    assert kept == 3000


# -- message sizes at and above a queue's own limit -------------------------


def test_posix_message_sizes_at_the_bound(make_queue):
    q = make_queue("posix", maxsize=3, maxmsgsize=100, serializer="raw")
    q.put(b"first")

    with pytest.raises(ipcq.QueueError) as info:
        q.put(b"x" * 101)
    assert info.value.errno == errno.EMSGSIZE == ipcq.QueueError.TOO_BIG_MESSAGE
    assert "101" in str(info.value) and "100" in str(info.value)
    q.put(b"y" * 100)
    assert drain(q) == [b"first", b"y" * 100]


def test_sysv_message_sizes_at_the_bound(make_queue):
    msgmax = read_limit(KERNEL + "msgmax")
    msgmnb = read_limit(KERNEL + "msgmnb")
    if msgmnb < msgmax + 4:
        pytest.skip("msgmnb is too small to hold a msgmax message")
    q = make_queue("sysv", serializer="raw")
    q.put(b"first")
    before = q.qattr()

    with pytest.raises(ipcq.QueueError) as info:
        q.put(b"x" * (msgmax + 1))
    assert info.value.errno == errno.EMSGSIZE
    assert str(msgmax + 1) in str(info.value) and str(msgmax) in str(info.value)
    assert q.qattr() == before  # not even a failed msgsnd(2) was made
    q.put(b"y" * msgmax)
    assert drain(q) == [b"first", b"y" * msgmax]


@pytest.mark.parametrize("call", ["put", "put_nowait", "timeout", "put_many"])
def test_sysv_message_bigger_than_the_queue(make_queue, call):
    q = make_queue("sysv", max_bytes=100, serializer="raw")
    q.put(b"keep")
    big = b"x" * 101
    with pytest.raises(ipcq.QueueError) as info:
        if call == "put":
            q.put(big)
        elif call == "put_nowait":
            q.put_nowait(big)
        elif call == "timeout":
            q.put(big, timeout=5)
        else:
            q.put_many([big], timeout=5)
    assert info.value.errno == errno.EMSGSIZE
    assert "101" in str(info.value) and "100" in str(info.value)
    assert drain(q) == [b"keep"]


def test_empty_message_on_a_fresh_handle(make_queue, kind):
    # The very first put of a handle may be an empty message: it is a
    # message like any other (a type and no text, for System V).
    q = make_queue(kind, serializer="raw")
    q.put(b"")
    q.put_nowait(b"")
    assert q.qsize() == 2
    assert drain(q) == [b"", b""]


def test_put_many_stopped_by_a_bad_item_tells_how_many_were_put(make_queue, kind):
    q = make_queue(kind, serializer="json")
    items = [1, 2, {3}, 4]  # a set is not JSON
    with pytest.raises(TypeError) as info:
        q.put_many(items)
    assert drain(q) == [1, 2]
    assert getattr(info.value, "count", None) == 2, (
        "put_many() raised without saying how many items it had put"
    )


# -- bad input leaves the queue as it was ----------------------------------


def bad_calls(q, kind):
    """Calls that must fail and change nothing; yields (call, exception)."""
    yield lambda: q.put(b"x", timeout=-1), ipcq.QueueValueError
    yield lambda: q.put(b"x", timeout=float("nan")), ipcq.QueueValueError
    yield lambda: q.put(b"x", timeout="1"), TypeError
    yield lambda: q.get(timeout=-0.5), ipcq.QueueValueError
    yield lambda: q.put("not bytes"), TypeError
    yield lambda: q.put(b"x", pickle_protocol=2), ValueError
    yield lambda: q.put_many([b"x"], pickle_protocol=2), ValueError
    yield lambda: q.get_many(0), ipcq.QueueValueError
    yield lambda: q.get_many(-3), ipcq.QueueValueError
    yield lambda: q.get_into(b"read-only buffer" * 100), (TypeError, BufferError)
    if kind == "posix":
        yield lambda: q.put(b"x", priority=-1), ipcq.QueueValueError
        yield (
            lambda: q.put(b"x", priority=posixmq.PRIORITY_MAX + 1),
            ipcq.QueueValueError,
        )
        yield lambda: q.put(b"x", priority=2**64), (OverflowError, ipcq.QueueValueError)
        yield lambda: q.put_many([b"x"], priority=-1), ipcq.QueueValueError
        yield lambda: q.put(b"x" * (q.maxmsgsize + 1)), ipcq.QueueValueError
        yield lambda: q.get_into(bytearray(q.maxmsgsize - 1)), ipcq.QueueValueError
    else:
        yield lambda: q.put(b"x", msg_type=0), ipcq.QueueValueError
        yield lambda: q.put(b"x", msg_type=-7), ipcq.QueueValueError
        yield lambda: q.put(b"x", msg_type=2**64), (OverflowError, ipcq.QueueValueError)
        yield lambda: q.put_many([b"x"], msg_type=0), ipcq.QueueValueError
        yield lambda: q.get(msg_type=2**64), (OverflowError, ipcq.QueueValueError)
        yield lambda: q.get_into(bytearray(1)), ipcq.QueueValueError
        yield lambda: setattr(q, "max_bytes", 0), ipcq.QueueValueError
        yield lambda: setattr(q, "max_bytes", -1), ipcq.QueueValueError


def test_bad_input_leaves_the_queue_as_it_was(make_queue, kind):
    q = make_queue(kind, serializer="raw")
    q.put(b"one")
    q.put(b"two")
    capacity = q.maxsize if kind == "posix" else q.max_bytes
    for call, expected in bad_calls(q, kind):
        with pytest.raises(expected):
            call()
        assert q.qsize() == 2
    assert (q.maxsize if kind == "posix" else q.max_bytes) == capacity
    assert drain(q) == [b"one", b"two"]


# -- msgmax raised while a handle is in use -----------------------------------


def larger_than_known(key):
    write_sysctl(KERNEL + "msgmax", 1024)
    q = sysvmq.Queue(key, serializer="raw")
    try:
        q.put(b"small")
        q.get()  # the handle's buffer now fits 1024 bytes
        write_sysctl(KERNEL + "msgmax", 4096)
        other = sysvmq.Queue(key, create=False, serializer="raw")
        other.put(b"L" * 3000)
        other.detach()
        return len(q.get(timeout=2))
    finally:
        q.close()


def test_sysv_message_larger_than_the_msgmax_a_handle_knew(namespace):
    assert namespace(larger_than_known, 4243) == 3000


def larger_while_buffer_busy(key):
    write_sysctl(KERNEL + "msgmax", 1024)
    q = sysvmq.Queue(key, serializer="raw")
    other = sysvmq.Queue(key, create=False, serializer="raw")
    try:
        q.put(b"small")
        q.get()
        # One thread waits for type 2 holding the handle's buffer ...
        waiting = []
        waiter = threading.Thread(
            target=lambda: waiting.append(q.get(msg_type=2)), daemon=True
        )
        waiter.start()
        time.sleep(0.1)
        # ... while another takes a message longer than that buffer.
        write_sysctl(KERNEL + "msgmax", 4096)
        other.put(b"L" * 3000, msg_type=1)
        got = []
        cpu = cpu_seconds()
        taker = threading.Thread(
            target=lambda: got.append(len(q.get(msg_type=1))), daemon=True
        )
        taker.start()
        taker.join(2)
        in_time = list(got)
        spent = cpu_seconds() - cpu
        other.put(b"release", msg_type=2)
        waiter.join(2)
        taker.join(2)
        return in_time, round(spent, 2), waiting
    finally:
        other.detach()
        q.close()


def test_sysv_long_message_while_another_thread_holds_the_buffer(namespace):
    got, spent, waiting = namespace(larger_while_buffer_busy, 4244)
    assert got == [3000], f"no message after 2 s, {spent} s of CPU spent"
    assert spent < 0.5
    assert waiting == [b"release"]
