"""Permissions seen by another user, and the pickle warning.

The other user is a forked child that drops to uid/gid 65534 (nobody),
which also drops root's capabilities: the kernel then checks the queue's
mode bits exactly as it would for any unprivileged process.  Tests that
need this skip when the test process cannot change its user.
"""

import errno
import gc
import os
import sys
import warnings

import pytest
from conftest import unique_key, unique_name
from reliability_util import outcome_in_child, reap_children  # noqa: F401

import ipcq
from ipcq import posixmq, sysvmq

NOBODY = 65534

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="switching to another user needs root"
)


def as_nobody(func, *args):
    """Run ``func(*args)`` as uid/gid 65534 in a child; return what it
    returned, or the exception it raised."""

    def run():
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        return func(*args)

    return outcome_in_child(run)


def is_permission_error(outcome):
    return (
        isinstance(outcome, ipcq.QueueError)
        and isinstance(outcome, PermissionError)
        and outcome.errno in (errno.EACCES, errno.EPERM)
    )


# -- POSIX ----------------------------------------------------------------


def posix_open(name, read, write):
    q = posixmq.Queue(name, create=False, read=read, write=write, serializer="raw")
    q.close()
    return "opened"


def posix_use(name, read, write):
    """Open with the given access and do one thing with it."""
    with posixmq.Queue(
        name, create=False, read=read, write=write, serializer="raw"
    ) as q:
        if read:
            return q.get_nowait()
        q.put_nowait(b"from nobody")
        return "put"


ACCESS = [(True, False), (False, True), (True, True)]
ACCESS_IDS = ["read-only", "write-only", "read-write"]


@needs_root
@pytest.mark.parametrize("read,write", ACCESS, ids=ACCESS_IDS)
def test_posix_default_mode_keeps_other_users_out(make_queue, read, write):
    q = make_queue("posix", maxsize=2, maxmsgsize=64, serializer="raw")
    q.put(b"private")

    assert is_permission_error(as_nobody(posix_open, q.name, read, write))
    # Opening with create=True finds the queue and is refused the same way.
    outcome = as_nobody(lambda: posixmq.Queue(q.name, serializer="raw"))
    assert is_permission_error(outcome)
    assert q.get_nowait() == b"private"


# (mode, access, allowed): what an unrelated user may open.
POSIX_GRANTS = [
    (0o644, (True, False), True),
    (0o644, (False, True), False),
    (0o644, (True, True), False),
    (0o622, (False, True), True),
    (0o622, (True, False), False),
    (0o622, (True, True), False),
    (0o606, (True, True), True),
    (0o660, (True, False), False),
    (0o604, (True, False), True),
    (0o602, (False, True), True),
]


@needs_root
@pytest.mark.parametrize("umask", [0o077, 0o000])
@pytest.mark.parametrize("mode,access,allowed", POSIX_GRANTS)
def test_posix_mode_grants_exactly_what_it_says(
    make_queue, mode, access, allowed, umask
):
    old = os.umask(umask)
    try:
        q = make_queue("posix", maxsize=2, maxmsgsize=64, mode=mode, serializer="raw")
    finally:
        os.umask(old)
    q.put(b"for whoever may read")
    read, write = access

    outcome = as_nobody(posix_use, q.name, read, write)

    if not allowed:
        assert is_permission_error(outcome), outcome
        assert q.qsize() == 1
    elif read:
        assert outcome == b"for whoever may read"
        assert q.qsize() == 0
    else:
        assert outcome == "put"
        assert [q.get_nowait(), q.get_nowait()] == [
            b"for whoever may read",
            b"from nobody",
        ]


@needs_root
def test_posix_other_user_cannot_unlink(make_queue):
    q = make_queue("posix", maxsize=2, maxmsgsize=64, mode=0o666, serializer="raw")
    outcome = as_nobody(posixmq.unlink, q.name)
    # The queue directory is sticky: only the owner removes a queue.
    assert is_permission_error(outcome), outcome
    with posixmq.Queue(q.name, create=False, serializer="raw") as again:
        again.put(b"still here")


# -- System V -------------------------------------------------------------


def sysv_open(key):
    sysvmq.Queue(key, create=False, serializer="raw").detach()
    return "opened"


