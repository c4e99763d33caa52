"""Behaviour of both queue kinds: ordering, blocking, errors, serializers."""

import array
import errno
import gc
import math
import os
import pickle
import queue
import stat
import time
import tracemalloc

import pytest
from conftest import unique_name

import ipcq
from ipcq import QueueError, posixmq, serializers, sysvmq
from ipcq._common import read_limit


def tag_kw(kind, tag):
    """The keyword that carries a priority (POSIX) or a type (System V)."""
    return {"priority": tag} if kind == "posix" else {"msg_type": tag}


def get_tagged(q, **kwargs):
    if isinstance(q, posixmq.Queue):
        return q.get_with_priority(**kwargs)
    return q.get_with_type(**kwargs)


def drain(q):
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items


# -- ordering ---------------------------------------------------------------


def test_fifo_with_default_tag(q):
    for i in range(4):
        q.put(i)
    assert q.qsize() == 4
    assert drain(q) == [0, 1, 2, 3]
    assert q.qsize() == 0


def test_posix_priorities_then_fifo(make_queue):
    q = make_queue.posix()
    for item, prio in [("a", 1), ("b", 5), ("c", 1), ("d", 5), ("e", 0)]:
        q.put(item, priority=prio)
    assert drain(q) == ["b", "d", "a", "c", "e"]


def test_posix_priority_bounds(make_queue):
    q = make_queue.posix()
    q.put("top", priority=posixmq.PRIORITY_MAX)
    q.put("bottom", priority=0)
    assert q.get_with_priority() == ("top", 32767)
    assert q.get_with_priority() == ("bottom", 0)


def test_sysv_type_selection(make_queue):
    q = make_queue.sysv()
    for item, mtype in [("a", 3), ("b", 1), ("c", 2), ("d", 3), ("e", 5)]:
        q.put(item, msg_type=mtype)
    assert q.get(msg_type=3) == "a"  # first of type 3
    assert q.get(msg_type=-2) == "b"  # lowest type <= 2
    assert q.get_with_type() == ("c", 2)  # first of any type
    assert q.get_with_type(msg_type=-10) == ("d", 3)
    with pytest.raises(queue.Empty):
        q.get(block=False, msg_type=4)
    assert q.get_nowait(msg_type=5) == "e"


def test_sysv_type_is_a_c_long(make_queue):
    q = make_queue.sysv()
    big = 2**62
    q.put("x", msg_type=big)
    assert q.get_with_type(msg_type=big) == ("x", big)
    with pytest.raises(OverflowError):
        q.put("x", msg_type=2**64)
    assert q.qsize() == 0


def test_get_with_tag(q, kind):
    q.put("x", **tag_kw(kind, 7))
    assert get_tagged(q) == ("x", 7)


# -- blocking and timeouts --------------------------------------------------


def test_nowait_on_empty_and_full(make_queue, kind):
    q = make_queue(kind, **({"maxsize": 2} if kind == "posix" else {}))
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(block=False)
    if kind == "sysv":
        q.max_bytes = 200
    payload = "x" * 80
    while True:
        try:
            q.put_nowait(payload)
        except queue.Full:
            break
    size = q.qsize()
    assert size >= 2
    with pytest.raises(queue.Full):
        q.put(payload, block=False)
    assert q.qsize() == size


@pytest.mark.parametrize("timeout", [0, 0.05, 0.2])
def test_get_timeout(q, timeout):
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=timeout)
    waited = time.monotonic() - start
    assert timeout <= waited < timeout + 2


def test_put_timeout_when_full(make_queue, kind):
    options = {"maxsize": 1} if kind == "posix" else {}
    q = make_queue(kind, serializer="raw", **options)
    if kind == "sysv":
        q.max_bytes = 64
    q.put(b"x" * 40, **({"timeout": 1} if kind == "posix" else {}))
    start = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(b"y" * 40, timeout=0.1)
    assert 0.1 <= time.monotonic() - start < 2
    assert q.qsize() == 1


