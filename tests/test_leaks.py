"""Memory and reference counts stay flat over many operations, errors included.

Each workload runs once to warm up (first buffers, caches, interned
strings), then many more times while these are watched:

* the reference counts of the objects the calls receive and return
  (``sys.gettotalrefcount`` too, on a debug build of Python);
* the bytes that Python's allocator holds, traced by tracemalloc;
* the bytes in use from malloc() (glibc's ``mallinfo2``) and the resident
  size of the process, which see memory that the extension takes with
  malloc(), outside tracemalloc's view.

A leak of one object or of a few bytes per call shows up as growth
proportional to the number of calls; the bounds below sit far under that
and far above the noise.  One pass over the workloads makes about 30
calls; the default run makes 4 000 passes (some 120 000 calls per queue
kind), ``--run-slow`` 35 000 passes (over a million calls per kind).
"""

import ctypes
import gc
import os
import queue
import sys
import tracemalloc

import pytest

import ipcq

PAGE = os.sysconf("SC_PAGE_SIZE")

# AddressSanitizer keeps freed memory in quarantine, so the resident size
# grows under it whatever the code does (tests/native/run_sanitized.sh).
with open("/proc/self/maps") as _maps:
    UNDER_ASAN = "libasan" in _maps.read()


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _malloc_in_use():
    """Bytes that malloc() has handed out and not got back (glibc)."""
    info = _mallinfo2()
    return info.uordblks + info.hblkhd


try:
    _mallinfo2 = ctypes.CDLL(None).mallinfo2
    _mallinfo2.restype = _Mallinfo2
    malloc_in_use = _malloc_in_use
except AttributeError:  # not glibc 2.33 or later
    malloc_in_use = None


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def total_refs():
    getter = getattr(sys, "gettotalrefcount", None)
    return getter() if getter else 0


class Handles:
    """The queues one kind's workloads use."""

    def __init__(self, make_queue, kind):
        self.kind = kind
        if kind == "posix":
            self.q = make_queue("posix", maxsize=8, maxmsgsize=1024)
            self.full = make_queue("posix", maxsize=1, maxmsgsize=64, serializer="raw")
            self.closed = make_queue("posix", maxsize=1, maxmsgsize=64)
            self.raw = make_queue("posix", maxsize=4, maxmsgsize=64, serializer="raw")
            self.json = make_queue("posix", name=self.raw.name, serializer="json")
        else:
            self.q = make_queue("sysv")
            self.full = make_queue("sysv", max_bytes=40, serializer="raw")
            self.closed = make_queue("sysv")
            self.raw = make_queue("sysv", serializer="raw")
            self.json = make_queue("sysv", key=self.raw.key, serializer="json")
        self.full.put(b"f" * 40)
        self.closed.close()

    def release(self):
        if self.kind == "sysv":
            self.json.detach()


@pytest.fixture
def handles(make_queue, kind):
    h = Handles(make_queue, kind)
    yield h
    h.release()