def sysv_use(key, action):
    q = sysvmq.Queue(key, create=False, serializer="raw")
    try:
        if action == "get":
            return q.get_nowait()
        if action == "put":
            q.put_nowait(b"from nobody")
            return "put"
        if action == "qsize":
            return q.qsize()
        if action == "max_bytes":
            q.max_bytes = 100
            return "changed"
        if action == "close":
            q.close()
            return "removed"
    finally:
        if not q.closed:
            q.detach()


@needs_root
def test_sysv_default_mode_keeps_other_users_out(make_queue):
    # msgget(2) checks only the access its flags ask for; opening a queue
    # must ask for some, or another user "opens" a 0600 queue and only
    # learns at the first put or get that it may do nothing with it.
    key = unique_key()
    q = make_queue("sysv", key=key, serializer="raw")
    q.put(b"private")

    outcome = as_nobody(sysv_open, key)

    assert is_permission_error(outcome), (
        f"another user opened a 0600 queue: {outcome!r}"
    )
    assert q.get_nowait() == b"private"


@needs_root
@pytest.mark.parametrize("action", ["get", "put", "qsize", "max_bytes", "close"])
def test_sysv_default_mode_refuses_every_operation(make_queue, action):
    key = unique_key()
    q = make_queue("sysv", key=key, serializer="raw")
    q.put(b"private")

    outcome = as_nobody(sysv_use, key, action)

    assert is_permission_error(outcome), outcome
    assert q.qsize() == 1
    assert q.qattr()["max_bytes"] != 100
    assert q.get_nowait() == b"private"


# (mode, action, allowed) for an unrelated user.
SYSV_GRANTS = [
    (0o644, "get", True),
    (0o644, "put", False),
    (0o622, "put", True),
    (0o622, "get", False),
    (0o606, "get", True),
    (0o606, "put", True),
    (0o660, "get", False),
    (0o660, "put", False),
    (0o666, "close", False),
    (0o666, "max_bytes", False),
]


@needs_root
@pytest.mark.parametrize("mode,action,allowed", SYSV_GRANTS)
def test_sysv_mode_grants_exactly_what_it_says(make_queue, mode, action, allowed):
    key = unique_key()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ipcq.PickleSecurityWarning)
        q = make_queue("sysv", key=key, mode=mode, serializer="raw")
    q.put(b"for whoever may read")

    outcome = as_nobody(sysv_use, key, action)

    if not allowed:
        # Only the owner (or CAP_SYS_ADMIN) may remove the queue or change
        # its capacity, whatever the mode says.
        assert is_permission_error(outcome), outcome
        assert q.qsize() == 1
    elif action == "get":
        assert outcome == b"for whoever may read"
        assert q.qsize() == 0
    else:
        assert outcome == "put"
        assert [q.get_nowait(), q.get_nowait()] == [
            b"for whoever may read",
            b"from nobody",
        ]


@needs_root
def test_sysv_mode_ignores_the_umask(make_queue):
    old = os.umask(0o077)
    try:
        key = unique_key()
        q = make_queue("sysv", key=key, mode=0o622, serializer="raw")
    finally:
        os.umask(old)
    assert q.qattr()["mode"] == 0o622
    assert as_nobody(sysv_use, key, "put") == "put"
    assert q.get_nowait() == b"from nobody"


# -- pickle on a queue that others can write to --------------------------------


def make_any(kind, mode, serializer=None, name=None, key=None):
    if kind == "posix":
        return posixmq.Queue(name, 2, 64, serializer, mode=mode)
    return sysvmq.Queue(key, None, serializer, mode=mode)


def address(kind):
    return {"name": unique_name("sec")} if kind == "posix" else {"key": unique_key()}


def remove(kind, q, where):
    if kind == "posix":
        if not q.closed:
            q.close()
        posixmq.unlink(where["name"])
    elif not q.closed:
        q.close()


WRITABLE_BY_OTHERS = [0o666, 0o622, 0o620, 0o602, 0o660]
PRIVATE_ENOUGH = [0o600, 0o644, 0o640, 0o604]


PICKLES = [None, "pickle", ipcq.serializers.PickleSerializer(4)]


