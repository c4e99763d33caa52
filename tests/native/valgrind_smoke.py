"""A short workload that passes through every C path of ipcq, for valgrind.

tests/native/run_valgrind.sh runs it under memcheck with
PYTHONMALLOC=malloc, so that every allocation, Python's included, goes
through malloc() where memcheck sees it.  It exercises both queue kinds:
every serializer, batches, receiving into a buffer, timeouts, every
error path (Empty, Full, QueueError, DecodeError, too-big messages,
closed handles), a thread woken by close(), and a forked child.  It
removes every queue it makes and exits 0 only if every check held.
"""

import gc
import os
import queue
import signal
import sys
import threading
import time
import uuid

from ipcq import DecodeError, QueueError, posixmq, sysvmq

ROUNDS = int(os.environ.get("IPCQ_SMOKE_ROUNDS", "60"))
TAG = uuid.uuid4().hex[:8]
ITEMS = [None, 1, 2.5, "text", b"bytes", [1, "two", 3.0], {"k": [1, 2]}]


def posix(suffix, **kwargs):
    name = f"/ipcq-valgrind-{TAG}-{suffix}"
    kwargs.setdefault("maxsize", 8)
    kwargs.setdefault("maxmsgsize", 512)
    return posixmq.Queue(name, **kwargs)


def expect(exc_type, func, *args, **kwargs):
    try:
        func(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError(f"{func!r} did not raise {exc_type.__name__}")


def exercise(q, tag_name, tag, buf):
    for n in range(ROUNDS):
        for item in ITEMS:
            q.put(item, **{tag_name: tag})
        got = [q.get_nowait() for _ in ITEMS]
        assert got == ITEMS, got
        assert q.put_many(ITEMS[:4], **{tag_name: tag}) == 4
        assert q.get_many(10, block=False) == ITEMS[:4]
        q.put(b"x" * (n % 200), **{tag_name: tag + 1})
        n, got_tag = q.get_into(buf, block=False)
        assert got_tag == tag + 1 and n > 0
        expect(queue.Empty, q.get_nowait)
        expect(queue.Empty, q.get, timeout=0.001)
        expect(queue.Empty, q.get_many, 3, timeout=0)
        expect(QueueError, q.put, b"x", timeout=-1)
        expect(QueueError, q.put, b"x" * 10000)
        expect(ValueError, q.put, 1, pickle_protocol=99)


def decode_errors(writer, reader):
    for n in range(ROUNDS):
        writer.put(b"\xff\x00 not json %d" % n)
        exc = expect(DecodeError, reader.get_nowait)
        assert exc.payload.startswith(b"\xff\x00")
        writer.put(b"[1]")
        writer.put(b"{")
        exc = expect(DecodeError, reader.get_many, 5, block=False)
        assert exc.items == [[1]]


def fill(q):
    while True:
        try:
            q.put_nowait(b"f" * 32)
        except queue.Full:
            return


def close_wakes_waiter(q):
    errors = []

    def wait():
        try:
            q.get(timeout=10)
        except QueueError as exc:
            errors.append(exc.errno)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.5)
    q.close()
    t.join(20)
    assert not t.is_alive() and len(errors) == 1, errors


def threads_share(make, rounds=5, threads=4):
    """Fresh handles whose first receives happen in several threads.

    The threads wait without a timeout, so each holds the handle's
    receive buffer inside the system call while the others take theirs.
    """
    for _ in range(rounds):
        q = make()
        got = []
        barrier = threading.Barrier(threads)

        def take(q=q, got=got, barrier=barrier):
            barrier.wait()
            got.append(q.get())

        workers = [threading.Thread(target=take, daemon=True) for _ in range(threads)]
        for t in workers:
            t.start()
        time.sleep(0.3)
        for n in range(threads):
            q.put(b"%d" % n)
        for t in workers:
            t.join(30)
        assert sorted(got) == [b"%d" % n for n in range(threads)], got
        q.close()


def interrupted(q):
    previous = signal.signal(signal.SIGALRM, lambda s, f: None)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        exc = expect(QueueError, q.get, timeout=10)
        assert exc.errno == QueueError.INTERRUPTED
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def forked(q):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            q.put(b"from the child")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert q.get(timeout=10) == b"from the child"


def main():
    buf = bytearray(8192)

    q = posix("main")
    exercise(q, "priority", 5, buf)
    forked(q)
    interrupted(q)
    q.close()
    expect(QueueError, q.close)
    expect(QueueError, q.put, 1)
    q.unlink()

    threads_share(lambda: posix("threads", serializer="raw"))
    posixmq.unlink(f"/ipcq-valgrind-{TAG}-threads")

    raw = posix("dec", serializer="raw")
    dec = posixmq.Queue(raw.name, serializer="json")
    decode_errors(raw, dec)
    dec.close()
    raw.close()
    raw.unlink()

    small = posix("small", maxsize=2, maxmsgsize=64, serializer="raw")
    fill(small)
    expect(queue.Full, small.put_nowait, b"x")
    expect(queue.Full, small.put, b"x", timeout=0.001)
    assert small.put_many([b"a", b"b"], block=False) == 0
    small.close()
    small.unlink()
    waiting = posix("wait")
    waiting.unlink()
    close_wakes_waiter(waiting)

    s = sysvmq.Queue()
    exercise(s, "msg_type", 5, buf)
    forked(s)
    interrupted(s)
    s.close()
    expect(QueueError, s.close)
    expect(QueueError, s.put, 1)

    threads_share(lambda: sysvmq.Queue(serializer="raw"))

    keyed = sysvmq.Queue(int(TAG, 16) & 0x7FFFFFFF or 1, serializer="raw")
    dec = sysvmq.Queue(keyed.key, serializer="json")
    decode_errors(keyed, dec)
    dec.detach()
    keyed.put(b"long" * 100)
    expect(QueueError, keyed.get_into, bytearray(8), block=False)
    assert keyed.get_nowait() == b"long" * 100
    keyed.close()

    small = sysvmq.Queue(None, 64, serializer="raw")
    fill(small)
    expect(queue.Full, small.put_nowait, b"x")
    expect(queue.Full, small.put, b"x", timeout=0.001)
    expect(QueueError, small.put, b"x" * 100)
    close_wakes_waiter(sysvmq.Queue(None, 64, serializer="raw"))
    small.close()

    del q, s, small, raw, dec, keyed, buf, waiting
    gc.collect()
    print("valgrind smoke workload: all checks held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
