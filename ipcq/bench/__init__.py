"""Benchmarks of ipcq against a C floor and against its peers.

``python -m ipcq.bench`` (or ``ipcq bench``) measures, in one run:

* put + get pairs in one process: raw messages of 64 B, 1 KiB and 8 KiB,
  and two small objects through each serializer;
* the batch calls ``put_many``/``get_many`` and ``get_into``, where this
  ipcq has them;
* one producer process streaming to one consumer process, pinned to two
  CPUs: messages per second and CPU time (user + system, both processes)
  per message;
* ping-pong between two processes, on one CPU and on two: median and
  99th-percentile latency of a round trip;
* the resident set size of the process over millions of put + get.

The contenders are the C program ``floor.c`` (compiled on the fly with
``$CC`` or ``cc -O2``: the system calls and nothing else), the bare
binding ``binding.c`` (a C extension compiled the same way, making ipcq's
system calls for a raw put and get and nothing else: the floor of a
Python binding), pickle alone (what pickling costs with no queue), ipcq's
POSIX and System V queues,
and whichever of posix_ipc, sysv_ipc, ipcqueue, faster-fifo,
multiprocessing.Queue and pyzmq are installed (the others are skipped
with a note).  Every measurement is repeated in rounds; each
round runs every case once, in a shuffled order, so that the drift of a
busy machine hits all contenders alike; the medians over the rounds are
reported, with ratios to C and to ipcq.  Every queue is removed at the
end, also after an error, Ctrl-C or SIGTERM.
"""

import argparse
import gc
import os
import pickle
import platform
import random
import signal
import statistics
import sys
import time
from array import array
from contextlib import contextmanager

from ipcq import posixmq, sysvmq
from ipcq._common import read_limit
from ipcq.bench import _harness, _report
from ipcq.bench._contenders import IPCQ_SERIALIZERS, Spec, all_contenders
from ipcq.bench._floor import Floor, compiler_version
from ipcq.bench._harness import BenchError, Registry

__all__ = ["TESTS", "BenchError", "main", "run"]

RAW_SIZES = (64, 1024, 8192)
OBJECTS = {
    "[1, 'A']": [1, "A"],
    "small dict": {"id": 42, "name": "widget", "price": 9.99, "ok": True},
}
# The mq_msgsize of the POSIX queues that carry objects: more than any
# serializer makes of them.
OBJECT_MSGSIZE = 256
# The depth of the POSIX queues between two processes: the most an
# unprivileged process may ask for on a default Linux (fs.mqueue.msg_max).
DEPTH = 10
BATCH = 10

# The tests, in the order of the report.
TESTS = ("pair", "batch", "get_into", "stream", "pingpong")

# How long one sample lasts, and how many rounds are run.  The tests in
# one process take "repeats" samples of each case per round: they are
# short, and on a shared virtual machine two samples a moment apart can
# differ by a third, so their medians need more samples than the tests
# between two processes, whose samples are longer.
IN_PROCESS = ("pair", "batch", "get_into")
SETTINGS = {
    "full": {
        "rounds": 11,
        "repeats": 3,
        "pair_s": 0.025,
        "stream_s": 0.25,
        "pingpong_s": 0.12,
        "stream_warm": 500,
        "pingpong_warm": 200,
        "memory_messages": 10_000_000,
    },
    "quick": {
        "rounds": 2,
        "repeats": 1,
        "pair_s": 0.002,
        "stream_s": 0.015,
        "pingpong_s": 0.008,
        "stream_warm": 50,
        "pingpong_warm": 20,
        "memory_messages": 50_000,
    },
}


def _size_label(size):
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


class Case:
    """One contender in one test and variant, and its samples."""

    def __init__(
        self, test, variant, contender, serializer, payload, spec, cpus=(None, None)
    ):
        self.test = test
        self.cpus = cpus
        self.variant = variant
        self.contender = contender
        self.serializer = serializer
        self.payload = payload
        self.spec = spec
        self.label = contender.label_for(serializer)
        if isinstance(payload, (bytes, bytearray)):
            self.size = len(payload)
        else:
            self.size = len(pickle.dumps(payload, 1))
        self.n = None
        self.samples = []

    @property
    def title(self):
        """``test variant: contender``, as in messages and progress."""
        return f"{self.test} {self.variant}: {self.label}"


