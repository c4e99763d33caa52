"""Many processes on one queue, processes killed mid-stream, signal storms.

Every message carries its producer's number and a sequence number, so the
receiving side can check that each message arrived exactly once and that
the messages of one producer arrived in the order they were sent.  The
counts are small enough for the whole file to run in a few seconds; the
``slow`` variants repeat the same checks for longer.
"""

import errno
import os
import queue
import random
import struct
import time
from collections import Counter
from functools import partial

import pytest
from reliability_util import (  # noqa: F401 (reap_children is a fixture)
    collect,
    interval_timer,
    kill_child,
    reap_children,
    start_child,
)

import ipcq

ITEM = struct.Struct("<II")  # producer number, sequence number
END = b"end"


def stream_queue(make_queue, kind, **kwargs):
    """A small queue (so that producers often wait) with raw messages."""
    if kind == "posix":
        return make_queue("posix", maxsize=8, maxmsgsize=64, serializer="raw", **kwargs)
    return make_queue("sysv", max_bytes=256, serializer="raw", **kwargs)


def produce(q, producer, count, tag):
    """Put *count* items, mixing put and put_many; return how many were put."""
    seq = 0
    while seq < count:
        if seq % 3 == 0:
            batch = [ITEM.pack(producer, n) for n in range(seq, min(seq + 7, count))]
            put = q.put_many(batch, **tag)
            assert put == len(batch)
            seq += put
        else:
            q.put(ITEM.pack(producer, seq), **tag)
            seq += 1
    return seq


def consume_until_end(q, end_tag):
    """Get items (get and get_many) until an END marker; return them.

    Each consumer takes one END; extra ones that get_many() took along go
    back for the other consumers.
    """
    got = []
    turn = 0
    while True:
        turn += 1
        batch = q.get_many(5) if turn % 2 else [q.get()]
        ends = batch.count(END)
        got.extend(ITEM.unpack(data) for data in batch if data != END)
        if ends:
            for _ in range(ends - 1):
                q.put(END, **end_tag)
            return got


def tag_for(kind, producer):
    """Each producer its own POSIX priority or System V type."""
    if kind == "posix":
        return {"priority": producer % 3}
    return {"msg_type": producer + 1}


def check_exactly_once(received, producers, count):
    counts = Counter(received)
    duplicates = [item for item, n in counts.items() if n > 1]
    expected = {(p, s) for p in range(producers) for s in range(count)}
    assert not duplicates, f"delivered twice: {duplicates[:10]}"
    assert set(counts) == expected, (
        f"missing {len(expected - set(counts))}, "
        f"unexpected {len(set(counts) - expected)}"
    )


def in_order_per_producer(items):
    last = {}
    for producer, seq in items:
        if seq <= last.get(producer, -1):
            return False
        last[producer] = seq
    return True


def run_many_to_many(q, kind, producers, consumers, count):
    # END goes last: the lowest priority, or a type no producer uses.
    end_tag = {"priority": 0} if kind == "posix" else {"msg_type": producers + 1}
    started = [start_child(consume_until_end, q, end_tag) for _ in range(consumers)]
    makers = [
        start_child(produce, q, p, count, tag_for(kind, p)) for p in range(producers)
    ]
    for pid, r in makers:
        assert collect(pid, r, timeout=60) == ("ok", count)
    # Every producer is done: one END per consumer, after all their items.
    for _ in range(consumers):
        q.put(END, **end_tag)
    results = []
    for pid, r in started:
        outcome, value = collect(pid, r, timeout=60)
        assert outcome == "ok", value
        results.append(value)

    check_exactly_once([x for got in results for x in got], producers, count)
    for got in results:
        assert got, "a consumer received nothing"
        # Several consumers share the items, but each takes from the head
        # of the queue, so each sees any one producer's items in order.
        # POSIX priorities reorder items of different producers only.
        assert in_order_per_producer(got)
    assert q.qsize() == 0


def test_many_producers_many_consumers(make_queue, kind):
    q = stream_queue(make_queue, kind)
    run_many_to_many(q, kind, producers=3, consumers=3, count=5000)


@pytest.mark.slow
def test_many_producers_many_consumers_long(make_queue, kind):
    q = stream_queue(make_queue, kind)
    run_many_to_many(q, kind, producers=6, consumers=4, count=500_000)


def test_one_consumer_sees_each_producer_in_order(make_queue, kind):
    q = stream_queue(make_queue, kind)
    producers, count = 4, 1500
    makers = [
        start_child(produce, q, p, count, tag_for(kind, p)) for p in range(producers)
    ]
    received = []
    while len(received) < producers * count:
        for data in q.get_many(16, timeout=20):
            received.append(ITEM.unpack(data))
    for pid, r in makers:
        assert collect(pid, r, timeout=30) == ("ok", count)

    check_exactly_once(received, producers, count)
    for p in range(producers):
        assert [s for q_, s in received if q_ == p] == list(range(count))
    with pytest.raises(queue.Empty):
        q.get_nowait()


