"""Untimed waits: the waiting system call itself, and what follows one.

An untimed POSIX wait sleeps inside mq_timedsend/mq_timedreceive (in
slices, to notice close()), and after a receive that had to wait the next
untimed one goes straight to the waiting call.  These tests check that
the messages, their order, priorities and types, and the non-waiting
calls are unaffected by that.
"""

import ctypes
import os
import queue
import resource
import signal
import threading
import time

import pytest
from conftest import unique_name
from reliability_util import collect, start_child

from ipcq import posixmq, sysvmq


def wait_then_put(q, delay, items):
    """Start a thread that puts *items* (item, tag) after *delay* seconds."""

    def run():
        time.sleep(delay)
        for item, tag in items:
            if isinstance(q, posixmq.Queue):
                q.put(item, priority=tag)
            else:
                q.put(item, msg_type=tag)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def raw(make_queue, kind):
    if kind == "posix":
        return make_queue.posix(maxsize=4, maxmsgsize=64, serializer="raw")
    return make_queue.sysv(max_bytes=256, serializer="raw")


def test_receives_after_a_wait_keep_order_and_tags(raw, kind):
    thread = wait_then_put(raw, 0.1, [(b"first", 2)])
    if kind == "posix":
        assert raw.get_with_priority() == (b"first", 2)
    else:
        assert raw.get_with_type() == (b"first", 2)
    thread.join(5)

    # The next untimed receives go straight to the waiting call; the
    # messages already there come out as a plain receive returns them.
    if kind == "posix":
        for item, prio in [(b"low", 1), (b"high", 9), (b"mid", 5), (b"mid2", 5)]:
            raw.put(item, priority=prio)
        got = [raw.get_with_priority() for _ in range(4)]
        assert got == [(b"high", 9), (b"mid", 5), (b"mid2", 5), (b"low", 1)]
    else:
        for item, mtype in [(b"a", 1), (b"b", 7), (b"c", 1)]:
            raw.put(item, msg_type=mtype)
        assert raw.get_with_type(msg_type=7) == (b"b", 7)
        assert raw.get_with_type() == (b"a", 1)
        assert raw.get_with_type() == (b"c", 1)


def test_non_waiting_calls_after_a_wait(raw):
    thread = wait_then_put(raw, 0.1, [(b"x", 1)])
    assert raw.get() == b"x"
    thread.join(5)

    with pytest.raises(queue.Empty):
        raw.get_nowait()
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        raw.get(timeout=0.1)
    elapsed = time.monotonic() - start
    assert 0.09 <= elapsed < 2.0
    with pytest.raises(queue.Empty):
        raw.get_many(5, block=False)
    buf = bytearray(8192)
    with pytest.raises(queue.Empty):
        raw.get_into(buf, block=False)


def test_a_blocked_put_goes_through_when_room_appears(make_queue):
    q = make_queue.posix(maxsize=2, maxmsgsize=16, serializer="raw")
    q.put(b"1")
    q.put(b"2")
    done = []

    def put_blocked():
        q.put(b"3")
        done.append(time.monotonic())

    thread = threading.Thread(target=put_blocked)
    thread.start()
    time.sleep(0.15)
    assert not done
    freed = time.monotonic()
    assert q.get() == b"1"
    thread.join(5)
    assert done and done[0] - freed < 1.0

    # After a put that waited: a put with room is immediate, a
    # non-blocking one on a full queue fails at once, a timed one on time.
    assert q.get() == b"2"
    q.put(b"4")
    with pytest.raises(queue.Full):
        q.put_nowait(b"5")
    start = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(b"5", timeout=0.1)
    assert 0.09 <= time.monotonic() - start < 2.0
    assert q.get_many(5) == [b"3", b"4"]


