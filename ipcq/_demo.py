"""``ipcq demo``: a tour of both kinds of queue that needs no setup.

It makes its own queues (a POSIX name and a System V key that no one
else uses), shows priorities and message types, then runs producer and
consumer processes over each kind of queue with each serializer and
checks that every message arrived exactly once.  Every queue it made is
removed at the end, also after Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import sys
import time
import uuid
from typing import Any, Callable, TextIO

import ipcq
from ipcq import posixmq, serializers, sysvmq

# How long a child waits for one message before giving up: only reached
# if the parent died without telling it to stop.
CHILD_PATIENCE = 30.0


@dataclasses.dataclass
class Order:
    """What the pickle run sends: any Python object pickle can carry."""

    producer: int
    seq: int
    item: str = "widget"


class _Stop(Exception):
    """SIGTERM: clean up as for Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Stop


# -- the messages of each serializer ----------------------------------------


class Codec:
    """How one serializer's run builds, recognises and ends its messages."""

    def __init__(
        self,
        name: str,
        serializer: Any,
        make: Callable[[int, int], Any],
        ident: Callable[[Any], tuple[int, int]],
        stop: Any,
        shows: str,
    ) -> None:
        self.name = name
        self.serializer = serializer
        self.make = make
        self.ident = ident
        self.stop = stop
        self.shows = shows


def _raw_ident(data: bytes) -> tuple[int, int]:
    producer, seq = data.split(b":")
    return int(producer), int(seq)


def codecs() -> list[Codec]:
    """One run per serializer this ipcq has."""
    found = [
        Codec(
            "pickle",
            "pickle",
            lambda p, i: Order(p, i),
            lambda o: (o.producer, o.seq),
            None,
            "Order(producer=0, seq=0, item='widget') dataclass",
        ),
        Codec(
            "msgpack",
            "msgpack",
            lambda p, i: {"producer": p, "seq": i, "item": "widget"},
            lambda d: (d["producer"], d["seq"]),
            None,
            "{'producer': 0, 'seq': 0, 'item': 'widget'}",
        ),
        Codec(
            "json",
            "json",
            lambda p, i: {"producer": p, "seq": i, "item": "widget"},
            lambda d: (d["producer"], d["seq"]),
            None,
            "{'producer': 0, 'seq': 0, 'item': 'widget'}",
        ),
        Codec(
            "raw",
            "raw",
            lambda p, i: b"%d:%d" % (p, i),
            _raw_ident,
            b"stop",
            "b'0:0' (bytes as they are)",
        ),
    ]
    struct_serializer = getattr(serializers, "StructSerializer", None)
    if struct_serializer is not None:
        found.append(
            Codec(
                "struct",
                struct_serializer("<iid"),
                lambda p, i: (p, i, 9.99),
                lambda t: (t[0], t[1]),
                (-1, -1, 0.0),
                "(0, 0, 9.99) as a C struct {int32; int32; double}",
            )
        )
    return found


# -- the queues --------------------------------------------------------------


class Queues:
    """The demo's queues: made on demand, all removed by cleanup()."""

    def __init__(self) -> None:
        self.tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.posix_names: list[str] = []
        self.sysv_ids: list[int] = []
        self.msg_max = _read_int("/proc/sys/fs/mqueue/msg_max", 10)

    def posix(self, serializer: Any, suffix: str) -> posixmq.Queue:
        name = f"/ipcq-demo-{self.tag}-{suffix}"
        q = posixmq.Queue(name, min(10, self.msg_max), 256, serializer, exclusive=True)
        self.posix_names.append(name)
        return q

    def sysv(self, serializer: Any) -> sysvmq.Queue:
        while True:
            key = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
            if key == 0:
                continue
            try:
                q = sysvmq.Queue(key, None, serializer, exclusive=True)
            except FileExistsError:
                continue
            self.sysv_ids.append(q.id)
            return q

    def cleanup(self) -> list[str]:
        removed = []
        for name in self.posix_names:
            try:
                posixmq.unlink(name)
                removed.append(name)
            except FileNotFoundError:
                pass
        for qid in self.sysv_ids:
            try:
                sysvmq.remove(qid)
                removed.append(f"id:{qid}")
            except FileNotFoundError:
                pass
        self.posix_names.clear()
        self.sysv_ids.clear()
        return removed