def workloads(h):
    """Named callables of one iteration each, every error path included.

    Returns them with the objects whose reference counts must not move.
    """
    q = h.q
    item = {"k": [1, 2.5, "three"], "b": b"\x00\xff"}
    small = b"s" * 40
    buf = bytearray(8192)
    tiny = bytearray(1)
    tag = {"priority": 3} if h.kind == "posix" else {"msg_type": 3}
    bad_tag = {"priority": -1} if h.kind == "posix" else {"msg_type": 0}

    def round_trip():
        q.put(item, **tag)
        q.get_nowait()
        q.put_nowait(small)
        q.get(timeout=1)

    def tagged():
        q.put(small, **tag)
        if h.kind == "posix":
            q.get_with_priority(block=False)
        else:
            q.get_with_type(block=False)

    def batches():
        q.put_many([small, item, small], **tag)
        q.get_many(3, block=False)

    def into():
        q.put(small)
        try:
            q.get_into(tiny, block=False)  # too small: refused, kept
        except ipcq.QueueError:
            pass
        q.get_into(buf, block=False)

    def empty():
        for call in (
            q.get_nowait,
            lambda: q.get(timeout=0),
            lambda: q.get_many(4, block=False),
            lambda: q.get_into(buf, block=False),
        ):
            try:
                call()
            except queue.Empty:
                pass

    def full():
        try:
            h.full.put_nowait(small)
        except queue.Full:
            pass
        try:
            h.full.put(small, timeout=0)
        except queue.Full:
            pass
        assert h.full.put_many([small, small], block=False) == 0

    def queue_errors():
        for call in (
            lambda: q.put(small, **bad_tag),
            lambda: q.put(small, timeout=-1),
            lambda: q.put(b"x" * 9000),
            lambda: h.closed.put(small),
            lambda: h.closed.get_nowait(),
            lambda: h.closed.qsize(),
        ):
            try:
                call()
            except ipcq.QueueError:
                pass
        try:
            q.put(item, pickle_protocol=99)
        except ValueError:
            pass

    def decode_errors():
        h.raw.put(b"\xff not json", **tag)
        try:
            h.json.get_nowait()
        except ipcq.DecodeError:
            pass
        h.raw.put(b"[1]")
        h.raw.put(b"{bad")
        try:
            h.json.get_many(5, block=False)
        except ipcq.DecodeError:
            pass

    table = {
        "round_trip": round_trip,
        "tagged": tagged,
        "batches": batches,
        "into": into,
        "empty": empty,
        "full": full,
        "queue_errors": queue_errors,
        "decode_errors": decode_errors,
    }
    return table, [item, small, buf, tiny, q, h.full, h.closed, q.serializer]


def measure(func, calls, refs_of):
    for _ in range(max(100, calls // 20)):
        func()
    gc.collect()
    counts = [sys.getrefcount(obj) for obj in refs_of]
    objects = len(gc.get_objects())
    refs = total_refs()
    traced = tracemalloc.get_traced_memory()[0]
    resident = rss()
    heap = malloc_in_use() if malloc_in_use else 0

    for _ in range(calls):
        func()

    gc.collect()
    after = [sys.getrefcount(obj) for obj in refs_of]
    return {
        "refcounts": [a - b for a, b in zip(after, counts)],
        "objects": len(gc.get_objects()) - objects,
        "total_refs": total_refs() - refs,
        "traced": tracemalloc.get_traced_memory()[0] - traced,
        "rss": rss() - resident,
        "malloc": (malloc_in_use() if malloc_in_use else 0) - heap,
    }


def problems(growth, watched):
    """What in one measurement is not flat; empty if all is."""
    found = []
    if growth["refcounts"] != [0] * len(watched):
        found.append("reference counts moved")
    if abs(growth["objects"]) >= 50:
        found.append("objects tracked by the GC")
    if abs(growth["total_refs"]) >= 1000:
        found.append("total reference count")
    # A leaked object per call would exceed these bounds many times; the
    # long run also catches a few leaked bytes per call.
    if growth["traced"] >= 32 * 1024:
        found.append("bytes traced by tracemalloc")
    if not UNDER_ASAN and growth["rss"] >= 512 * 1024:
        found.append("resident size")
    # What the extension takes with malloc() itself (glibc's count).
    if not UNDER_ASAN and growth["malloc"] >= 64 * 1024:
        found.append("bytes in use from malloc()")
    return found


def check_flat(h, calls_per_workload):
    table, watched = workloads(h)
    failures = {}
    tracemalloc.start()
    try:
        for name, func in table.items():
            # A leak grows every time; noise from the rest of the process
            # (a thread of an earlier test finishing, say) does not repeat.
            # So a workload fails only if three measurements in a row do.
            for _ in range(3):
                growth = measure(func, calls_per_workload, watched)
                found = problems(growth, watched)
                if not found:
                    break
            else:
                failures[name] = (found, growth)
    finally:
        tracemalloc.stop()

    assert not failures, failures
    assert h.q.qsize() == h.raw.qsize() == 0


def test_flat_over_many_calls(handles):
    check_flat(handles, 4_000)


@pytest.mark.slow
def test_flat_over_a_million_calls(handles):
    check_flat(handles, 35_000)