def test_timeout_ignored_without_block(q):
    # As in queue.Queue: block=False never waits, whatever the timeout.
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(block=False, timeout=5)
    assert time.monotonic() - start < 1


def test_blocking_get_is_woken_by_another_process(q, kind):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            time.sleep(0.2)
            q.put("from child", **tag_kw(kind, 3))
            code = 0
        finally:
            os._exit(code)
    try:
        assert get_tagged(q, timeout=10) == ("from child", 3)
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_blocking_put_is_woken_by_a_reader_process(make_queue, kind):
    options = {"maxsize": 1} if kind == "posix" else {}
    q = make_queue(kind, serializer="raw", **options)
    if kind == "sysv":
        q.max_bytes = 64
    q.put(b"a" * 40)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            time.sleep(0.2)
            code = 0 if q.get() == b"a" * 40 else 2
        finally:
            os._exit(code)
    try:
        q.put(b"b" * 40, timeout=10)
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert q.get_nowait() == b"b" * 40


# -- bad input: a clear exception, and the queue as it was -------------------


BAD_TIMEOUTS = [
    (-1, QueueError),
    (-0.001, QueueError),
    (math.nan, QueueError),
    ("1", TypeError),
    (object(), TypeError),
]


@pytest.mark.parametrize("timeout, exc", BAD_TIMEOUTS)
def test_bad_timeouts(q, timeout, exc):
    q.put("keep")
    with pytest.raises(exc) as info:
        q.get(timeout=timeout)
    if exc is QueueError:
        assert info.value.errno == QueueError.INVALID_VALUE
        assert isinstance(info.value, ValueError)
    with pytest.raises(exc):
        q.put("more", timeout=timeout)
    assert drain(q) == ["keep"]


@pytest.mark.parametrize(
    "priority, exc",
    [
        (-1, QueueError),
        (32768, QueueError),
        (2**70, OverflowError),
        (1.5, TypeError),
        ("1", TypeError),
        (None, TypeError),
    ],
)
def test_bad_priorities(make_queue, priority, exc):
    q = make_queue.posix()
    q.put("keep")
    with pytest.raises(exc) as info:
        q.put("x", priority=priority)
    if exc is QueueError:
        assert info.value.errno == QueueError.INVALID_VALUE
        assert "0 to 32767" in str(info.value)
    with pytest.raises(exc):
        q.put_nowait("x", priority=priority)
    with pytest.raises(exc):
        q.put_many(["x"], priority=priority)
    assert drain(q) == ["keep"]


@pytest.mark.parametrize(
    "msg_type, exc",
    [
        (0, QueueError),
        (-3, QueueError),
        (2**64, OverflowError),
        (1.0, TypeError),
        ("2", TypeError),
    ],
)
def test_bad_put_types(make_queue, msg_type, exc):
    q = make_queue.sysv()
    q.put("keep")
    with pytest.raises(exc) as info:
        q.put("x", msg_type=msg_type)
    if exc is QueueError:
        assert info.value.errno == QueueError.INVALID_VALUE
    with pytest.raises(exc):
        q.put_nowait("x", msg_type=msg_type)
    assert drain(q) == ["keep"]


@pytest.mark.parametrize("msg_type", [1.0, "1", None])
def test_bad_get_types(make_queue, msg_type):
    q = make_queue.sysv()
    q.put("keep")
    for call in (q.get, q.get_nowait, q.get_with_type):
        with pytest.raises(TypeError, match="msg_type"):
            call(msg_type=msg_type)
    assert drain(q) == ["keep"]