@pytest.mark.parametrize("mode", WRITABLE_BY_OTHERS, ids=oct)
@pytest.mark.parametrize("serializer", PICKLES, ids=["default", "name", "instance"])
def test_pickle_on_a_shared_queue_warns(kind, mode, serializer):
    where = address(kind)
    with pytest.warns(ipcq.PickleSecurityWarning) as record:
        q = make_any(kind, mode, serializer, **where)
    try:
        message = str(record[0].message)
        assert oct(mode) in message
        assert "msgpack" in message and "json" in message
    finally:
        remove(kind, q, where)


def test_pickle_warning_points_at_the_caller(kind):
    where = address(kind)
    with pytest.warns(ipcq.PickleSecurityWarning) as record:
        if kind == "posix":
            line = sys._getframe().f_lineno + 1
            q = posixmq.Queue(where["name"], 2, 64, mode=0o666)
        else:
            line = sys._getframe().f_lineno + 1
            q = sysvmq.Queue(where["key"], mode=0o666)
    remove(kind, q, where)
    assert (record[0].filename, record[0].lineno) == (__file__, line)


@pytest.mark.parametrize("mode", PRIVATE_ENOUGH, ids=oct)
def test_pickle_on_a_private_queue_is_quiet(kind, mode):
    where = address(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = make_any(kind, mode, **where)
    remove(kind, q, where)


@pytest.mark.parametrize("serializer", ["msgpack", "json", "raw"])
def test_other_serializers_on_a_shared_queue_are_quiet(kind, serializer):
    where = address(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = make_any(kind, 0o666, serializer, **where)
    remove(kind, q, where)


def test_opening_an_existing_shared_queue_with_pickle_warns(kind):
    where = address(kind)
    first = make_any(kind, 0o666, "raw", **where)
    try:
        with pytest.warns(ipcq.PickleSecurityWarning):
            if kind == "posix":
                second = posixmq.Queue(where["name"], create=False)
                second.close()
            else:
                sysvmq.Queue(where["key"], create=False).detach()
    finally:
        remove(kind, first, where)


def test_warning_as_error_leaves_no_queue_behind(kind):
    # With warnings turned into errors the constructor raises; the queue
    # it had just created must not stay in the system, unreachable.
    where = address(kind)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        warnings.simplefilter("error", ipcq.PickleSecurityWarning)
        with pytest.raises(ipcq.PickleSecurityWarning):
            make_any(kind, 0o666, **where)
        gc.collect()
    unclosed = [w for w in record if issubclass(w.category, ResourceWarning)]

    leftover = None
    try:
        if kind == "posix":
            leftover = posixmq.Queue(where["name"], create=False, serializer="raw")
        else:
            leftover = sysvmq.Queue(where["key"], create=False, serializer="raw")
    except FileNotFoundError:
        pass
    if leftover is not None:
        remove(kind, leftover, where)
    assert leftover is None, "the constructor raised but left its new queue behind"
    assert not unclosed, "the constructor raised but left its descriptor open"


def test_other_user_can_feed_a_shared_queue(kind):
    # The reason for the warning: any local user may write the bytes that
    # the owner's pickle.loads() will run.
    if os.geteuid() != 0:
        pytest.skip("switching to another user needs root")
    where = address(kind)
    q = make_any(kind, 0o622, "raw", **where)
    try:

        def inject():
            if kind == "posix":
                with posixmq.Queue(
                    where["name"], create=False, read=False, serializer="raw"
                ) as w:
                    w.put(b"cbuiltins\nlen\n(S'abc'\ntR.")
            else:
                sysvmq.Queue(where["key"], create=False, serializer="raw").put(
                    b"cbuiltins\nlen\n(S'abc'\ntR."
                )
            return "sent"

        assert as_nobody(inject) == "sent"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ipcq.PickleSecurityWarning)
            reader = (
                posixmq.Queue(where["name"], create=False)
                if kind == "posix"
                else sysvmq.Queue(where["key"], create=False)
            )
        try:
            # A call chosen by the writer ran: builtins.len('abc').
            assert reader.get(timeout=1) == 3
        finally:
            if kind == "posix":
                reader.close()
            else:
                reader.detach()
    finally:
        remove(kind, q, where)
