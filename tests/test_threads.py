"""Threads sharing one handle, closing under waiters, the GIL, and fork."""

import errno
import os
import queue
import struct
import threading
import time
from collections import Counter

import pytest
from conftest import unique_key
from reliability_util import (  # noqa: F401 (reap_children is a fixture)
    collect,
    cpu_seconds,
    kill_child,
    reap_children,
    run_in_child,
    start_child,
)

import ipcq
from ipcq import posixmq, sysvmq

ITEM = struct.Struct("<II")
END = b"end"


def thread_queue(make_queue, kind, **kwargs):
    if kind == "posix":
        return make_queue("posix", maxsize=8, maxmsgsize=64, serializer="raw", **kwargs)
    return make_queue("sysv", max_bytes=256, serializer="raw", **kwargs)


def join_all(threads, timeout):
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"threads still running: {stuck}"


def share_one_handle(q, producers, consumers, count):
    """Threads put and get through *q*; return what each consumer got."""
    results = [[] for _ in range(consumers)]
    errors = []

    def produce(p):
        try:
            for seq in range(0, count, 5):
                if seq % 2:
                    q.put_many([ITEM.pack(p, s) for s in range(seq, seq + 5)])
                else:
                    for s in range(seq, seq + 5):
                        q.put(ITEM.pack(p, s))
        except BaseException as exc:
            errors.append(exc)

    def consume(c):
        buf = bytearray(8192)
        turn = 0
        try:
            while True:
                turn += 1
                if turn % 3 == 0:
                    batch = q.get_many(3)
                elif turn % 3 == 1:
                    batch = [q.get()]
                else:
                    n, _ = q.get_into(buf)
                    batch = [bytes(buf[:n])]
                ends = batch.count(END)
                results[c].extend(ITEM.unpack(d) for d in batch if d != END)
                if ends:
                    # One END per consumer: give back any extra ones that
                    # get_many() took along.
                    for _ in range(ends - 1):
                        q.put(END)
                    return
        except BaseException as exc:
            errors.append(exc)

    makers = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    takers = [threading.Thread(target=consume, args=(c,)) for c in range(consumers)]
    for t in takers + makers:
        t.start()
    join_all(makers, 10)
    for _ in range(consumers):
        q.put(END)
    join_all(takers, 10)
    if errors:
        raise errors[0]
    return results


def test_threads_share_one_handle_exactly_once(make_queue, kind):
    # In a child, so that a crash fails this test instead of the run.
    q = thread_queue(make_queue, kind)
    producers, consumers, count = 4, 4, 3000
    results = run_in_child(share_one_handle, q, producers, consumers, count, timeout=30)

    received = Counter(item for got in results for item in got)
    expected = {(p, s) for p in range(producers) for s in range(count)}
    assert set(received) == expected
    assert max(received.values()) == 1
    for got in results:
        last = {}
        for p, s in got:
            assert s > last.get(p, -1)
            last[p] = s
    assert q.qsize() == 0


def take_after(barrier, q, got):
    barrier.wait()
    got.append(q.get())


def first_receives_at_once(make, rounds, threads):
    """Fresh handles, each read by *threads* threads starting together."""
    for _ in range(rounds):
        q = make()
        try:
            barrier = threading.Barrier(threads)
            got = []
            workers = [
                threading.Thread(target=take_after, args=(barrier, q, got))
                for _ in range(threads)
            ]
            for t in workers:
                t.start()
            # The threads wait in get() holding their buffers while the
            # others allocate theirs.
            time.sleep(0.02)
            for n in range(threads):
                q.put(b"%d" % n)
            join_all(workers, 10)
            assert sorted(got) == sorted(b"%d" % n for n in range(threads))
        finally:
            q.close()
    return "survived"


def test_first_receive_from_many_threads_at_once(make_queue, kind):
    # The first receive on a handle allocates its buffer: two threads
    # doing that at the same moment must not both install one.
    if kind == "posix":
        name = thread_queue(make_queue, kind).name

        def make():
            return posixmq.Queue(name, serializer="raw")
    else:

        def make():
            return sysvmq.Queue(None, serializer="raw")

    assert run_in_child(first_receives_at_once, make, 20, 8, timeout=60) == "survived"


@pytest.mark.parametrize("op", ["get", "put"])
def test_close_wakes_every_waiting_thread(make_queue, kind, op):
    q = thread_queue(make_queue, kind)
    if op == "put":
        while True:
            try:
                q.put_nowait(b"x" * 32)
            except queue.Full:
                break
    outcomes = []

    def wait(timeout):
        try:
            if op == "get":
                q.get(timeout=timeout)
            else:
                q.put(b"y" * 32, timeout=timeout)
            outcomes.append("returned")
        except BaseException as exc:
            outcomes.append(exc)

    waiters = [
        threading.Thread(target=wait, args=(timeout,))
        for timeout in (None, None, 10.0, 10.0)
    ]
    for t in waiters:
        t.start()
    time.sleep(0.2)
    start = time.monotonic()
    q.close()
    join_all(waiters, 2)

    assert time.monotonic() - start < 1.0
    assert len(outcomes) == 4
    for exc in outcomes:
        assert isinstance(exc, ipcq.QueueError), exc
        assert exc.errno == errno.EBADF == ipcq.QueueError.INVALID_DESCRIPTOR
    assert q.closed
    with pytest.raises(ipcq.QueueError) as info:
        q.close()
    assert info.value.errno == errno.EBADF
    with pytest.raises(ipcq.QueueError):
        q.get_nowait()