def echo(make, count):
    """In a child: get *count* messages from one queue, put them back."""
    inbox, outbox = make()
    for _ in range(count):
        if isinstance(outbox, posixmq.Queue):
            item, prio = inbox.get_with_priority()
            outbox.put(item, priority=prio)
        else:
            item, mtype = inbox.get_with_type()
            outbox.put(item, msg_type=mtype)
    return count


def test_ping_pong_between_processes(make_queue, kind):
    count = 300
    if kind == "posix":
        names = [unique_name(), unique_name()]
        ping, pong = (
            make_queue.posix(name=name, maxsize=4, maxmsgsize=64, serializer="raw")
            for name in names
        )

        def make():
            return tuple(
                posixmq.Queue(n, create=False, serializer="raw") for n in names
            )

        tag = "priority"
    else:
        ping = make_queue.sysv(max_bytes=256, serializer="raw")
        pong = make_queue.sysv(max_bytes=256, serializer="raw")
        keys = (ping.key, pong.key)

        def make():
            return tuple(sysvmq.Queue(k, create=False, serializer="raw") for k in keys)

        tag = "msg_type"
    child = start_child(echo, make, count)
    got = []
    for i in range(count):
        ping.put(str(i).encode(), **{tag: i % 7 + 1})
        got.append(
            pong.get_with_priority() if kind == "posix" else pong.get_with_type()
        )
    assert collect(*child, timeout=30) == ("ok", count)
    assert got == [(str(i).encode(), i % 7 + 1) for i in range(count)]


# -- a descriptor in O_NONBLOCK mode ----------------------------------------


class MqAttr(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_long) for name in ("flags", "maxmsg", "msgsize", "curmsgs")
    ]


