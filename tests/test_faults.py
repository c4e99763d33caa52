"""Faults while a call waits: signals, a removed queue, deadlines.

A blocked ``get`` or ``put`` must come back in every one of these cases,
with the error the documentation promises, and leave the queue as it was
when it did not complete.
"""

import errno
import os
import queue
import signal
import threading
import time

import pytest
from conftest import unique_key
from reliability_util import (  # noqa: F401 (reap_children is a fixture)
    alarm_after,
    cpu_seconds,
    interval_timer,
    median,
    reap_children,
    run_in_child,
)

import ipcq
from ipcq import posixmq, sysvmq

MSG = b"m" * 64


def small_queue(make_queue, kind, **kwargs):
    """A queue that two 64-byte messages fill, with the raw serializer."""
    if kind == "posix":
        return make_queue("posix", maxsize=2, maxmsgsize=64, serializer="raw", **kwargs)
    return make_queue("sysv", max_bytes=128, serializer="raw", **kwargs)


def fill(q):
    """Put 64-byte messages until the queue is full; return how many."""
    count = 0
    while True:
        try:
            q.put_nowait(MSG)
        except queue.Full:
            return count
        count += 1


def blocked_call(q, op, timeout):
    """The call a test blocks in: a get on an empty queue or a put on a full one."""
    if op == "get":
        return lambda: q.get(timeout=timeout)
    fill(q)
    return lambda: q.put(b"late", timeout=timeout)


class Count:
    """A signal handler that counts calls; optionally raises one exception."""

    def __init__(self, exc=None):
        self.calls = 0
        self.exc = exc

    def __call__(self, signum, frame):
        self.calls += 1
        if self.exc is not None:
            raise self.exc


# -- signal handlers during a blocked call --------------------------------


# Each of these tests interrupts the wait four times: a signal that is
# not seen by the wait it interrupts shows up as a late exception or as a
# wait that runs to its deadline.
TRIES = 4


@pytest.mark.parametrize("timeout", [None, 2.0], ids=["untimed", "timed"])
@pytest.mark.parametrize("op", ["get", "put"])
def test_raising_handler_breaks_the_wait_at_once(make_queue, kind, op, timeout):
    q = small_queue(make_queue, kind)
    call = blocked_call(q, op, timeout)
    before = q.qsize()

    for _ in range(TRIES):
        handler = Count(KeyboardInterrupt("from the handler"))
        start = time.monotonic()
        try:
            with alarm_after(0.05, handler), pytest.raises(KeyboardInterrupt) as info:
                call()
        except KeyboardInterrupt:
            pytest.fail("the handler's exception came out after the call ended")
        elapsed = time.monotonic() - start

        assert str(info.value) == "from the handler"
        assert handler.calls == 1
        assert 0.045 <= elapsed < 1.0
        assert q.qsize() == before


@pytest.mark.parametrize("timeout", [None, 2.0], ids=["untimed", "timed"])
@pytest.mark.parametrize("op", ["get", "put"])
def test_quiet_handler_gives_interrupted(make_queue, kind, op, timeout):
    q = small_queue(make_queue, kind)
    call = blocked_call(q, op, timeout)
    before = q.qsize()

    for _ in range(TRIES):
        handler = Count()
        start = time.monotonic()
        with alarm_after(0.05, handler), pytest.raises(ipcq.QueueError) as info:
            call()
        elapsed = time.monotonic() - start

        assert info.value.errno == errno.EINTR == ipcq.QueueError.INTERRUPTED
        assert isinstance(info.value, InterruptedError)
        assert handler.calls == 1
        assert 0.045 <= elapsed < 1.0
        assert q.qsize() == before


@pytest.mark.parametrize("op", ["get", "put"])
def test_retry_keeps_the_remaining_timeout(make_queue, kind, op):
    q = small_queue(make_queue, kind, retry_interrupted=True)
    call = blocked_call(q, op, 0.5)
    before = q.qsize()
    handler = Count()

    def handler_with_limit(signum, frame):
        # Stops after 1.5 s, so that a wait that restarted its full
        # timeout after every signal would fail the bound below, not hang.
        handler(signum, frame)
        if handler.calls >= 30:
            raise KeyboardInterrupt("the wait never ended")

    start = time.monotonic()
    with interval_timer(handler_with_limit, 0.05):
        with pytest.raises(queue.Empty if op == "get" else queue.Full):
            call()
    elapsed = time.monotonic() - start

    assert handler.calls >= 5
    assert 0.5 <= elapsed < 0.9
    assert q.qsize() == before


@pytest.mark.parametrize("op", ["get", "put"])
def test_retry_resumes_an_untimed_wait(make_queue, kind, op):
    q = small_queue(make_queue, kind, retry_interrupted=True)
    call = blocked_call(q, op, None)
    handler = Count()
    # Another thread completes the call's wait 0.3 s in, after two signals.
    if op == "get":
        action = threading.Timer(0.3, q.put, (b"wanted",))
    else:
        action = threading.Timer(0.3, q.get)
    action.start()
    try:
        with interval_timer(handler, 0.1, first=0.05):
            result = call()
    finally:
        action.cancel()
        action.join()

    assert handler.calls >= 2
    if op == "get":
        assert result == b"wanted"
        assert q.qsize() == 0
    else:
        assert result is None
        assert q.get_nowait() == MSG
        assert q.get_nowait() == b"late"


def test_interrupted_get_many_consumes_nothing(make_queue, kind):
    q = small_queue(make_queue, kind)
    handler = Count()
    with alarm_after(0.1, handler), pytest.raises(ipcq.QueueInterruptedError):
        q.get_many(5)
    q.put(b"a")
    q.put(b"b")
    assert q.get_many(5) == [b"a", b"b"]


