"""Pickled messages between ipcq and ipcqueue 0.9.7, both ways.

ipcqueue pickles with protocol 1 and unpickles with ``pickle.loads``, so
it reads every protocol this Python writes.  Its POSIX queues are created
with mode 0644 and its receive buffer is the ``maxmsgsize`` given to its
constructor (1024 by default), not the queue's; its System V
``close()`` removes the queue.
"""

import contextlib
import pickle

import interop_peers as peers
import pytest

from ipcq import posixmq, sysvmq

NEEDS = "ipcqueue 0.9.7 is a test dependency (pip install ipcqueue==0.9.7)"
their_posixmq = pytest.importorskip("ipcqueue.posixmq", reason=NEEDS)
their_sysvmq = pytest.importorskip("ipcqueue.sysvmq", reason=NEEDS)

ITEMS = [
    {"id": 1, "tags": ("a", "b"), "blob": b"\x00\xff"},
    [1.5, None, True, 2**70, "gr\u00fcn"],
    frozenset({1, 2, 3}),
    ("nested", {"x": [b"", bytearray(b"\x01")]}),
]


@pytest.fixture
def scratch():
    with peers.scratch() as s:
        yield s


@contextlib.contextmanager
def their_posix_queue(name):
    q = their_posixmq.Queue(name)
    try:
        yield q
    finally:
        q.close()


@contextlib.contextmanager
def their_sysv_queue(key):
    q = their_sysvmq.Queue(key)
    try:
        yield q
    finally:
        with contextlib.suppress(their_sysvmq.QueueError):
            q.close()


def test_posix_queue_of_ipcqueue_carries_pickles_both_ways(scratch):
    name = scratch.name()

    with their_posix_queue(name) as theirs:
        # ipcqueue created the queue (0644, 10 x 1024): ipcq adopts it.
        with posixmq.Queue(name, maxsize=3, maxmsgsize=100) as ours:
            assert (ours.maxsize, ours.maxmsgsize) == (10, 1024)

            for item in ITEMS:
                theirs.put(item)
            assert [ours.get(timeout=5) for _ in ITEMS] == ITEMS

            ours.put(ITEMS[0])
            ours.put(ITEMS[1], pickle_protocol=pickle.HIGHEST_PROTOCOL)
            ours.put(ITEMS[2], priority=1)
            assert theirs.get(timeout=5) == ITEMS[2]
            assert theirs.get(timeout=5) == ITEMS[0]
            assert theirs.get(timeout=5) == ITEMS[1]


def test_posix_queue_of_ipcq_carries_pickles_both_ways(scratch):
    name = scratch.name()

    with posixmq.Queue(name, maxsize=4, maxmsgsize=1024) as ours:
        with their_posix_queue(name) as theirs:
            assert theirs.qattr() == {
                "size": 0,
                "max_size": 4,
                "max_msgbytes": 1024,
            }
            for item in ITEMS:
                ours.put(item)
            assert [theirs.get(timeout=5) for _ in ITEMS] == ITEMS

            theirs.put(ITEMS[3], priority=2)
            theirs.put(ITEMS[1])
            assert ours.get_with_priority(timeout=5) == (ITEMS[3], 2)
            assert ours.get_with_priority(timeout=5) == (ITEMS[1], 0)


def test_sysv_queue_of_ipcqueue_carries_pickles_both_ways(scratch):
    key = scratch.key()

    with their_sysv_queue(key) as theirs:
        ours = sysvmq.Queue(key)
        try:
            for i, item in enumerate(ITEMS):
                theirs.put(item, msg_type=i + 1)
            assert ours.get(msg_type=3, timeout=5) == ITEMS[2]
            got = [ours.get_with_type(timeout=5) for _ in range(3)]
            assert got == [(ITEMS[0], 1), (ITEMS[1], 2), (ITEMS[3], 4)]

            ours.put(ITEMS[0], msg_type=7)
            ours.put(ITEMS[1], msg_type=2, pickle_protocol=5)
            assert theirs.get(msg_type=2) == ITEMS[1]
            assert theirs.get() == ITEMS[0]
        finally:
            # The queue is ipcqueue's to remove.
            ours.detach()


def test_sysv_queue_of_ipcq_carries_pickles_both_ways(scratch):
    key = scratch.key()

    with sysvmq.Queue(key, mode=0o600) as ours:
        theirs = their_sysvmq.Queue(key)
        for item in ITEMS:
            ours.put(item, msg_type=3)
        assert [theirs.get(msg_type=3) for _ in ITEMS] == ITEMS

        theirs.put(ITEMS[1], msg_type=8)
        theirs.put(ITEMS[2], msg_type=4)
        assert ours.get_with_type(msg_type=-5, timeout=5) == (ITEMS[2], 4)
        assert ours.get_with_type(timeout=5) == (ITEMS[1], 8)
    # ipcq's close removed the queue for ipcqueue too.
    with pytest.raises(their_sysvmq.QueueError):
        theirs.qsize()