def test_posix_close_under_waiters_releases_the_descriptor(make_queue):
    q = thread_queue(make_queue, "posix")
    fd = q.fileno()
    waiter = threading.Thread(target=lambda: pytest.raises(ipcq.QueueError, q.get))
    waiter.start()
    time.sleep(0.1)
    q.close()
    join_all([waiter], 2)
    # The last waiter out closes the descriptor; before that it stays open
    # so that no other file can take its number while a thread polls it.
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF


def put_late(q_name_or_key, kind, delay, item):
    time.sleep(delay)
    if kind == "posix":
        with posixmq.Queue(q_name_or_key, create=False, serializer="raw") as other:
            other.put(item)
    else:
        sysvmq.Queue(q_name_or_key, create=False, serializer="raw").put(item)


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["untimed", "timed"])
def test_blocked_get_releases_the_gil(make_queue, kind, timeout):
    if kind == "posix":
        q = thread_queue(make_queue, kind)
        address = q.name
    else:
        address = unique_key()
        q = make_queue("sysv", key=address, serializer="raw")
    # A child puts a marker after 3 s whatever happens, so that a get that
    # kept the GIL (and starved the helper thread) ends instead of hanging.
    watchdog = start_child(put_late, address, kind, 3.0, b"watchdog")
    progress = Counter()

    def helper():
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            progress["loops"] += 1
        q.put(b"helper")

    t = threading.Thread(target=helper)
    start = time.monotonic()
    t.start()
    got = q.get(timeout=timeout)
    elapsed = time.monotonic() - start
    join_all([t], 5)

    kill_child(*watchdog)

    assert got == b"helper"
    assert progress["loops"] > 0
    assert elapsed < 2.0


def test_blocked_put_releases_the_gil(make_queue, kind):
    q = thread_queue(make_queue, kind)
    while True:
        try:
            q.put_nowait(b"f" * 32)
        except queue.Full:
            break
    taken = []
    t = threading.Timer(0.2, lambda: taken.append(q.get()))
    t.start()
    start = time.monotonic()
    q.put(b"waited", timeout=5)
    join_all([t], 5)

    assert time.monotonic() - start < 2.0
    assert taken == [b"f" * 32]


# -- fork ----------------------------------------------------------------------


def child_uses_inherited(q, count):
    got = [q.get(timeout=5) for _ in range(count)]
    for n in range(count):
        q.put(b"child %d" % n)
    return got


def test_both_sides_of_fork_keep_working(make_queue, kind):
    q = thread_queue(make_queue, kind)
    q.put(b"before fork")
    pid, r = start_child(child_uses_inherited, q, 6)
    for n in range(5):
        q.put(b"parent %d" % n, timeout=5)
    outcome, got = collect(pid, r, timeout=10)

    assert outcome == "ok", got
    assert got == [b"before fork"] + [b"parent %d" % n for n in range(5)]
    assert [q.get(timeout=5) for _ in range(6)] == [b"child %d" % n for n in range(6)]
    q.put(b"after")
    assert q.get_nowait() == b"after"


def close_in_child(q):
    fd = q.fileno()
    q.close()
    try:
        os.fstat(fd)
    except OSError:
        return "released"
    return "still open"


@pytest.mark.parametrize("timeout", [5.0, None], ids=["timed", "untimed"])
def test_posix_fork_while_a_thread_waits(make_queue, timeout):
    # The child inherits the handle in the state the waiting thread left
    # it (counted as a waiter: in ppoll() if timed, in mq_timedreceive()
    # if not).  Its close() must neither disturb the parent's waiter (wake
    # it into a busy loop) nor keep the child's descriptor open.
    q = thread_queue(make_queue, "posix")
    got = []
    waiter = threading.Thread(target=lambda: got.append(q.get(timeout=timeout)))
    waiter.start()
    time.sleep(0.1)
    cpu = cpu_seconds()
    child_result = run_in_child(close_in_child, q)
    time.sleep(0.5)
    spent = cpu_seconds() - cpu
    q.put(b"from the parent")
    join_all([waiter], 5)

    problems = []
    if spent >= 0.25:
        problems.append(f"the parent's waiting thread spun: {spent:.2f} s CPU in 0.5 s")
    if child_result != "released":
        problems.append("close() in the child left its descriptor open")
    assert not problems
    assert got == [b"from the parent"]


def test_sysv_detach_ends_timed_waits_and_lets_untimed_ones_complete(make_queue):
    q = thread_queue(make_queue, "sysv")
    other = sysvmq.Queue(q.key, create=False, serializer="raw")
    outcomes = {}

    def wait(name, **kwargs):
        try:
            outcomes[name] = q.get(**kwargs)
        except BaseException as exc:
            outcomes[name] = exc

    timed = threading.Thread(target=wait, args=("timed",), kwargs={"timeout": 10})
    untimed = threading.Thread(target=wait, args=("untimed",))
    timed.start()
    untimed.start()
    time.sleep(0.2)
    start = time.monotonic()
    q.detach()
    join_all([timed], 2)
    assert time.monotonic() - start < 1.0
    exc = outcomes["timed"]
    assert isinstance(exc, ipcq.QueueError) and exc.errno == errno.EBADF
    # The untimed wait sleeps on in msgrcv(2), and completes when a
    # message comes: it is not lost, the waiting call returns it.
    time.sleep(0.2)
    assert untimed.is_alive()
    other.put(b"for the untimed wait")
    join_all([untimed], 5)
    assert outcomes["untimed"] == b"for the untimed wait"
    assert other.qsize() == 0
