"""Bytes between ipcq and the C and Go peers, both ways, on both kinds.

Every message is compared byte for byte, with the priority or type it
travelled with.  Queues made by either side are opened by the other, which
must adopt the creator's attributes.
"""

import interop_peers as peers
import pytest

from ipcq import posixmq, sysvmq


@pytest.fixture(params=["c", "go"])
def peer(request):
    return peers.peer(request.param)


@pytest.fixture
def scratch():
    with peers.scratch() as s:
        yield s


def max_size(kind):
    """The largest message the test's queue of *kind* takes."""
    if kind == "posix":
        return peers.posix_msgsize_max()
    return peers.sysv_msgmax()


def sample_messages(size):
    """Edge cases: empty, lone 0x00 and 0xff, every byte, maximum size."""
    pattern = b"\xff\x00" + bytes(range(256)) * (size // 256 + 1)
    return [
        b"\x00",
        b"",
        b"\xff",
        b"\x00\x00\x00\xff\xff\xff",
        bytes(range(256)),
        pattern[:size],
    ]


def open_queue(kind, target, size=256, maxsize=6, **kwargs):
    """An ipcq queue for raw bytes; POSIX gets *maxsize* x *size* bytes."""
    if kind == "posix":
        return posixmq.Queue(target, maxsize, size, "raw", **kwargs)
    return sysvmq.Queue(target, serializer="raw", **kwargs)


def put(q, data, tag):
    if isinstance(q, posixmq.Queue):
        q.put(data, timeout=5, priority=tag)
    else:
        q.put(data, msg_type=tag, timeout=5)


def get(q, msg_type=0):
    if isinstance(q, posixmq.Queue):
        return q.get_with_priority(timeout=5)
    return q.get_with_type(msg_type=msg_type, timeout=5)


def tagged(kind, messages):
    # POSIX: falling priorities keep the order sent; System V: types 1..n,
    # received in order with msg_type 0.
    n = len(messages)
    if kind == "posix":
        return [(n - i, data) for i, data in enumerate(messages)]
    return [(i + 1, data) for i, data in enumerate(messages)]


def test_raw_bytes_from_ipcq_to_peer(peer, kind, scratch):
    target = scratch.target(kind)
    size = max_size(kind)
    expected = tagged(kind, sample_messages(size))

    with open_queue(kind, target, size) as q:
        for tag, data in expected:
            put(q, data, tag)

        assert peer.recv_bytes(kind, target, len(expected)) == expected
        assert q.qsize() == 0


def test_raw_bytes_from_peer_to_ipcq(peer, kind, scratch):
    target = scratch.target(kind)
    size = max_size(kind)
    expected = tagged(kind, sample_messages(size))

    with open_queue(kind, target, size) as q:
        peer.send(kind, target, expected)

        got = [get(q) for _ in expected]
        assert [(tag, data) for data, tag in got] == expected
        assert q.qsize() == 0


def test_oversized_message_is_refused_before_the_peer_sees_it(peer, kind, scratch):
    target = scratch.target(kind)
    size = max_size(kind)

    with open_queue(kind, target, size) as q:
        with pytest.raises(ValueError):
            put(q, b"\x00" * (size + 1), 1)
        put(q, b"after", 1)

        assert peer.recv_bytes(kind, target, 1) == [(1, b"after")]


SENT_WITH_PRIORITY = [
    (0, b"a"),
    (5, b"b"),
    (32767, b"c"),
    (5, b"d"),
    (1, b"e"),
]
BY_PRIORITY = [(32767, b"c"), (5, b"b"), (5, b"d"), (1, b"e"), (0, b"a")]


def test_priorities_from_ipcq_reach_peer_in_order(peer, scratch):
    name = scratch.name()

    with open_queue("posix", name) as q:
        for prio, data in SENT_WITH_PRIORITY:
            q.put(data, priority=prio)

        assert peer.recv_bytes("posix", name, 5) == BY_PRIORITY


def test_priorities_from_peer_reach_ipcq_in_order(peer, scratch):
    name = scratch.name()

    with open_queue("posix", name) as q:
        peer.send("posix", name, SENT_WITH_PRIORITY)

        got = [q.get_with_priority(timeout=5) for _ in range(5)]
        assert [(prio, data) for data, prio in got] == BY_PRIORITY


SENT_WITH_TYPE = [
    (3, b"three-a"),
    (1, b"one"),
    (2, b"two"),
    (3, b"three-b"),
    (5, b"five"),
]
# msg_type asked for on receive, and what it selects from SENT_WITH_TYPE:
# a positive type that type; a negative one the lowest type <= |msg_type|;
# 0 the first message left.
SELECTIONS = [
    (3, (3, b"three-a")),
    (-2, (1, b"one")),
    (-5, (2, b"two")),
    (5, (5, b"five")),
    (0, (3, b"three-b")),
]


def test_peer_selects_types_that_ipcq_sent(peer, scratch):
    key = scratch.key()

    with open_queue("sysv", key) as q:
        for msg_type, data in SENT_WITH_TYPE:
            q.put(data, msg_type=msg_type)

        for msg_type, expected in SELECTIONS:
            got = peer.recv_bytes("sysv", key, 1, msg_type=msg_type)
            assert got == [expected], msg_type
        assert q.qsize() == 0


def test_ipcq_selects_types_that_peer_sent(peer, scratch):
    key = scratch.key()

    with open_queue("sysv", key) as q:
        peer.send("sysv", key, SENT_WITH_TYPE)

        for msg_type, (tag, data) in SELECTIONS:
            assert q.get_with_type(msg_type=msg_type, timeout=5) == (data, tag)
        assert q.qsize() == 0


def test_posix_queue_created_by_peer_is_adopted_by_ipcq(peer, scratch):
    name = scratch.name()
    msgsize = peers.posix_msgsize_max()
    if msgsize <= 1024:
        pytest.skip(f"msgsize_max is {msgsize}, not above ipcq's default 1024")
    # 8000 bytes when msgsize_max has its default, 8192.
    message = (bytes(range(256)) * 64)[: msgsize - 192]

    created = peer.run("posix", "create", name, 2, msgsize, "600")
    assert created == [f"maxmsg=2 msgsize={msgsize}"]

    # Default arguments (maxsize=10, maxmsgsize=1024) open the existing
    # queue as it is.
    with posixmq.Queue(name, serializer="raw") as q:
        assert (q.maxsize, q.maxmsgsize) == (2, msgsize)
        assert q.qattr() == {"size": 0, "max_size": 2, "max_msgbytes": msgsize}

        peer.send("posix", name, [(7, message)])
        assert q.get_with_priority(timeout=5) == (message, 7)

        q.put(message[::-1], priority=3)
        assert peer.recv_bytes("posix", name, 1) == [(3, message[::-1])]


def test_posix_queue_created_by_ipcq_is_opened_by_peer(peer, scratch):
    name = scratch.name()

    with open_queue("posix", name, size=2000, maxsize=3, mode=0o640) as q:
        attr = peer.fields(peer.run("posix", "attr", name)[0])
        assert attr == {
            "maxmsg": "3",
            "msgsize": "2000",
            "curmsgs": "0",
            "mode": "640",
        }

        q.put(b"\xab" * 2000, priority=2)
        assert peer.fields(peer.run("posix", "attr", name)[0])["curmsgs"] == "1"
        assert peer.recv_bytes("posix", name, 1) == [(2, b"\xab" * 2000)]


def test_sysv_queue_created_by_peer_is_adopted_by_ipcq(peer, scratch):
    key = scratch.key()
    message = b"\x00\xff" * (peers.sysv_msgmax() // 2)

    peer.run("sysv", "create", key, "640")
    stat = peer.fields(peer.run("sysv", "stat", key)[0])

    with sysvmq.Queue(key, serializer="raw") as q:
        attr = q.qattr()
        assert attr["mode"] == 0o640
        assert attr["max_bytes"] == q.max_bytes == int(stat["qbytes"])

        peer.send("sysv", key, [(4, message)])
        assert q.get_with_type(timeout=5) == (message, 4)

        q.put(message[:100], msg_type=9)
        assert peer.recv_bytes("sysv", key, 1) == [(9, message[:100])]


def test_sysv_queue_created_by_ipcq_is_opened_by_peer(peer, scratch):
    key = scratch.key()

    with sysvmq.Queue(key, 12000, "raw", mode=0o640) as q:
        stat = peer.fields(peer.run("sysv", "stat", key)[0])
        assert stat == {"qbytes": "12000", "qnum": "0", "mode": "640"}

        q.put(b"\x01\x02", msg_type=6)
        assert peer.fields(peer.run("sysv", "stat", key)[0])["qnum"] == "1"
        assert peer.recv_bytes("sysv", key, 1) == [(6, b"\x01\x02")]