def test_too_big_message_is_refused_before_sending(make_queue, kind):
    q = make_queue(kind, serializer="raw")
    q.put(b"keep")
    limit = q.maxmsgsize if kind == "posix" else read_limit("/proc/sys/kernel/msgmax")
    with pytest.raises(QueueError) as info:
        q.put(b"x" * (limit + 1))
    err = info.value
    assert err.errno == QueueError.TOO_BIG_MESSAGE
    assert str(limit + 1) in str(err) and str(limit) in str(err)
    assert drain(q) == [b"keep"]


def test_sysv_message_bigger_than_capacity(make_queue):
    q = make_queue.sysv(serializer="raw", max_bytes=100)
    for block in (True, False):
        with pytest.raises(QueueError) as info:
            q.put(b"x" * 150, block=block)
        assert info.value.errno == QueueError.TOO_BIG_MESSAGE
        assert "150" in str(info.value) and "100" in str(info.value)
    assert q.qsize() == 0


def test_raw_accepts_buffers_without_copy(make_queue, kind):
    q = make_queue(kind, serializer="raw")
    q.put(b"bytes")
    q.put(bytearray(b"bytearray"))
    q.put(memoryview(b"xxmemoryview")[2:])
    q.put(array.array("i", [1, 2]))
    q.put(b"")
    assert drain(q) == [
        b"bytes",
        b"bytearray",
        b"memoryview",
        array.array("i", [1, 2]).tobytes(),
        b"",
    ]
    for bad in ("text", 42, None, memoryview(b"abcd")[::2]):
        with pytest.raises(TypeError, match="bytes-like"):
            q.put(bad)
    assert q.qsize() == 0


def test_wrong_argument_types_for_construction(make_queue):
    with pytest.raises(TypeError):
        posixmq.Queue(b"/bytes-name")
    with pytest.raises(TypeError):
        posixmq.Queue(unique_name(), maxsize=1.0)
    with pytest.raises(TypeError):
        posixmq.Queue(unique_name(), maxmsgsize="64")
    with pytest.raises(TypeError):
        sysvmq.Queue("12")
    with pytest.raises(TypeError):
        sysvmq.Queue(1.5)


@pytest.mark.parametrize(
    "name",
    ["foo", "", "/", "//x", "/a/b", "/a\0b", "/" + "x" * 256, "x/"],
)
def test_invalid_posix_names(name):
    with pytest.raises(QueueError) as info:
        posixmq.Queue(name)
    assert info.value.errno == QueueError.INVALID_VALUE
    with pytest.raises(QueueError) as info:
        posixmq.unlink(name)
    assert info.value.errno == QueueError.INVALID_VALUE


def test_longest_posix_name(make_queue):
    name = "/" + "n" * 255
    q = make_queue.posix(name=name)
    assert q.name == name


@pytest.mark.parametrize("field", ["maxsize", "maxmsgsize"])
@pytest.mark.parametrize("value", [0, -1])
def test_invalid_posix_sizes(field, value):
    name = unique_name()
    with pytest.raises(QueueError) as info:
        posixmq.Queue(name, **{field: value})
    assert info.value.errno == QueueError.INVALID_VALUE
    assert field in str(info.value)
    with pytest.raises(FileNotFoundError):
        posixmq.unlink(name)  # nothing was created


def test_posix_sizes_above_the_system_limits():
    for field, proc in [("maxsize", "msg_max"), ("maxmsgsize", "msgsize_max")]:
        limit = read_limit(f"/proc/sys/fs/mqueue/{proc}")
        name = unique_name()
        try:
            with pytest.raises(QueueError) as info:
                posixmq.Queue(name, **{field: limit + 1})
        except BaseException:
            posixmq.unlink(name)
            raise
        message = str(info.value)
        assert info.value.errno == QueueError.INVALID_VALUE
        assert f"{proc}={limit}" in message
        assert f"/proc/sys/fs/mqueue/{proc}" in message
        assert "sysctl" in message


@pytest.mark.parametrize("key", [-1, 2**32, 2**70])
def test_sysv_key_out_of_range(key):
    with pytest.raises(OverflowError):
        sysvmq.Queue(key)


