"""ipcq.aio: waiting through the event loop, with real peer processes.

The peers are separate Python processes that open the test's queue by
name or key, as an unrelated program would, and put or get while the
event loop waits.
"""

import asyncio
import os
import queue
import subprocess
import sys
import textwrap
import time

import pytest

import ipcq
from ipcq import DecodeError, QueueError, posixmq, sysvmq
from ipcq.aio import AsyncPosixQueue, AsyncQueue, AsyncSysvQueue

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(ipcq.__file__)))


def run(coro, limit=10):
    """Run *coro* in a new event loop, failing after *limit* seconds."""
    return asyncio.run(asyncio.wait_for(coro, limit))


class Peer:
    """A Python process that opens queue *q* and runs *body* with it."""

    def __init__(self, q, body, serializer=None):
        if isinstance(q, posixmq.Queue):
            open_it = f"posixmq.Queue({q.name!r}, create=False"
            leave = "q.close()"
        else:
            open_it = f"sysvmq.Queue({q.key}, create=False"
            leave = "q.detach()"
        open_it += f", serializer={serializer!r})"
        source = (
            "import sys, time\n"
            "from ipcq import posixmq, sysvmq\n"
            f"q = {open_it}\n"
            "try:\n"
            + textwrap.indent(textwrap.dedent(body), "    ")
            + f"\nfinally:\n    {leave}\n"
        )
        env = dict(os.environ, PYTHONPATH=ROOT)
        # Run from the directory that holds the ipcq under test, which
        # "python -c" puts first on sys.path.
        self.proc = subprocess.Popen(
            [sys.executable, "-c", source],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )

    def finish(self, timeout=10):
        """Wait for the peer; return its output; fail if it failed."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.communicate()
        assert self.proc.returncode == 0, out
        return out


def test_wrapping_picks_the_class_of_the_queue(make_queue, kind):
    q = make_queue(kind)
    aq = AsyncQueue(q)
    expected = AsyncPosixQueue if kind == "posix" else AsyncSysvQueue
    assert type(aq) is expected
    assert aq.queue is q
    assert not aq.closed


def test_wrapping_something_else_is_a_type_error():
    with pytest.raises(TypeError, match="posixmq.Queue"):
        AsyncQueue(queue.Queue())


def test_wrapping_a_closed_queue_fails(make_queue):
    q = make_queue("posix")
    q.close()
    with pytest.raises(QueueError) as info:
        AsyncQueue(q)
    assert info.value.errno == QueueError.INVALID_DESCRIPTOR


def test_get_waits_for_a_peer_process(make_queue, kind):
    q = make_queue(kind)
    aq = AsyncQueue(q)

    async def main():
        start = time.monotonic()
        peer = Peer(q, "time.sleep(0.3)\nq.put({'from': 'peer'})")
        item = await aq.get()
        waited = time.monotonic() - start
        peer.finish()
        return item, waited

    item, waited = run(main())
    assert item == {"from": "peer"}
    assert waited >= 0.25


def test_put_waits_for_room_made_by_a_peer(make_queue, kind):
    if kind == "posix":
        q = make_queue(kind, maxsize=3)
        for i in range(3):
            q.put(i)
    else:
        # Three 100-byte messages fill a 300-byte System V queue.
        q = make_queue(kind, max_bytes=300, serializer="raw")
        for i in range(3):
            q.put(bytes([i]) * 100)
    aq = AsyncQueue(q)
    late = 4 if kind == "posix" else b"\x04" * 100

    async def main():
        start = time.monotonic()
        peer = Peer(
            q,
            "time.sleep(0.3)\nprint(repr(q.get()))",
            serializer=None if kind == "posix" else "raw",
        )
        await aq.put(late)
        waited = time.monotonic() - start
        return peer.finish(), waited

    out, waited = run(main())
    assert waited >= 0.25
    first = 0 if kind == "posix" else b"\x00" * 100
    assert out.strip() == repr(first)
    remaining = [q.get_nowait() for _ in range(3)]
    assert remaining[-1] == late
    assert q.empty()


def test_get_with_timeout_raises_empty(make_queue, kind):
    aq = AsyncQueue(make_queue(kind))

    async def main():
        start = time.monotonic()
        with pytest.raises(queue.Empty):
            await aq.get(timeout=0.2)
        return time.monotonic() - start

    waited = run(main())
    assert 0.2 <= waited < 5


def test_put_with_timeout_raises_full(make_queue, kind):
    if kind == "posix":
        q = make_queue(kind, maxsize=1)
    else:
        q = make_queue(kind, max_bytes=10, serializer="raw")
    first = b"0123456789" if kind == "sysv" else "first"
    q.put(first)
    aq = AsyncQueue(q)

    async def main():
        start = time.monotonic()
        with pytest.raises(queue.Full):
            await aq.put(first, timeout=0.2)
        return time.monotonic() - start

    waited = run(main())
    assert 0.2 <= waited < 5
    assert q.qsize() == 1


def test_non_blocking_calls_fail_at_once(make_queue, kind):
    q = make_queue(kind, **({"maxsize": 1} if kind == "posix" else {}))
    aq = AsyncQueue(q)

    async def main():
        with pytest.raises(queue.Empty):
            await aq.get(block=False)
        with pytest.raises(queue.Empty):
            aq.get_nowait()
        await aq.put("a", block=False)
        assert aq.get_nowait() == "a"
        aq.put_nowait("b")
        assert await aq.get(block=False) == "b"

    run(main())


def test_invalid_timeouts_are_rejected_as_by_the_queue(make_queue, kind):
    aq = AsyncQueue(make_queue(kind))

    async def main():
        with pytest.raises(ValueError, match="non-negative"):
            await aq.get(timeout=-1)
        with pytest.raises(ValueError, match="non-negative"):
            await aq.put("x", timeout=float("nan"))
        with pytest.raises(TypeError):
            await aq.get(timeout="1")

    run(main())
    assert aq.queue.empty()


def test_posix_priorities(make_queue):
    aq = AsyncQueue(make_queue("posix"))

    async def main():
        await aq.put("low", priority=1)
        await aq.put("high", priority=9)
        return [await aq.get_with_priority(), await aq.get_with_priority()]

    assert run(main()) == [("high", 9), ("low", 1)]


def test_sysv_types_select_messages(make_queue):
    aq = AsyncQueue(make_queue("sysv"))

    async def main():
        await aq.put("one", 1)
        await aq.put("three", msg_type=3)
        await aq.put("two", msg_type=2)
        return [
            await aq.get_with_type(2),
            await aq.get(msg_type=-3),
            await aq.get_with_type(),
        ]

    assert run(main()) == [("two", 2), "one", ("three", 3)]


def test_pickle_protocol_reaches_the_queue(make_queue, kind):
    q = make_queue(kind)
    aq = AsyncQueue(q)
    raw = make_queue.reopen(q, serializer="raw")

    async def main():
        await aq.put(("x",), pickle_protocol=5)

    run(main())
    assert raw.get_nowait()[:2] == b"\x80\x05"


def test_concurrent_getters_get_distinct_messages(make_queue, kind):
    q = make_queue(kind)
    aq = AsyncQueue(q)
    count = 30

    async def main():
        getters = [asyncio.ensure_future(aq.get()) for _ in range(count)]
        await asyncio.sleep(0.05)
        peer = Peer(q, f"for i in range({count}):\n    q.put(i)")
        results = await asyncio.gather(*getters)
        peer.finish()
        return results

    results = run(main())
    assert sorted(results) == list(range(count))
    assert q.empty()


def test_concurrent_putters_all_arrive(make_queue, kind):
    if kind == "posix":
        q = make_queue(kind, maxsize=2)
    else:
        q = make_queue(kind, max_bytes=200, serializer="raw")
    aq = AsyncQueue(q)
    items = [bytes([i]) * 50 for i in range(12)]

    async def main():
        putters = [asyncio.ensure_future(aq.put(item)) for item in items]
        await asyncio.sleep(0.05)
        # The queue is full: most puts are waiting now.
        assert sum(p.done() for p in putters) < len(items)
        peer = Peer(
            q,
            f"for _ in range({len(items)}):\n    print(q.get(timeout=5).hex())",
            serializer=None if kind == "posix" else "raw",
        )
        await asyncio.gather(*putters)
        return peer.finish()

    received = [bytes.fromhex(line) for line in run(main()).split()]
    assert sorted(received) == items
    if kind == "posix":
        # Waiting puts are served in the order they started.
        assert received == items


def test_sysv_waiters_of_different_types_do_not_block_each_other(make_queue):
    q = make_queue("sysv")
    aq = AsyncQueue(q)

    async def main():
        twos = [asyncio.ensure_future(aq.get_with_type(2)) for _ in range(3)]
        ones = [asyncio.ensure_future(aq.get_with_type(1)) for _ in range(3)]
        await asyncio.sleep(0.05)
        peer = Peer(
            q,
            "for i in range(3):\n"
            "    q.put(('two', i), msg_type=2)\n"
            "    q.put(('one', i), msg_type=1)\n",
        )
        got_ones = await asyncio.gather(*ones)
        got_twos = await asyncio.gather(*twos)
        peer.finish()
        return got_ones, got_twos

    ones, twos = run(main())
    assert ones == [(("one", i), 1) for i in range(3)]
    assert twos == [(("two", i), 2) for i in range(3)]


def test_cancelled_get_loses_no_message(make_queue, kind):
    q = make_queue(kind)
    aq = AsyncQueue(q)

    async def main():
        waiting = asyncio.ensure_future(aq.get())
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        peer = Peer(q, "for i in range(3):\n    q.put(i)")
        peer.finish()
        # Let a receiving thread left from the get hand over what it took.
        await asyncio.sleep(0.2)
        counts = (aq.qsize(), q.qsize())
        return counts, [await aq.get(timeout=5) for _ in range(3)]

    counts, items = run(main())
    assert items == [0, 1, 2]
    # System V: the cancelled get's thread took the first message, which
    # the wrapper holds; POSIX: the message never left the queue.
    assert counts == ((3, 2) if kind == "sysv" else (3, 3))
    assert aq.qsize() == 0


def test_timed_out_gets_lose_no_message(make_queue, kind):
    # wait_for cancels the get at random points; every message must still
    # come out exactly once and in order.
    q = make_queue(kind)
    aq = AsyncQueue(q)
    count = 40

    async def main():
        peer = Peer(
            q,
            f"for i in range({count}):\n"
            "    q.put(i)\n"
            "    time.sleep(0.003 * (i % 4))\n",
        )
        received = []
        deadline = time.monotonic() + 8
        while len(received) < count and time.monotonic() < deadline:
            try:
                received.append(await asyncio.wait_for(aq.get(), 0.004))
            except asyncio.TimeoutError:
                pass
        peer.finish()
        return received

    assert run(main()) == list(range(count))


def test_message_taken_for_a_cancelled_get_is_kept(make_queue, kind):
    # The get's message has arrived but its task has not resumed when it
    # is cancelled: the message is held for the next get.
    q = make_queue(kind)
    aq = AsyncQueue(q)

    async def main():
        loop = asyncio.get_running_loop()
        waiting = asyncio.ensure_future(aq.get())
        await asyncio.sleep(0.05)
        q.put("kept")
        if kind == "posix":
            # A timer due now runs after the reader callback of the same
            # loop iteration, which has served the get.
            loop.call_later(0, waiting.cancel)
        else:
            # Block the loop until the receiving thread has taken the
            # message and scheduled its hand-over; cancel right after it.
            deadline = time.monotonic() + 5
            while q.qsize() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)
            loop.call_soon(waiting.cancel)
        with pytest.raises(asyncio.CancelledError):
            await waiting
        held = (aq.qsize(), q.qsize())
        return held, await aq.get(timeout=1)

    held, item = run(main())
    assert held == (1, 0)
    assert item == "kept"


def test_message_held_goes_to_a_get_already_waiting(make_queue):
    # After a timed-out System V get, its thread goes on waiting; the
    # message it receives goes to the next get, in order with later ones.
    q = make_queue("sysv")
    aq = AsyncQueue(q)

    async def main():
        with pytest.raises(queue.Empty):
            await aq.get(timeout=0.05)
        later = asyncio.ensure_future(aq.get())
        peer = Peer(q, "q.put('first')\nq.put('second')")
        peer.finish()
        return await later, await aq.get(timeout=1)

    assert run(main()) == ("first", "second")


def test_loop_stays_responsive_while_a_sysv_get_waits(make_queue):
    q = make_queue("sysv")
    aq = AsyncQueue(q)

    async def main():
        getter = asyncio.ensure_future(aq.get())
        gaps = []
        last = time.monotonic()
        for _ in range(40):
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
        assert not getter.done()
        peer = Peer(q, "q.put('done')")
        item = await getter
        peer.finish()
        return item, max(gaps)

    item, worst = run(main())
    assert item == "done"
    # Ticks of 10 ms: a blocked loop would show the whole wait as one gap.
    assert worst < 0.2


def test_several_sysv_gets_wait_at_once_without_blocking(make_queue):
    q = make_queue("sysv")
    aq = AsyncQueue(q)

    async def main():
        getters = [asyncio.ensure_future(aq.get(msg_type=t)) for t in (1, 2, 3)]
        await asyncio.sleep(0.1)
        start = time.monotonic()
        await asyncio.sleep(0.05)
        # The loop still runs its timers on time.
        assert time.monotonic() - start < 0.2
        await aq.put("c", msg_type=3)
        await aq.put("a", msg_type=1)
        await aq.put("b", msg_type=2)
        return await asyncio.gather(*getters)

    assert run(main()) == ["a", "b", "c"]


def test_cancelled_posix_put_sends_nothing(make_queue):
    q = make_queue("posix", maxsize=1)
    q.put("first")
    aq = AsyncQueue(q)

    async def main():
        waiting = asyncio.ensure_future(aq.put("never"))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await aq.get() == "first"
        await asyncio.sleep(0.05)

    run(main())
    assert q.empty()


def test_decode_error_reaches_the_waiting_get(make_queue):
    q = make_queue("posix", serializer="json")
    aq = AsyncQueue(q)
    raw = make_queue.reopen(q, serializer="raw")

    async def main():
        waiting = asyncio.ensure_future(aq.get())
        await asyncio.sleep(0.05)
        raw.put(b"not json", priority=4)
        with pytest.raises(DecodeError) as info:
            await waiting
        return info.value

    error = run(main())
    assert error.payload == b"not json"
    assert error.priority == 4


def test_async_for_until_closed(make_queue, kind):
    q = make_queue(kind)
    aq = AsyncQueue(q)

    async def main():
        received = []

        async def consume():
            async for item in aq:
                received.append(item)

        consumer = asyncio.ensure_future(consume())
        peer = Peer(q, "for i in range(4):\n    q.put(i)")
        peer.finish()
        while len(received) < 4:
            await asyncio.sleep(0.01)
        aq.close()
        await consumer
        return received

    assert run(main()) == [0, 1, 2, 3]
    assert q.closed


def test_close_wakes_waiting_calls(make_queue, kind):
    q = make_queue(kind)
    aq = AsyncQueue(q)

    async def main():
        waiting = asyncio.ensure_future(aq.get())
        await asyncio.sleep(0.05)
        aq.close()
        with pytest.raises(QueueError) as info:
            await waiting
        return info.value

    error = run(main())
    assert error.errno == QueueError.INVALID_DESCRIPTOR
    assert aq.closed
    with pytest.raises(QueueError):
        aq.close()
    with pytest.raises(QueueError):
        aq.get_nowait()


def test_async_with_closes_like_the_queue(make_queue, kind):
    q = make_queue(kind)

    async def main():
        async with AsyncQueue(q) as aq:
            await aq.put("x")
            assert await aq.get() == "x"

    run(main())
    assert q.closed
    if kind == "sysv":
        # Closing a System V queue removes it, as its own close() does.
        with pytest.raises(FileNotFoundError):
            sysvmq.Queue(q.key, create=False)
    else:
        # A POSIX queue outlives its handles.
        posixmq.Queue(q.name, create=False).close()


def test_sysv_detach_leaves_the_queue_and_puts_back(make_queue):
    q = make_queue("sysv")
    aq = AsyncQueue(q)

    async def main():
        # The get times out, its thread keeps waiting, then the wrapper
        # is detached: what the thread takes later goes back.
        with pytest.raises(queue.Empty):
            await aq.get(timeout=0.05)
        aq.detach()

    run(main())
    other = sysvmq.Queue(q.key, create=False)
    try:
        other.put("back")
        deadline = time.monotonic() + 5
        while not q.closed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert q.closed
        assert other.get(timeout=2) == "back"
    finally:
        other.detach()


def test_a_wrapper_serves_one_loop_at_a_time(make_queue, kind):
    q = make_queue(kind)
    aq = AsyncQueue(q)

    async def put_one():
        await aq.put("x")

    async def get_one():
        return await aq.get(timeout=1)

    # Consecutive loops are fine: nothing waits across them.
    run(put_one())
    assert run(get_one()) == "x"


def test_messages_held_go_back_when_the_wrapper_lets_go(make_queue, kind):
    # A message held for the next get (taken for a cancelled or timed-out
    # get) returns to the queue on close (POSIX) or detach (System V).
    q = make_queue(kind)
    other = make_queue.reopen(q)
    aq = AsyncQueue(q)

    async def main():
        loop = asyncio.get_running_loop()
        waiting = asyncio.ensure_future(aq.get())
        await asyncio.sleep(0.05)
        other.put("held")
        if kind == "posix":
            loop.call_later(0, waiting.cancel)
            with pytest.raises(asyncio.CancelledError):
                await waiting
        else:
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            # The get's thread takes the message after its get is gone.
            deadline = time.monotonic() + 5
            while aq.qsize() != 1 or q.qsize() != 0:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
        assert (aq.qsize(), other.qsize()) == (1, 0)
        if kind == "posix":
            aq.close()
        else:
            aq.detach()

    run(main())
    assert other.get(timeout=2) == "held"
    assert q.closed