# -- processes killed with SIGKILL ------------------------------------------


def acknowledging_producer(q, producer, ack_fd, tag):
    """Put items forever; after each put returns, write its number to ack_fd.

    A write of 4 bytes to a pipe is atomic, so the parent reads whole
    acknowledgements only.  The process is killed from outside.
    """
    seq = 0
    while True:
        q.put(ITEM.pack(producer, seq), **tag)
        os.write(ack_fd, struct.pack("<I", seq))
        seq += 1


def read_acks(fd, acks):
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            return True
        acks.extend(struct.unpack(f"<{len(chunk) // 4}I", chunk))


def kill_producers_round(q, kind, rng, first_producer):
    """Two producers, each killed at a random moment; return the findings."""
    children = []
    for producer in (first_producer, first_producer + 1):
        r, w = os.pipe()
        os.set_blocking(r, False)
        pid, result_fd = start_child(
            acknowledging_producer, q, producer, w, tag_for(kind, producer)
        )
        os.close(w)
        children.append((producer, pid, result_fd, r, []))

    # Half of the rounds do not read for a while, so the producers are
    # often killed while blocked in put() on the full queue.
    stalled = rng.random() < 0.5
    kill_at = {
        pid: time.monotonic() + rng.uniform(0.005, 0.06) for _, pid, *_ in children
    }
    received = []
    alive = {pid for _, pid, *_ in children}
    while alive:
        now = time.monotonic()
        for _, pid, result_fd, r, acks in children:
            read_acks(r, acks)
            if pid in alive and now >= kill_at[pid]:
                kill_child(pid, result_fd)
                alive.discard(pid)
        if stalled:
            time.sleep(0.002)
        else:
            try:
                received.extend(q.get_many(32, timeout=0.002))
            except queue.Empty:
                pass

    while True:
        try:
            received.extend(q.get_many(32, block=False))
        except queue.Empty:
            break
    findings = []
    for producer, _, _, r, acks in children:
        while not read_acks(r, acks):
            time.sleep(0.001)
        os.close(r)
        got = [seq for p, seq in map(ITEM.unpack, received) if p == producer]
        findings.append((len(acks), got, acks))
    return findings


def check_killed_producers(findings):
    for acked, got, acks in findings:
        assert acks == list(range(acked))
        # Every acknowledged put arrived, once, in order; the put that was
        # under way when the kill came either completed (its message is
        # there, unacknowledged) or never happened.
        assert got in (list(range(acked)), list(range(acked + 1))), (
            f"acknowledged {acked}, received {len(got)}: "
            f"{sorted(set(range(acked)) - set(got))[:5]} missing, "
            f"{[s for s, n in Counter(got).items() if n > 1][:5]} twice"
        )


def test_producers_killed_at_random_moments(make_queue, kind):
    q = stream_queue(make_queue, kind)
    rng = random.Random(os.getpid())
    for n in range(10):
        check_killed_producers(kill_producers_round(q, kind, rng, 2 * n))
    assert q.qsize() == 0


@pytest.mark.slow
def test_producers_killed_at_random_moments_long(make_queue, kind):
    q = stream_queue(make_queue, kind)
    rng = random.Random(os.getpid())
    for n in range(500):
        check_killed_producers(kill_producers_round(q, kind, rng, 2 * n))


def recording_consumer(q, record_fd):
    """Get items forever; after each get returns, write it to record_fd."""
    while True:
        os.write(record_fd, q.get())


def run_killed_consumers(q, rounds, rng):
    total = 0
    kills_while_busy = 0
    records = bytearray()
    for _ in range(rounds):
        r, w = os.pipe()
        pid, result_fd = start_child(recording_consumer, q, w)
        os.close(w)
        # Some rounds leave the consumer blocked on an empty queue when it
        # is killed: that kill must cost no message at all.
        burst = 0 if rng.random() < 0.3 else rng.randrange(1, 400)
        for _ in range(burst):
            q.put(ITEM.pack(0, total), timeout=10)
            total += 1
        if burst:
            time.sleep(rng.uniform(0, 0.003))
            kills_while_busy += 1
        else:
            time.sleep(0.01)
        kill_child(pid, result_fd)
        while chunk := os.read(r, 65536):
            records += chunk
        os.close(r)

    while True:
        try:
            records += b"".join(q.get_many(64, block=False))
        except queue.Empty:
            break
    got = [ITEM.unpack_from(records, i)[1] for i in range(0, len(records), ITEM.size)]
    return total, kills_while_busy, got


def check_killed_consumers(total, kills_while_busy, got):
    counts = Counter(got)
    assert not [s for s, n in counts.items() if n > 1], "a message was received twice"
    assert set(counts) <= set(range(total))
    # A consumer killed after get() returned but before it recorded the
    # item takes that one item with it; nothing else may go missing.
    missing = total - len(counts)
    assert missing <= kills_while_busy


