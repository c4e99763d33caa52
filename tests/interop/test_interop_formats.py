"""MessagePack and JSON documents between ipcq and the C and Go peers.

The C peer builds the document's bytes by hand and checks that what it
receives is exactly those bytes; the Go peer encodes with encoding/json
(JSON) or by hand (MessagePack) and decodes what it receives, then prints
the result as JSON.
"""

import json

import interop_peers as peers
import pytest
from interop_peers import DOC

from ipcq import posixmq, sysvmq


@pytest.fixture(params=["c", "go"])
def peer(request):
    return peers.peer(request.param)


@pytest.fixture
def scratch():
    with peers.scratch() as s:
        yield s


@pytest.fixture(params=["json", "msgpack"])
def fmt(request):
    return request.param


def open_queue(kind, target, serializer):
    if kind == "posix":
        return posixmq.Queue(target, 3, 512, serializer)
    return sysvmq.Queue(target, serializer=serializer)


def decoded_by(peer, text):
    """What the peer says it received, as a Python value."""
    if peer.language == "c":
        # The C peer compares bytes with its own encoding.
        assert text == "match"
        return DOC
    return json.loads(text)


def test_document_from_ipcq_is_decoded_by_peer(peer, kind, fmt, scratch):
    target = scratch.target(kind)

    with open_queue(kind, target, fmt) as q:
        if kind == "posix":
            q.put(DOC, priority=4)
        else:
            q.put(DOC, msg_type=4)

        [(tag, text)] = peer.recv(kind, target, 1, fmt)
        assert tag == 4
        assert decoded_by(peer, text) == DOC


def test_document_from_peer_is_decoded_by_ipcq(peer, kind, fmt, scratch):
    target = scratch.target(kind)

    with open_queue(kind, target, fmt) as q:
        peer.send(kind, target, [(2, f"@{fmt}"), (1, f"@{fmt}")])

        assert q.get(timeout=5) == DOC
        assert q.get(timeout=5) == DOC


def test_peer_reports_a_document_that_differs(peer, kind, fmt, scratch):
    target = scratch.target(kind)
    changed = dict(DOC, id=8)

    with open_queue(kind, target, fmt) as q:
        q.put(changed)

        [(_, text)] = peer.recv(kind, target, 1, fmt)
        if peer.language == "c":
            assert text.startswith("mismatch ")
        else:
            assert json.loads(text) == changed