def _read_int(path: str, default: int) -> int:
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def _open(kind: str, address: Any, serializer: Any) -> Any:
    """Open a demo queue in a child, as an unrelated program would."""
    if kind == "posix":
        return posixmq.Queue(address, serializer=serializer, create=False)
    return sysvmq.Queue(address, None, serializer, create=False)


def _leave(q: Any) -> None:
    # A System V handle's close() would remove the queue: detach instead.
    if isinstance(q, sysvmq.Queue):
        q.detach()
    else:
        q.close()


# -- the processes -----------------------------------------------------------


def _child(body: Callable[..., Any], *args: Any) -> None:
    # Ctrl-C is for the parent, which stops the children and cleans up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    body(*args)


def _produce(kind: str, address: Any, codec: Codec, producer: int, count: int) -> None:
    q = _open(kind, address, codec.serializer)
    put = q.put
    make = codec.make
    try:
        for seq in range(count):
            # POSIX: priority 1 puts everything ahead of the stop messages
            # (priority 0); System V: all of type 1, in order.
            if kind == "posix":
                put(make(producer, seq), True, CHILD_PATIENCE, 1)
            else:
                put(make(producer, seq), True, 1, None, CHILD_PATIENCE)
    finally:
        _leave(q)


def _consume(kind: str, address: Any, codec: Codec, results: Any) -> None:
    q = _open(kind, address, codec.serializer)
    get = q.get
    ident = codec.ident
    stop = codec.stop
    seen = []
    try:
        while True:
            item = get(timeout=CHILD_PATIENCE)
            if item == stop:
                break
            seen.append(ident(item))
    finally:
        _leave(q)
        results.put(seen)


def _run_pipeline(
    queues: Queues,
    kind: str,
    codec: Codec,
    producers: int,
    consumers: int,
    count: int,
    children: list[Any],
) -> tuple[int, int, bool, float]:
    """Run one pipeline; return (sent, received, all exactly once, seconds)."""
    ctx = multiprocessing.get_context("fork")
    q: Any
    if kind == "posix":
        q = queues.posix(codec.serializer, codec.name)
        address: Any = q.name
    else:
        q = queues.sysv(codec.serializer)
        address = q.key
    results = ctx.SimpleQueue()
    try:
        start = time.perf_counter()
        takers = [
            ctx.Process(target=_child, args=(_consume, kind, address, codec, results))
            for _ in range(consumers)
        ]
        makers = [
            ctx.Process(target=_child, args=(_produce, kind, address, codec, p, count))
            for p in range(producers)
        ]
        for proc in takers + makers:
            proc.start()
            children.append(proc)
        for proc in makers:
            proc.join()
        for _ in takers:
            if kind == "posix":
                q.put(codec.stop, priority=0)
            else:
                q.put(codec.stop)
        received = [results.get() for _ in takers]
        for proc in takers:
            proc.join()
        elapsed = time.perf_counter() - start
    finally:
        _leave(q)
        results.close()
    got = sorted(ident for seen in received for ident in seen)
    expected = [(p, i) for p in range(producers) for i in range(count)]
    failed = any(proc.exitcode != 0 for proc in takers + makers)
    return producers * count, len(got), got == expected and not failed, elapsed


# -- the tour ----------------------------------------------------------------


def _show_priorities(queues: Queues, out: TextIO) -> None:
    out.write("1. POSIX priorities: the highest priority is received first\n")
    q = queues.posix("msgpack", "prio")
    sent = [("routine", 0), ("urgent", 9), ("normal", 5), ("normal too", 5), ("low", 1)]
    try:
        for text, priority in sent:
            q.put(text, priority=priority)
        got = [q.get_with_priority(timeout=5) for _ in sent]
    finally:
        q.close()
    out.write(f"   queue {q.name}\n")
    out.write("   sent:     " + _pairs(sent) + "\n")
    out.write("   received: " + _pairs(got) + "\n")
    out.write("   (equal priorities keep their order)\n\n")