def set_nonblocking(fd):
    """Set O_NONBLOCK on a POSIX queue descriptor, as another process
    sharing its file description could."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        mq_setattr = libc.mq_setattr
    except AttributeError:
        mq_setattr = ctypes.CDLL("librt.so.1", use_errno=True).mq_setattr
    attr = MqAttr(os.O_NONBLOCK, 0, 0, 0)
    if mq_setattr(fd, ctypes.byref(attr), None) != 0:
        raise OSError(ctypes.get_errno(), "mq_setattr")


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.parametrize("op", ["get", "put"])
def test_untimed_waits_on_a_nonblocking_descriptor(make_queue, op):
    q = make_queue.posix(maxsize=2, maxmsgsize=16, serializer="raw")
    set_nonblocking(q.fileno())
    if op == "put":
        q.put_many([b"a", b"b"])

    def later():
        time.sleep(0.3)
        if op == "get":
            q.put(b"late")
        else:
            assert q.get() == b"a"

    thread = threading.Thread(target=later)
    cpu = cpu_seconds()
    thread.start()
    if op == "get":
        assert q.get() == b"late"
    else:
        q.put(b"c")
    thread.join(5)
    # The wait slept in ppoll(): it did not spin on EAGAIN.
    assert cpu_seconds() - cpu < 0.15
    if op == "put":
        assert q.get_many(5) == [b"b", b"c"]


def close_from_another_thread(q, delay):
    threading.Timer(delay, q.close).start()


def test_close_ends_an_untimed_wait_after_a_waited_receive(make_queue):
    q = make_queue.posix(maxsize=2, maxmsgsize=16, serializer="raw")
    thread = wait_then_put(q, 0.05, [(b"x", 0)])
    assert q.get() == b"x"
    thread.join(5)
    close_from_another_thread(q, 0.1)
    start = time.monotonic()
    with pytest.raises(posixmq.QueueError) as info:
        q.get()
    assert info.value.errno == posixmq.QueueError.INVALID_DESCRIPTOR
    assert time.monotonic() - start < 1.0


def wait_alone(name):
    """In a forked child, alone in its process: an untimed get, which
    sleeps without a timer, ended first by a signal handler that raises,
    then by a message."""
    q = posixmq.Queue(name, create=False, serializer="raw")

    class Stop(Exception):
        pass

    def handler(signum, frame):
        raise Stop

    signal.signal(signal.SIGUSR1, handler)
    assert threading.active_count() == 1
    os.kill(os.getppid(), signal.SIGUSR2)  # ready
    start = time.monotonic()
    try:
        q.get()
    except Stop:
        stopped = time.monotonic() - start
    else:
        return "not interrupted"
    got = q.get()
    return stopped, got


def test_untimed_wait_alone_in_a_process(make_queue):
    q = make_queue.posix(maxsize=2, maxmsgsize=16, serializer="raw")
    ready = threading.Event()
    old = signal.signal(signal.SIGUSR2, lambda *args: ready.set())
    try:
        pid, fd = start_child(wait_alone, q.name)
        assert ready.wait(10)
        time.sleep(0.2)
        os.kill(pid, signal.SIGUSR1)
        time.sleep(0.2)
        q.put(b"after")
        kind, value = collect(pid, fd, timeout=10)
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert kind == "ok", value
    stopped, got = value
    assert 0.1 < stopped < 5
    assert got == b"after"


# -- the next untimed get after one that waited, alone in a process ----------


def waits_after_a_wait(kind, address):
    """In a forked child, alone in its process: untimed gets on handles
    that have waited, ended by SIGALRM handlers.  Returns what each got."""
    if kind == "posix":

        def handle(**kwargs):
            return posixmq.Queue(address, create=False, serializer="raw", **kwargs)
    else:

        def handle(**kwargs):
            return sysvmq.Queue(address, create=False, serializer="raw", **kwargs)

    assert threading.active_count() == 1
    writer = handle()
    retrying = handle(retry_interrupted=True)
    failing = handle()
    results = []
    actions = []

    def on_alarm(signum, frame):
        actions.pop(0)()

    def alarm_then(call, action):
        actions[:] = [action]
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        try:
            return call()
        except BaseException as exc:
            return type(exc).__name__, getattr(exc, "errno", None)

    class Stop(Exception):
        pass

    def stop():
        raise Stop

    signal.signal(signal.SIGALRM, on_alarm)
    # The queue is empty, so the first get waits; the handler puts a
    # message and the retrying handle waits again and gets it.
    results.append(alarm_then(retrying.get, lambda: writer.put(b"one")))
    # The same on a handle that has waited.
    results.append(alarm_then(retrying.get, lambda: writer.put(b"two")))
    # A handler that raises: out at once, nothing taken.
    results.append(alarm_then(retrying.get, stop))
    results.append(writer.qsize())
    # The parent puts a message in a moment, for which the failing handle
    # waits; then it fails with INTERRUPTED, with or without a message put
    # by the handler, which stays queued.
    os.kill(os.getppid(), signal.SIGUSR2)
    results.append(failing.get())
    results.append(alarm_then(failing.get, lambda: None))
    results.append(alarm_then(failing.get, lambda: writer.put(b"four")))
    results.append(failing.get())
    return results


def test_waits_after_a_wait_handle_signals(make_queue, kind):
    if kind == "posix":
        q = make_queue.posix(maxsize=4, maxmsgsize=16, serializer="raw")
        address = q.name
    else:
        q = make_queue.sysv(max_bytes=256, serializer="raw")
        address = q.key
    timers = []

    def put_later(*args):
        timers.append(threading.Timer(0.2, q.put, args=(b"three",)))
        timers[-1].start()

    old = signal.signal(signal.SIGUSR2, put_later)
    try:
        kind_, value = collect(*start_child(waits_after_a_wait, kind, address))
    finally:
        signal.signal(signal.SIGUSR2, old)
        for timer in timers:
            timer.join(5)
    assert kind_ == "ok", value
    interrupted = ("QueueInterruptedError", posixmq.QueueError.INTERRUPTED)
    assert value == [
        b"one",
        b"two",
        ("Stop", None),
        0,
        b"three",
        interrupted,
        interrupted,
        b"four",
    ]
    assert q.qsize() == 0