@pytest.mark.parametrize("max_bytes", [0, -5])
def test_sysv_invalid_max_bytes(max_bytes):
    with pytest.raises(QueueError) as info:
        sysvmq.Queue(0, max_bytes)
    assert info.value.errno == QueueError.INVALID_VALUE


def test_sysv_max_bytes_above_msgmnb(make_queue):
    msgmnb = read_limit("/proc/sys/kernel/msgmnb")
    key = make_queue.sysv().key
    with pytest.raises(QueueError) as info:
        sysvmq.Queue(key, msgmnb + 1)
    assert f"msgmnb={msgmnb}" in str(info.value)
    assert "/proc/sys/kernel/msgmnb" in str(info.value)
    assert isinstance(info.value, PermissionError)


def test_sysv_max_bytes_set_and_read(make_queue):
    q = make_queue.sysv(max_bytes=1000)
    assert q.max_bytes == 1000
    assert q.qattr()["max_bytes"] == 1000
    q.max_bytes = 2000
    assert q.qattr()["max_bytes"] == 2000


# -- serializers -------------------------------------------------------------


OBJECTS = [[1, "A"], {"k": [1, 2.5, None, True]}, "text", 12345, []]


@pytest.mark.parametrize("name", ["pickle", "msgpack", "json"])
def test_serializer_round_trips(make_queue, kind, name):
    q = make_queue(kind, serializer=name)
    for obj in OBJECTS:
        q.put(obj)
    assert drain(q) == OBJECTS


@pytest.mark.parametrize(
    "spec, cls",
    [
        (None, serializers.PickleSerializer),
        ("pickle", serializers.PickleSerializer),
        ("msgpack", serializers.MsgpackSerializer),
        ("json", serializers.JsonSerializer),
        ("raw", serializers.RawSerializer),
        (serializers.RawSerializer, serializers.RawSerializer),
        (serializers.PickleSerializer(3), serializers.PickleSerializer),
    ],
)
def test_serializer_resolution(q, make_queue, spec, cls):
    handle = make_queue.reopen(q, serializer=spec)
    assert isinstance(handle.serializer, cls)


def test_unknown_serializer_name_lists_the_valid_ones(kind):
    with pytest.raises(ValueError) as info:
        if kind == "posix":
            posixmq.Queue(unique_name(), serializer="yaml")
        else:
            sysvmq.Queue(0, serializer="yaml")
    for name in ("pickle", "msgpack", "json", "raw", "yaml"):
        assert repr(name) in str(info.value)


def test_serializer_without_loads_is_refused():
    class DumpsOnly:
        @staticmethod
        def dumps(obj):
            return b""

    with pytest.raises(TypeError, match="loads"):
        sysvmq.Queue(0, serializer=DumpsOnly)


def test_ipcqueue_style_serializer_class(q, make_queue):
    class Upper:
        @staticmethod
        def dumps(obj):
            return obj.upper().encode()

        @staticmethod
        def loads(data):
            return data.decode().lower()

    handle = make_queue.reopen(q, serializer=Upper)
    raw = make_queue.reopen(q, serializer="raw")
    handle.put("hello")
    assert raw.get() == b"HELLO"
    raw.put(b"WORLD")
    assert handle.get() == "world"


def test_serializer_is_resolved_once(q, make_queue):
    calls = []

    class Counting:
        def __getattribute__(self, name):
            calls.append(name)
            return object.__getattribute__(self, name)

        def dumps(self, obj):
            return obj

        def loads(self, data):
            return data

    handle = make_queue.reopen(q, serializer=Counting())
    looked_up = len(calls)
    for _ in range(5):
        handle.put(b"x")
        handle.get()
    assert len(calls) == looked_up


