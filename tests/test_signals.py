"""Signals and threads while a call waits, on both queue kinds."""

import queue
import signal
import threading
import time

import pytest

from ipcq import QueueError


@pytest.fixture
def alarm():
    """Arms SIGALRM with a Python handler; disarms and restores after."""
    previous = signal.getsignal(signal.SIGALRM)
    calls = []

    def arm(delay, interval=0.0, handler=None):
        def record(signum, frame):
            calls.append(signum)
            if handler is not None:
                handler()

        signal.signal(signal.SIGALRM, record)
        signal.setitimer(signal.ITIMER_REAL, delay, interval)
        return calls

    yield arm
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def fill(q, kind):
    """Make the next put block: a full queue of either kind."""
    if kind == "sysv":
        q.max_bytes = 64
    payload = b"x" * 40
    while True:
        try:
            q.put_nowait(payload)
        except queue.Full:
            return payload


def blocked_call(q, kind, op, **kwargs):
    if op == "get":
        return lambda: q.get(**kwargs)
    payload = fill(q, kind)
    return lambda: q.put(payload, **kwargs)


@pytest.mark.parametrize("op", ["get", "put"])
@pytest.mark.parametrize("timeout", [None, 5])
def test_signal_interrupts_with_interrupted(make_queue, kind, alarm, op, timeout):
    q = make_queue(kind, serializer="raw")
    call = blocked_call(q, kind, op, timeout=timeout)
    size = q.qsize()
    calls = alarm(0.05)
    start = time.monotonic()
    with pytest.raises(QueueError) as info:
        call()
    assert info.value.errno == QueueError.INTERRUPTED
    assert isinstance(info.value, InterruptedError)
    assert calls == [signal.SIGALRM]  # the handler ran before the raise
    assert time.monotonic() - start < 3
    assert q.qsize() == size  # nothing sent, nothing consumed


@pytest.mark.parametrize("op", ["get", "put"])
def test_exception_from_handler_comes_out_at_once(make_queue, kind, alarm, op):
    q = make_queue(kind, serializer="raw", retry_interrupted=True)
    call = blocked_call(q, kind, op)
    size = q.qsize()

    def interrupt():
        raise KeyboardInterrupt

    alarm(0.05, handler=interrupt)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        call()
    assert time.monotonic() - start < 3
    assert q.qsize() == size


@pytest.mark.parametrize("op", ["get", "put"])
def test_retry_resumes_with_the_remaining_timeout(make_queue, kind, alarm, op):
    q = make_queue(kind, serializer="raw", retry_interrupted=True)
    call = blocked_call(q, kind, op, timeout=0.5)
    calls = alarm(0.05, 0.05)
    start = time.monotonic()
    with pytest.raises(queue.Empty if op == "get" else queue.Full):
        call()
    waited = time.monotonic() - start
    assert len(calls) >= 3  # several signals came and were absorbed
    assert 0.5 <= waited < 3  # the deadline held across the restarts


def test_retry_still_receives(make_queue, kind, alarm):
    q = make_queue(kind, retry_interrupted=True)
    calls = alarm(0.02, 0.02)
    timer = threading.Timer(0.3, q.put, args=("late",))
    timer.start()
    try:
        assert q.get(timeout=5) == "late"
    finally:
        timer.join()
    assert len(calls) >= 3


def test_blocked_call_releases_the_gil(q):
    started = threading.Event()
    result = []

    def wait():
        started.set()
        result.append(q.get(timeout=5))

    thread = threading.Thread(target=wait)
    thread.start()
    started.wait()
    # This thread keeps running Python code while the other one waits.
    spins = 0
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        spins += 1
    q.put("done")
    thread.join(5)
    assert result == ["done"]
    assert spins > 1000


def test_close_while_other_threads_wait(q):
    errors = []

    def wait():
        try:
            q.get()
        except QueueError as exc:
            errors.append(exc.errno)

    threads = [threading.Thread(target=wait) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    q.close()
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == [QueueError.INVALID_DESCRIPTOR] * 3