class _Context:
    def __init__(self, registry, floor, settings):
        self.registry = registry
        self.floor = floor
        self.settings = settings


# -- queues for the C floor ----------------------------------------------------


@contextmanager
def _c_queues(ctx, kind, spec, count=1):
    """Make *count* queues for the C floor; yield what names them."""
    made = []
    try:
        for _ in range(count):
            if kind == "posix":
                name = ctx.registry.posix_name()
                q = posixmq.Queue(name, spec.depth, spec.msgsize, "raw", exclusive=True)
                q.close()
                made.append(name)
            else:
                q = sysvmq.Queue(None, None, "raw")
                ctx.registry.add_sysv(q.id)
                q.detach()
                made.append(q.id)
        yield made
    finally:
        for queue_id in made:
            if kind == "posix":
                ctx.registry.unlink_posix(queue_id)
            else:
                ctx.registry.remove_sysv(queue_id)


# -- one sample of each test ---------------------------------------------------


def _sample_pair(ctx, case, n):
    contender = case.contender
    warm = max(50, n // 20)
    if contender.family == "ref":
        _harness.time_pickle(case.payload, 1, warm)
        return {"ns": _harness.time_pickle(case.payload, 1, n)}
    if contender.family == "c":
        with _c_queues(ctx, contender.kind, case.spec) as (queue_id,):
            out = ctx.floor.run("pair", contender.kind, queue_id, case.size, n, warm)
        return {"ns": out["ns_per_op"]}

    channel = contender.channel(case.spec, ctx.registry)
    try:
        if contender.threads:
            (ns,) = _harness.run_roles(
                [_harness.pairs(channel, case.payload, n, warm)],
                [None],
                ctx.registry,
                _timeout(ctx.settings["pair_s"]),
                case.title,
            )
            return {"ns": ns}
        end = channel.endpoint("both")
        try:
            _harness.time_pairs(end.send, end.recv, case.payload, warm)
            gc.collect()
            ns = _harness.time_pairs(end.send, end.recv, case.payload, n)
        finally:
            end.finish()
    finally:
        channel.close()
    return {"ns": ns}


def _ipcq_queue(ctx, kind, spec):
    if kind == "posix":
        name = ctx.registry.posix_name()
        q = posixmq.Queue(
            name, spec.depth, spec.msgsize, spec.serializer, exclusive=True
        )
        return q, lambda: (q.close(), ctx.registry.unlink_posix(name))
    q = sysvmq.Queue(None, None, spec.serializer)
    ctx.registry.add_sysv(q.id)
    msqid = q.id
    return q, lambda: (q.detach(), ctx.registry.remove_sysv(msqid))


def _sample_batch(ctx, case, n):
    contender = case.contender
    warm = max(10, n // 20)
    if contender.family == "c":
        with _c_queues(ctx, contender.kind, case.spec) as (queue_id,):
            out = ctx.floor.run(
                "batch", contender.kind, queue_id, case.size, case.spec.depth, n, warm
            )
        return {"ns": out["ns_per_op"]}

    q, close = _ipcq_queue(ctx, contender.kind, case.spec)
    try:
        # As many messages as the POSIX queue holds, on both kinds.
        batch = [case.payload] * case.spec.depth
        _harness.time_batches(q.put_many, q.get_many, batch, warm)
        gc.collect()
        ns = _harness.time_batches(q.put_many, q.get_many, batch, n)
    finally:
        close()
    return {"ns": ns}


def _sample_get_into(ctx, case, n):
    contender = case.contender
    warm = max(50, n // 20)
    if contender.family == "c":
        return _sample_pair(ctx, case, n)

    q, close = _ipcq_queue(ctx, contender.kind, case.spec)
    try:
        # Large enough for a whole POSIX mq_msgsize and any System V
        # message.
        buffer = bytearray(max(case.spec.msgsize, 8192))
        _harness.time_get_into(q.put, q.get_into, case.payload, buffer, warm)
        gc.collect()
        ns = _harness.time_get_into(q.put, q.get_into, case.payload, buffer, n)
    finally:
        close()
    return {"ns": ns}


def _cpu_args(case):
    return ["-1" if cpu is None else cpu for cpu in case.cpus]


def _timeout(seconds):
    # Generous: a sample that takes this long is stuck, not slow.
    return 60 + 20 * seconds


def _stream_figures(n, t0s, t1s, cpus):
    wall = max(t1s) - min(t0s)
    return {
        "rate": n / wall * 1e9,
        "wall_ns": wall / n,
        "cpu_ns": sum(cpus) / n,
        "cpu_ns_producer": cpus[0] / n,
        "cpu_ns_consumer": cpus[1] / n,
    }


def _sample_stream(ctx, case, n):
    contender = case.contender
    warm = ctx.settings["stream_warm"]
    timeout = _timeout(ctx.settings["stream_s"])
    if contender.family == "c":
        with _c_queues(ctx, contender.kind, case.spec) as (queue_id,):
            out = ctx.floor.run(
                "stream",
                contender.kind,
                queue_id,
                case.size,
                n,
                warm,
                *_cpu_args(case),
                timeout=timeout,
            )
        return _stream_figures(n, out["t0"], out["t1"], out["cpu_ns"])

    channel = contender.channel(case.spec, ctx.registry)
    try:
        gc.collect()
        results = _harness.run_roles(
            [
                _harness.producer(channel, case.payload, n, warm),
                _harness.consumer(channel, n, warm),
            ],
            case.cpus,
            ctx.registry,
            timeout,
            case.title,
        )
    finally:
        channel.close()
    t0s, t1s, cpus = zip(*results)
    return _stream_figures(n, t0s, t1s, cpus)


def _sample_pingpong(ctx, case, n):
    contender = case.contender
    warm = ctx.settings["pingpong_warm"]
    timeout = _timeout(ctx.settings["pingpong_s"])
    if contender.family == "c":
        with _c_queues(ctx, contender.kind, case.spec, 2) as (ping, pong):
            out = ctx.floor.run(
                "pingpong",
                contender.kind,
                ping,
                pong,
                case.size,
                n,
                warm,
                *_cpu_args(case),
                timeout=timeout,
            )
        latencies = array("q", out["latencies_ns"])
    else:
        link = contender.link(case.spec, ctx.registry)
        try:
            gc.collect()
            raw, _ = _harness.run_roles(
                [
                    _harness.client(link, case.payload, n, warm),
                    _harness.server(link, case.payload, n, warm),
                ],
                case.cpus,
                ctx.registry,
                timeout,
                case.title,
            )
        finally:
            link.close()
        latencies = array("q", raw)
    return {"latencies": latencies, "ns": statistics.median(latencies)}


SAMPLERS = {
    "pair": _sample_pair,
    "batch": _sample_batch,
    "get_into": _sample_get_into,
    "stream": _sample_stream,
    "pingpong": _sample_pingpong,
}


def _calibrate(ctx, case):
    """Pick the sample size so that one sample lasts about its target."""
    settings = ctx.settings
    if case.test == "stream":
        target, probe, key = settings["stream_s"], 2000, "wall_ns"
        low, high = 1000, 2_000_000
    elif case.test == "pingpong":
        target, probe, key = settings["pingpong_s"], 100, "ns"
        low, high = 100, 100_000
    else:
        target, probe, key = settings["pair_s"], 200, "ns"
        low, high = 50, 1_000_000
    cost = SAMPLERS[case.test](ctx, case, probe)[key]
    if case.test == "batch":
        cost *= case.spec.depth
    case.n = int(min(high, max(low, target * 1e9 / max(cost, 1.0))))


# -- the plan ------------------------------------------------------------------


def _limits():
    return {
        "posix_msg_max": read_limit("/proc/sys/fs/mqueue/msg_max"),
        "posix_msgsize_max": read_limit("/proc/sys/fs/mqueue/msgsize_max"),
        "sysv_msgmax": read_limit("/proc/sys/kernel/msgmax"),
        "sysv_msgmnb": read_limit("/proc/sys/kernel/msgmnb"),
    }


def _fits(contender, size, limits):
    if contender.kind == "posix" and limits["posix_msgsize_max"]:
        return size <= limits["posix_msgsize_max"]
    if contender.kind == "sysv" and limits["sysv_msgmax"]:
        return size <= limits["sysv_msgmax"]
    return True


def _plan(contenders, limits, notes):
    # A POSIX queue holds what its test needs: one message for a put then
    # a get, a batch for the batch calls, as many as allowed for the two
    # processes.  Each queue is charged to RLIMIT_MSGQUEUE, which every
    # process of the user shares.
    depth = min(DEPTH, limits["posix_msg_max"] or DEPTH)
    cases = []

    for size in RAW_SIZES:
        variant = f"raw {_size_label(size)}"
        spec = Spec("raw", size, 1)
        for c in contenders:
            if c.family == "ref":
                continue
            if not _fits(c, size, limits):
                notes.append(
                    f"{c.label}: {variant} skipped, above the "
                    "system's message size limit"
                )
                continue
            cases.append(Case("pair", variant, c, "raw", b"Z" * size, spec))

    for name, obj in OBJECTS.items():
        for c in contenders:
            if c.family == "ref":
                spec = Spec("pickle", OBJECT_MSGSIZE, 1)
                cases.append(Case("pair", name, c, "pickle", obj, spec))
                continue
            if c.family == "c":
                # The C floor moves as many bytes as a protocol-1 pickle.
                data = b"Z" * len(pickle.dumps(obj, 1))
                spec = Spec("raw", OBJECT_MSGSIZE, 1)
                cases.append(Case("pair", name, c, "raw", data, spec))
                continue
            serializers = IPCQ_SERIALIZERS if c.family == "ipcq" else ("pickle",)
            for ser in serializers:
                if ser in c.serializers:
                    spec = Spec(ser, OBJECT_MSGSIZE, 1)
                    cases.append(Case("pair", name, c, ser, obj, spec))

    raw64 = Spec("raw", 64, depth)
    msg64 = b"Z" * 64
    batch64 = Spec("raw", 64, min(BATCH, depth))
    ipcq = [c for c in contenders if c.family == "ipcq"]
    floors = [c for c in contenders if c.family == "c"]
    has = {
        "put_many": all(
            hasattr(posixmq.Queue, m) and hasattr(sysvmq.Queue, m)
            for m in ("put_many", "get_many")
        ),
        "get_into": all(hasattr(q, "get_into") for q in (posixmq.Queue, sysvmq.Queue)),
    }
    if has["put_many"]:
        variant = f"put_many/get_many x{batch64.depth}, raw 64 B"
        for c in floors + ipcq:
            cases.append(Case("batch", variant, c, "raw", msg64, batch64))
    else:
        notes.append("put_many/get_many: not in this build of ipcq; skipped")
    if has["get_into"]:
        for c in floors + ipcq:
            cases.append(
                Case("get_into", "raw 64 B", c, "raw", msg64, Spec("raw", 64, 1))
            )
    else:
        notes.append("get_into: not in this build of ipcq; skipped")

    # The two processes are pinned to CPUs, the same ones for every
    # contender: where the scheduler puts them changes a round trip on
    # this kind of machine from a few microseconds (one CPU, a context
    # switch) to tens (two CPUs, a cross-CPU wake-up).
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        placements = {"one CPU": (cpus[0], cpus[0]), "two CPUs": (cpus[0], cpus[1])}
    else:
        placements = {"one CPU": (cpus[0], cpus[0])}
        notes.append("only one CPU available: the two-CPU runs skipped")
    stream_place = "two CPUs" if len(cpus) >= 2 else "one CPU"
    contenders = [c for c in contenders if c.family != "ref"]
    for c in contenders:
        cases.append(
            Case(
                "stream",
                f"raw 64 B, {stream_place}",
                c,
                "raw",
                msg64,
                raw64,
                placements[stream_place],
            )
        )
    for place, pair in placements.items():
        for c in contenders:
            cases.append(
                Case("pingpong", f"raw 64 B, {place}", c, "raw", msg64, raw64, pair)
            )
    return cases


# -- memory ----------------------------------------------------------------------


def _memory_check(ctx, kind, messages, tick):
    """RSS before, during and after *messages* put + get pairs."""
    spec = Spec("pickle", OBJECT_MSGSIZE, 1)
    item = OBJECTS["small dict"]
    q, close = _ipcq_queue(ctx, kind, spec)
    try:
        put, get = q.put, q.get
        _harness.time_pairs(put, get, item, 20_000)
        gc.collect()
        points = [_harness.rss_bytes()]
        steps = 10
        for i in range(steps):
            chunk = messages // steps + (1 if i < messages % steps else 0)
            _harness.time_pairs(put, get, item, max(chunk, 1))
            points.append(_harness.rss_bytes())
            tick(f"memory {kind}")
    finally:
        close()
    return {
        "kind": kind,
        "messages": messages,
        "item": "small dict, pickle",
        "rss_kib": [p // 1024 for p in points],
        "growth_kib": (points[-1] - points[0]) // 1024,
    }


# -- machine -------------------------------------------------------------------


def _machine():
    """What the figures were measured on."""
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "compiler": compiler_version(),
        "limits": _limits(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


# -- running -------------------------------------------------------------------


@contextmanager
def _sigterm_as_exit():
    """Turn SIGTERM into an exception, so that cleanup runs (main thread)."""
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Terminated(BaseException):
    """SIGTERM arrived; raised where the run is, so that cleanup runs."""


def _on_sigterm(signum, frame):
    raise _Terminated


def _select(contenders, only, notes):
    chosen = []
    for c in contenders:
        if (
            only
            and c.family not in ("c", "binding", "ref")
            and not (c.key in only or c.family in only)
        ):
            continue
        reason = c.missing()
        if reason:
            notes.append(f"{reason}; skipped")
            continue
        chosen.append(c)
    return chosen


def _prepare(contenders, registry, notes, out):
    """The contenders that could make ready what they need (a build)."""
    ready = []
    for c in contenders:
        try:
            c.prepare(registry)
        except BenchError as exc:
            note = f"{c.label}: {exc}; skipped"
            notes.append(note)
            if out is not None:
                print(f"note: {note}", file=out)
            continue
        ready.append(c)
    return ready


def run(
    quick=False,
    *,
    json_path=None,
    png_path=None,
    rst_path=None,
    only=None,
    tests=None,
    rounds=None,
    memory_messages=None,
    progress=None,
    out=sys.stdout,
    seed=0,
):
    """Run the benchmarks and return the results as a dict.

    *quick* runs short samples and few rounds: a first look in a few
    seconds, too noisy to quote.  *json_path*, *png_path* and *rst_path*,
    when given, receive the results, a chart (which needs matplotlib) and
    the tables as reStructuredText.  *only*
    limits the Python contenders to these keys or families (for example
    ``["ipcq", "posix_ipc"]``); the C floor and the pickle reference
    always run.  *tests* limits the run to some of the tests in
    :data:`TESTS` (for example ``["pair", "batch"]``).  *rounds* and
    *memory_messages* override the mode's settings.  ``progress(done,
    total, label)`` is called after every step.  The table of results is
    printed to *out* unless it is None.  Raises BenchError when a
    benchmark cannot run.
    """
    mode = "quick" if quick else "full"
    settings = dict(SETTINGS[mode])
    if rounds is not None:
        if rounds < 1:
            raise BenchError(f"rounds must be at least 1, not {rounds}")
        settings["rounds"] = rounds
    if memory_messages is not None:
        if memory_messages < 0:
            raise BenchError("the memory check needs a count >= 0")
        settings["memory_messages"] = memory_messages
    if png_path is not None:
        _report.check_png_support()
    unknown = sorted(set(tests or ()) - set(TESTS))
    if unknown:
        raise BenchError(
            f"no such test: {', '.join(unknown)} (the tests: {', '.join(TESTS)})"
        )

    notes = []
    contenders = _select(all_contenders(), set(only or ()), notes)
    if out is not None:
        for note in notes:
            print(f"note: {note}", file=out)
        out.flush()

    registry = Registry()
    started = time.monotonic()
    with _sigterm_as_exit():
        try:
            ctx = _Context(registry, Floor(registry), settings)
            contenders = _prepare(contenders, registry, notes, out)
            limits = _limits()
            cases = _plan(contenders, limits, notes)
            if tests:
                cases = [case for case in cases if case.test in tests]
            memory_kinds = ["posix", "sysv"] if settings["memory_messages"] else []
            # Each round samples every case once, and the tests in one
            # process as many more times as "repeats" says, all shuffled.
            per_round = list(cases) + [
                case
                for case in cases
                if case.test in IN_PROCESS
                for _ in range(settings["repeats"] - 1)
            ]
            total = len(cases) + len(per_round) * settings["rounds"]
            total += 10 * len(memory_kinds)
            done = 0

            def tick(label):
                nonlocal done
                done += 1
                if progress is not None:
                    progress(done, total, label)

            for case in cases:
                _calibrate(ctx, case)
                tick(f"calibrating {case.title}")
            for r in range(settings["rounds"]):
                order = list(per_round)
                random.Random(seed * 1000 + r).shuffle(order)
                for case in order:
                    case.samples.append(SAMPLERS[case.test](ctx, case, case.n))
                    tick(case.title)
            memory = [
                _memory_check(ctx, kind, settings["memory_messages"], tick)
                for kind in memory_kinds
            ]
        finally:
            registry.cleanup()

    data = {
        "format": 1,
        "mode": mode,
        "machine": _machine(),
        "versions": {c.dist: c.version() for c in contenders if c.dist is not None},
        "settings": settings,
        "elapsed_s": round(time.monotonic() - started, 1),
        "notes": notes,
        "objects": list(OBJECTS),
        "contenders": [
            {
                "key": c.key,
                "label": c.label,
                "kind": c.kind,
                "family": c.family,
                "note": c.note,
            }
            for c in contenders
        ],
        "results": _report.summarize(cases),
        "memory": memory,
    }
    data["targets"] = _report.targets(data)
    if json_path is not None:
        _report.write_json(data, json_path)
    if png_path is not None:
        _report.draw_png(data, png_path)
    if rst_path is not None:
        _report.write_text(_report.format_rst(data), rst_path)
    if out is not None:
        out.write(_report.format_report(data))
        out.flush()
    return data


class _Bar:
    """A progress bar on a terminal (nothing elsewhere), or the caller's."""

    def __init__(self, stream, callback=None):
        self.stream = stream
        self.callback = callback
        self.active = stream is not None and stream.isatty()

    def __call__(self, done, total, label):
        if self.callback is not None:
            self.callback(done, total, label)
        if not self.active:
            return
        width = 30
        filled = width * done // max(total, 1)
        line = (
            f"\r[{'#' * filled}{'.' * (width - filled)}] "
            f"{100 * done // max(total, 1):3d}% {label}"
        )
        self.stream.write(line[:100].ljust(100))
        self.stream.flush()

    def close(self):
        if self.active:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


def _parser():
    parser = argparse.ArgumentParser(
        prog="ipcq bench",
        description="Benchmark ipcq against a C floor and its peers.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short samples and 2 rounds: a first look in a few seconds",
    )
    parser.add_argument(
        "--json", metavar="PATH", help="write the results as JSON to PATH"
    )
    parser.add_argument(
        "--png", metavar="PATH", help="draw a chart to PATH (needs matplotlib)"
    )
    parser.add_argument(
        "--rst",
        metavar="PATH",
        help="write the tables to PATH as reStructuredText (for the docs)",
    )
    parser.add_argument(
        "--only",
        metavar="KEYS",
        help="comma-separated contenders or families to run besides the "
        "C floor (ipcq, ipcq-posix, ipcq-sysv, posix_ipc, sysv_ipc, "
        "ipcqueue-posix, ipcqueue-sysv, faster-fifo, mp.Queue, pyzmq)",
    )
    parser.add_argument(
        "--tests",
        metavar="NAMES",
        help=f"comma-separated tests to run ({', '.join(TESTS)}); default: all",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="rounds of samples (default: 11, quick: 2)",
    )
    parser.add_argument(
        "--memory",
        type=int,
        metavar="N",
        dest="memory_messages",
        help="messages in the memory check (default: 10,000,000, quick: "
        "50,000; 0 skips it)",
    )
    return parser


def main(argv=None, progress=None):
    """Command-line entry point; returns the exit status.

    *argv* defaults to ``sys.argv[1:]``.  *progress* is called as
    ``progress(done, total, label)``; without it a bar is drawn on
    standard error when that is a terminal.
    """
    args = _parser().parse_args(argv)
    bar = _Bar(sys.stderr if progress is None else None, progress)
    try:
        run(
            args.quick,
            json_path=args.json,
            png_path=args.png,
            rst_path=args.rst,
            only=args.only.split(",") if args.only else None,
            tests=args.tests.split(",") if args.tests else None,
            rounds=args.rounds,
            memory_messages=args.memory_messages,
            progress=bar,
        )
    except BenchError as exc:
        bar.close()
        print(f"ipcq bench: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        bar.close()
        print(f"ipcq bench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bar.close()
        print(
            "ipcq bench: interrupted; every queue it made was removed", file=sys.stderr
        )
        return 130
    except _Terminated:
        bar.close()
        print(
            "ipcq bench: terminated; every queue it made was removed", file=sys.stderr
        )
        return 128 + signal.SIGTERM
    bar.close()
    return 0