def _show_types(queues: Queues, out: TextIO) -> None:
    out.write("2. System V types: each receiver picks what it takes\n")
    q = queues.sysv("json")
    sent = [("order 1", 1), ("invoice 1", 2), ("order 2", 1), ("alert", 3)]
    try:
        for text, msg_type in sent:
            q.put(text, msg_type=msg_type)
        steps = [
            (
                "get(msg_type=2) ",
                q.get_with_type(msg_type=2, timeout=5),
                "the first of type 2",
            ),
            (
                "get(msg_type=-3)",
                q.get_with_type(msg_type=-3, timeout=5),
                "the lowest type up to 3",
            ),
            ("get()           ", q.get_with_type(timeout=5), "the first in line"),
            ("get()           ", q.get_with_type(timeout=5), "the first in line"),
        ]
    finally:
        q.detach()
    out.write(f"   queue key {q.key:#010x} (id {q.id})\n")
    out.write("   sent: " + _pairs(sent, "type") + "\n")
    for call, (text, msg_type), why in steps:
        out.write(f"   {call} -> {text!r} (type {msg_type}): {why}\n")
    out.write("\n")


def _pairs(pairs: list[tuple[Any, int]], label: str = "") -> str:
    prefix = f"{label} " if label else ""
    return ", ".join(f"{text!r} ({prefix}{n})" for text, n in pairs)


def _show_pipelines(
    queues: Queues,
    out: TextIO,
    producers: int,
    consumers: int,
    count: int,
    children: list[Any],
) -> bool:
    out.write(
        f"3. Processes: {producers} producers x {count} messages and "
        f"{consumers} consumers per run, each opening the queue by its "
        "name or key\n"
    )
    runs = codecs()
    for codec in runs:
        out.write(f"   {codec.name:<8} sends {codec.shows}\n")
    out.write("\n")
    header = ("queue", "serializer", "sent", "received", "checked", "time", "rate")
    rows = [header]
    all_ok = True
    for kind, label in (("posix", "POSIX"), ("sysv", "System V")):
        for codec in runs:
            sent, received, ok, elapsed = _run_pipeline(
                queues, kind, codec, producers, consumers, count, children
            )
            all_ok = all_ok and ok
            rows.append(
                (
                    label,
                    codec.name,
                    str(sent),
                    str(received),
                    "ok" if ok else "MISMATCH",
                    f"{elapsed:.2f} s",
                    f"{received / elapsed:,.0f} msg/s",
                )
            )
            out.flush()
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in (2, 3, 5, 6) else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        out.write("   " + "  ".join(cells).rstrip() + "\n")
    out.write("\n")
    if all_ok:
        out.write(
            "   Every message arrived exactly once.  The times include "
            "starting the processes.\n"
        )
    else:
        out.write("   Some messages were lost or duplicated: see MISMATCH.\n")
    return all_ok


def run(
    messages: int = 10000,
    producers: int = 2,
    consumers: int = 2,
    out: TextIO = sys.stdout,
) -> int:
    """Run the tour, writing to *out*; return the exit status."""
    queues = Queues()
    children: list[Any] = []
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    status = 1
    try:
        out.write(
            f"ipcq {ipcq.__version__} demo: the kernel's message queues at "
            f"work (Python {sys.version.split()[0]})\n\n"
        )
        out.flush()
        _show_priorities(queues, out)
        _show_types(queues, out)
        out.flush()
        ok = _show_pipelines(queues, out, producers, consumers, messages, children)
        status = 0 if ok else 1
    except (KeyboardInterrupt, _Stop):
        status = 130
        out.write("\ninterrupted\n")
    finally:
        for proc in children:
            if proc.is_alive():
                proc.terminate()
        for proc in children:
            proc.join(5)
        removed = queues.cleanup()
        signal.signal(signal.SIGTERM, previous)
        out.write(f"\nRemoved the demo's {len(removed)} queues.\n")
        out.flush()
    return status