def test_dumps_returning_non_bytes_is_a_type_error(q, make_queue):
    class Bad:
        @staticmethod
        def dumps(obj):
            return 42

        @staticmethod
        def loads(data):
            return data

    handle = make_queue.reopen(q, serializer=Bad)
    with pytest.raises(TypeError, match="dumps"):
        handle.put("x")
    assert q.qsize() == 0


def test_pickle_protocol_per_message(q, make_queue):
    raw = make_queue.reopen(q, serializer="raw")
    q.put([1, "A"])
    q.put([1, "A"], pickle_protocol=4)
    q.put_nowait([1, "A"], pickle_protocol=2)
    assert raw.get() == pickle.dumps([1, "A"], 1)
    assert raw.get() == pickle.dumps([1, "A"], 4)
    assert raw.get() == pickle.dumps([1, "A"], 2)


def test_pickle_protocol_only_for_pickle(make_queue, kind):
    q = make_queue(kind, serializer="json")
    with pytest.raises(ValueError, match="pickle_protocol"):
        q.put([1], pickle_protocol=2)
    assert q.qsize() == 0


def test_decode_error_keeps_the_payload(q, make_queue, kind):
    raw = make_queue.reopen(q, serializer="raw")
    as_json = make_queue.reopen(q, serializer="json")
    raw.put(b"\xffnot json", **tag_kw(kind, 4))
    raw.put(b'"next"')
    with pytest.raises(ipcq.DecodeError) as info:
        as_json.get()
    err = info.value
    assert err.payload == b"\xffnot json"
    if kind == "posix":
        assert (err.priority, err.msg_type) == (4, None)
    else:
        assert (err.priority, err.msg_type) == (None, 4)
    assert isinstance(err.__cause__, Exception)
    assert as_json.get() == "next"


def test_unpickling_error_is_a_decode_error(q, make_queue):
    raw = make_queue.reopen(q, serializer="raw")
    raw.put(b"\x80\x05garbage")
    with pytest.raises(ipcq.DecodeError) as info:
        q.get()
    assert info.value.payload == b"\x80\x05garbage"


# -- attributes, state, lifetime ---------------------------------------------


def test_qattr_posix(make_queue):
    q = make_queue.posix(maxsize=4, maxmsgsize=128)
    q.put("x")
    assert q.qattr() == {"size": 1, "max_size": 4, "max_msgbytes": 128}
    assert (q.maxsize, q.maxmsgsize) == (4, 128)
    assert not q.empty() and not q.full()
    for _ in range(3):
        q.put("x")
    assert q.full()


def test_qattr_sysv(make_queue):
    q = make_queue.sysv(serializer="raw")
    q.put(b"12345")
    attr = q.qattr()
    assert attr["size"] == 1 and attr["bytes"] == 5
    assert attr["max_bytes"] == read_limit("/proc/sys/kernel/msgmnb")
    assert attr["last_send_pid"] == os.getpid()
    assert attr["mode"] == 0o600
    assert not q.empty()


def test_existing_posix_queue_attributes_are_adopted(make_queue):
    creator = make_queue.posix(maxsize=3, maxmsgsize=4000, serializer="raw")
    creator.put(b"z" * 3000)
    opener = posixmq.Queue(creator.name, serializer="raw")  # defaults
    try:
        assert (opener.maxsize, opener.maxmsgsize) == (3, 4000)
        assert opener.get() == b"z" * 3000
        opener.put(b"y" * 3999)
    finally:
        opener.close()
    assert creator.get() == b"y" * 3999


def test_sysv_receives_the_largest_message_the_kernel_accepts(make_queue):
    msgmax = read_limit("/proc/sys/kernel/msgmax")
    q = make_queue.sysv(serializer="raw")
    q.put(b"\x01" * msgmax)
    assert q.get() == b"\x01" * msgmax