def test_consumers_killed_at_random_moments(make_queue, kind):
    q = stream_queue(make_queue, kind)
    rng = random.Random(os.getpid())
    check_killed_consumers(*run_killed_consumers(q, 25, rng))
    assert q.qsize() == 0


@pytest.mark.slow
def test_consumers_killed_at_random_moments_long(make_queue, kind):
    q = stream_queue(make_queue, kind)
    rng = random.Random(os.getpid())
    check_killed_consumers(*run_killed_consumers(q, 1000, rng))


def blocked_consumer(q, record_fd):
    os.write(record_fd, q.get())


def test_consumer_killed_while_blocked_takes_nothing(make_queue, kind):
    q = stream_queue(make_queue, kind)
    for _ in range(5):
        r, w = os.pipe()
        pid, result_fd = start_child(blocked_consumer, q, w)
        os.close(w)
        time.sleep(0.02)
        kill_child(pid, result_fd)
        assert os.read(r, 100) == b""
        os.close(r)
    q.put(b"for the survivor")
    assert q.get_nowait() == b"for the survivor"


# -- a storm of signals while streaming ------------------------------------


def paced_consumer(q, count):
    """Get *count* items, pausing now and then so that the producer waits."""
    got = []
    pause_at = 0
    while len(got) < count:
        if len(got) >= pause_at:
            time.sleep(0.01)
            pause_at += 200
        got.extend(ITEM.unpack(d)[1] for d in q.get_many(4))
    return got


def paced_producer(q, count):
    for seq in range(count):
        if seq % 200 == 0:
            time.sleep(0.01)
        q.put(ITEM.pack(0, seq))
    return count


class Storm:
    """A 1 kHz SIGALRM handler that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, signum, frame):
        self.calls += 1


def retrying(call, stats):
    """Repeat *call* until it completes, counting the INTERRUPTED errors.

    An interrupted call must neither have sent nor consumed a message, so
    repeating it is always right.  Timed calls that time out are repeated
    as well: a timeout consumes and sends nothing either.
    """
    while True:
        try:
            return call()
        except ipcq.QueueError as exc:
            assert exc.errno == errno.EINTR, exc
            stats["interrupted"] += 1
        except (queue.Empty, queue.Full):
            stats["timed out"] += 1


@pytest.mark.parametrize("retry", [False, True], ids=["raise", "retry"])
def test_signal_storm_while_putting(make_queue, kind, retry):
    q = stream_queue(make_queue, kind, retry_interrupted=retry)
    count = 3000
    stats = Counter()
    storm = Storm()
    pid, r = start_child(paced_consumer, q, count)
    with interval_timer(storm, 0.001):
        for seq in range(count):
            timeout = None if seq % 2 else 1.0
            retrying(partial(q.put, ITEM.pack(0, seq), timeout=timeout), stats)
    outcome, got = collect(pid, r, timeout=30)

    assert outcome == "ok", got
    assert got == list(range(count))
    assert storm.calls > 50
    if retry:
        assert stats["interrupted"] == 0
    else:
        assert stats["interrupted"] > 0


@pytest.mark.parametrize("retry", [False, True], ids=["raise", "retry"])
def test_signal_storm_while_getting(make_queue, kind, retry):
    q = stream_queue(make_queue, kind, retry_interrupted=retry)
    count = 3000
    stats = Counter()
    storm = Storm()
    got = []
    pid, r = start_child(paced_producer, q, count)
    with interval_timer(storm, 0.001):
        turn = 0
        while len(got) < count:
            turn += 1
            if turn % 3 == 0:
                batch = retrying(lambda: q.get_many(4, timeout=1.0), stats)
            elif turn % 3 == 1:
                batch = [retrying(lambda: q.get(), stats)]
            else:
                batch = [retrying(lambda: q.get(timeout=1.0), stats)]
            got.extend(ITEM.unpack(d)[1] for d in batch)
    assert collect(pid, r, timeout=30) == ("ok", count)

    assert got == list(range(count))
    assert storm.calls > 50
    if retry:
        assert stats["interrupted"] == 0
    else:
        assert stats["interrupted"] > 0


def test_interrupted_put_many_tells_how_many_were_put(make_queue, kind):
    # put_many() stops at the signal; the caller must learn how many items
    # went out, or repeating the batch sends some twice and dropping it
    # loses the rest.
    q = stream_queue(make_queue, kind)
    count = 1500
    items = [ITEM.pack(0, seq) for seq in range(count)]
    storm = Storm()
    pid, r = start_child(paced_consumer, q, count)
    sent = 0
    interrupted = 0
    with interval_timer(storm, 0.001):
        while sent < count:
            try:
                sent += q.put_many(items[sent : sent + 50])
            except ipcq.QueueError as exc:
                assert exc.errno == errno.EINTR
                interrupted += 1
                assert hasattr(exc, "count"), (
                    "an interrupted put_many() does not say how many items "
                    "it put before the signal"
                )
                sent += exc.count
    outcome, got = collect(pid, r, timeout=30)

    assert interrupted > 0
    assert outcome == "ok", got
    assert got == list(range(count))