# -- the queue removed under a waiting call --------------------------------


def remove_later(qid, delay, how, key):
    time.sleep(delay)
    if how == "remove":
        sysvmq.remove(qid)
    else:
        sysvmq.Queue(key, create=False).close()


@pytest.mark.parametrize("how", ["remove", "close"])
@pytest.mark.parametrize("timeout", [None, 5.0], ids=["untimed", "timed"])
@pytest.mark.parametrize("op", ["get", "put"])
def test_sysv_removed_while_waiting(make_queue, op, timeout, how):
    key = unique_key()
    q = make_queue("sysv", key=key, max_bytes=128, serializer="raw")
    call = blocked_call(q, op, timeout)
    remover = threading.Thread(
        target=run_in_child, args=(remove_later, q.id, 0.2, how, key)
    )
    remover.start()
    start = time.monotonic()
    try:
        with pytest.raises(ipcq.QueueNotFoundError) as info:
            call()
    finally:
        remover.join()
    elapsed = time.monotonic() - start

    assert isinstance(info.value, FileNotFoundError)
    assert info.value.errno == errno.EIDRM
    assert "removed" in str(info.value)
    assert 0.15 <= elapsed < 2.0
    with pytest.raises(FileNotFoundError):
        sysvmq.Queue(key, create=False)
    # The handle's own close() finds the queue gone and says nothing.
    q.close()
    assert q.closed


def unlink_then_put(name, inherited, delay):
    time.sleep(delay)
    posixmq.unlink(name)
    gone = outcome_of(lambda: posixmq.Queue(name, create=False))
    # A new queue under the same name is a different queue.
    with posixmq.Queue(name, 2, 64, serializer="raw") as fresh:
        fresh.put(b"to the new queue")
    inherited.put(b"to the unlinked queue")
    return gone


def outcome_of(func):
    try:
        result = func()
    except Exception as exc:
        return exc
    result.close()
    return result


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["untimed", "timed"])
def test_posix_unlinked_while_waiting_stays_usable(make_queue, timeout):
    # mq_unlink(3) removes the name at once; the queue lives on until its
    # last descriptor closes, so a waiter keeps waiting on it, and a
    # process that still has it open can reach that waiter.
    q = make_queue("posix", maxsize=2, maxmsgsize=64, serializer="raw")
    box = []
    child = threading.Thread(
        target=lambda: box.append(run_in_child(unlink_then_put, q.name, q, 0.2))
    )
    child.start()
    try:
        got = q.get(timeout=timeout)
    finally:
        child.join()

    assert got == b"to the unlinked queue"
    assert isinstance(box[0], FileNotFoundError)
    assert isinstance(box[0], ipcq.QueueError)
    assert q.qsize() == 0
    with posixmq.Queue(q.name, create=False, serializer="raw") as fresh:
        assert fresh.get_nowait() == b"to the new queue"


def test_posix_unlinked_queue_keeps_its_messages(make_queue):
    q = make_queue("posix", maxsize=3, maxmsgsize=64, serializer="raw")
    q.put(b"one")
    q.put(b"two")
    posixmq.unlink(q.name)

    with pytest.raises(FileNotFoundError):
        posixmq.unlink(q.name)
    assert q.qsize() == 2
    q.put(b"three")
    assert [q.get_nowait() for _ in range(3)] == [b"one", b"two", b"three"]


# -- deadlines --------------------------------------------------------------


@pytest.mark.parametrize("op", ["get", "put"])
def test_timed_wait_ends_close_to_its_deadline(make_queue, kind, op):
    q = small_queue(make_queue, kind)
    call = blocked_call(q, op, 0.1)
    expected = queue.Empty if op == "get" else queue.Full
    late = []
    for _ in range(5):
        start = time.monotonic()
        with pytest.raises(expected):
            call()
        late.append(time.monotonic() - start - 0.1)

    assert min(late) >= 0
    assert median(late) < 0.010


@pytest.mark.parametrize("op", ["get", "put"])
def test_timed_wait_does_not_spin(make_queue, kind, op):
    q = small_queue(make_queue, kind)
    call = blocked_call(q, op, 1.0)
    expected = queue.Empty if op == "get" else queue.Full

    cpu = cpu_seconds()
    start = time.monotonic()
    with pytest.raises(expected):
        call()
    elapsed = time.monotonic() - start
    cpu = cpu_seconds() - cpu

    assert 1.0 <= elapsed < 1.5
    assert cpu < 0.2


def test_zero_timeout_does_not_wait(make_queue, kind):
    q = small_queue(make_queue, kind)
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0)
    fill(q)
    with pytest.raises(queue.Full):
        q.put(b"x", timeout=0)
    assert time.monotonic() - start < 0.05


@pytest.mark.parametrize("bad", [-1, -0.001, float("nan")])
def test_bad_timeout_is_refused_before_anything(make_queue, kind, bad):
    q = small_queue(make_queue, kind)
    q.put(b"kept")
    with pytest.raises(ipcq.QueueValueError):
        q.get(timeout=bad)
    with pytest.raises(ipcq.QueueValueError):
        q.put(b"never", timeout=bad)
    assert q.get_nowait() == b"kept"
    assert q.qsize() == 0


# -- a peer that dies -------------------------------------------------------


def die_holding(q, sig):
    q.put(b"sent before dying")
    os.kill(os.getpid(), sig)


@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"]
)
def test_a_dead_writer_does_not_wedge_the_queue(make_queue, kind, sig):
    q = small_queue(make_queue, kind)
    pid = os.fork()
    if pid == 0:
        try:
            die_holding(q, sig)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)

    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == sig
    assert q.get(timeout=2) == b"sent before dying"
    q.put(b"after")
    assert q.get_nowait() == b"after"