def test_received_objects_hold_only_their_size(make_queue, kind):
    if kind == "posix":
        q = make_queue.posix(maxsize=10, maxmsgsize=8192, serializer="raw")
    else:
        q = make_queue.sysv(serializer="raw")
    kept = []
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            for _ in range(10):
                q.put(b"0123456789")
            for _ in range(10):
                kept.append(q.get())
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(kept) == 200
    # 200 ten-byte bytes objects are about 9 KiB; one 8 KiB buffer each
    # would be 1.6 MiB.
    assert grown < 30_000


def test_default_mode_is_owner_only(make_queue, kind):
    old = os.umask(0)
    try:
        q = make_queue(kind)
    finally:
        os.umask(old)
    if kind == "posix":
        assert stat.S_IMODE(os.fstat(q.fileno()).st_mode) == 0o600
    else:
        assert q.qattr()["mode"] == 0o600


def test_mode_is_applied_exactly_despite_the_umask(make_queue, kind):
    old = os.umask(0o077)
    try:
        q = make_queue(kind, mode=0o640)
    finally:
        os.umask(old)
    if kind == "posix":
        assert stat.S_IMODE(os.fstat(q.fileno()).st_mode) == 0o640
    else:
        assert q.qattr()["mode"] == 0o640


def test_pickle_on_a_queue_others_can_write_warns(make_queue, kind):
    with pytest.warns(ipcq.PickleSecurityWarning, match="pickle"):
        make_queue(kind, mode=0o666)
    with pytest.warns(ipcq.PickleSecurityWarning):
        make_queue(kind, mode=0o622)


class ProtocolFive(serializers.PickleSerializer):
    def __init__(self):
        super().__init__(5)


@pytest.mark.parametrize("spec", [pickle, ProtocolFive()], ids=["module", "subclass"])
def test_every_unpickling_serializer_warns(make_queue, kind, spec):
    with pytest.warns(ipcq.PickleSecurityWarning):
        q = make_queue(kind, mode=0o666, serializer=spec)
    q.put([1, "A"])
    assert q.get() == [1, "A"]


def test_shared_queue_without_pickle_does_not_warn(make_queue, kind):
    q = make_queue(kind, mode=0o666, serializer="json")
    q.put([1])
    assert q.get() == [1]


def test_open_options_posix(make_queue):
    name = unique_name()
    with pytest.raises(FileNotFoundError):
        posixmq.Queue(name, create=False)
    q = make_queue.posix(name=name, exclusive=True)
    with pytest.raises(FileExistsError) as info:
        posixmq.Queue(name, exclusive=True)
    assert info.value.errno == errno.EEXIST
    reader = make_queue.posix(name=name, write=False)
    writer = make_queue.posix(name=name, read=False, create=False)
    writer.put("x")
    assert reader.get() == "x"
    with pytest.raises(QueueError) as info:
        reader.put("y")
    assert info.value.errno == QueueError.INVALID_DESCRIPTOR
    with pytest.raises(QueueError):
        writer.get_nowait()
    assert q.qsize() == 0
    with pytest.raises(ValueError):
        posixmq.Queue(name, read=False, write=False)


def test_open_options_sysv(make_queue):
    key = make_queue.sysv().key
    same = make_queue.sysv(key=key, create=False)
    assert same.key == key
    with pytest.raises(FileExistsError):
        sysvmq.Queue(key, exclusive=True)
    with pytest.raises(QueueError):
        sysvmq.Queue(0, create=False)
    other = make_queue.sysv()
    gone = other.key
    other.close()
    with pytest.raises(FileNotFoundError) as info:
        sysvmq.Queue(gone, create=False)
    assert info.value.errno == QueueError.DOES_NOT_EXIST


def test_private_sysv_queues_are_distinct(make_queue):
    a = make_queue.sysv(key=None)
    b = make_queue.sysv(key=0)
    assert a.id != b.id and a.key == b.key == 0
    a.put("a")
    assert b.empty()


def test_ftok_matches_c(tmp_path):
    path = tmp_path / "anchor"
    path.write_text("")
    st = os.stat(path)
    expected = (65 & 0xFF) << 24 | (st.st_dev & 0xFF) << 16 | (st.st_ino & 0xFFFF)
    assert sysvmq.ftok(str(path), 65) == expected
    assert sysvmq.ftok(path, 65) == expected
    with pytest.raises(FileNotFoundError):
        sysvmq.ftok(tmp_path / "missing", 1)
    with pytest.raises(QueueError):
        sysvmq.ftok(path, 0)


def test_context_manager_closes_but_keeps_posix_queue(make_queue):
    name = unique_name()
    make_queue.posix_names.append(name)
    with posixmq.Queue(name) as q:
        q.put("kept")
    assert q.closed
    with posixmq.Queue(name, create=False) as again:
        assert again.get() == "kept"


def test_context_manager_removes_sysv_queue(make_queue):
    key = make_queue.sysv().key
    with sysvmq.Queue(key) as q:
        q.put("x")
    assert q.closed
    with pytest.raises(FileNotFoundError):
        sysvmq.Queue(key, create=False)


def test_every_call_after_close_is_invalid_descriptor(q, kind):
    q.close()
    calls = [
        lambda: q.put("x"),
        lambda: q.put_nowait("x"),
        q.get,
        q.get_nowait,
        q.qsize,
        q.qattr,
        q.empty,
        q.close,
        lambda: q.get_many(2),
        lambda: q.put_many(["x"]),
        lambda: q.get_into(bytearray(9000)),
        lambda: get_tagged(q),
    ]
    if kind == "posix":
        calls += [q.fileno, q.full]
    else:
        calls += [q.detach]
    for call in calls:
        with pytest.raises(QueueError) as info:
            call()
        assert info.value.errno == QueueError.INVALID_DESCRIPTOR


def test_sysv_close_removes_and_second_close_fails(make_queue):
    q = make_queue.sysv()
    other = make_queue.reopen(q)
    q.close()
    with pytest.raises(QueueError) as info:
        q.close()
    assert info.value.errno == QueueError.INVALID_DESCRIPTOR
    with pytest.raises(FileNotFoundError):
        other.put("x")


def test_sysv_detach_keeps_the_queue(make_queue):
    q = make_queue.sysv()
    q.put("stays")
    q.detach()
    with sysvmq.Queue(q.key, create=False) as again:
        assert again.get() == "stays"


def test_posix_unlink_then_open_fails(make_queue):
    q = make_queue.posix()
    q.unlink()
    q.put("still usable")  # an open handle keeps an unlinked queue alive
    assert q.get() == "still usable"
    with pytest.raises(FileNotFoundError):
        posixmq.Queue(q.name, create=False)
    with pytest.raises(QueueError) as info:
        posixmq.unlink(q.name)
    assert info.value.errno == QueueError.DOES_NOT_EXIST


def test_unclosed_queue_warns_when_collected():
    name = unique_name()
    q = posixmq.Queue(name)
    fd = q.fileno()
    try:
        with pytest.warns(ResourceWarning, match=name):
            del q
            gc.collect()
        with pytest.raises(OSError):
            os.fstat(fd)  # the descriptor was closed
    finally:
        posixmq.unlink(name)


def test_queue_handles_cannot_be_pickled(q):
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(q)


def test_fileno_readiness(make_queue):
    import select

    q = make_queue.posix(maxsize=1)
    poller = select.poll()
    poller.register(q.fileno(), select.POLLIN | select.POLLOUT)
    assert dict(poller.poll(0))[q.fileno()] == select.POLLOUT
    q.put("x")
    assert dict(poller.poll(0))[q.fileno()] == select.POLLIN


def test_empty_message_first_on_a_new_handle(make_queue, kind):
    q = make_queue(kind, serializer="raw")
    q.put(b"")
    q.put_many([b"", b""])
    assert get_tagged(q) == (b"", 0 if kind == "posix" else 1)
    assert drain(q) == [b"", b""]
