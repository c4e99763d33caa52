"""Timing loops, the two-process harness and the cleanup registry.

Every timed loop is the plainest one Python allows: bound methods in
locals, ``itertools.repeat`` as the counter, no call in between, so the
figures show what the queue costs and not what the benchmark adds.
"""

import gc
import itertools
import os
import pickle
import resource
import select
import shutil
import signal
import tempfile
import time
import uuid
from array import array

from ipcq import posixmq, sysvmq

_repeat = itertools.repeat
_perf_ns = time.perf_counter_ns


class BenchError(Exception):
    """A benchmark could not run; the message is one line for the user."""


class Registry:
    """Every queue, file and process a run makes, so that all go away.

    ``cleanup()`` removes what is left, whatever stopped the run: an
    error, Ctrl-C or SIGTERM.  Queues are forgotten as soon as they are
    removed, so that a System V id the kernel hands out again later is
    never removed by mistake.
    """

    def __init__(self):
        self._tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._count = itertools.count()
        self._posix = set()
        self._sysv = set()
        self._pids = set()
        self._tmpdir = None

    def posix_name(self):
        """A new POSIX queue name, to be unlinked at the end."""
        name = f"/ipcq-bench-{self._tag}-{next(self._count)}"
        self._posix.add(name)
        return name

    def unlink_posix(self, name):
        """Unlink the POSIX queue *name* now (it may be gone already)."""
        try:
            posixmq.unlink(name)
        except FileNotFoundError:
            pass
        self._posix.discard(name)

    def add_sysv(self, msqid):
        """Remember the System V queue *msqid* for removal."""
        self._sysv.add(msqid)

    def remove_sysv(self, msqid):
        """Remove the System V queue *msqid* now."""
        try:
            sysvmq.remove(msqid)
        except FileNotFoundError:
            pass
        self._sysv.discard(msqid)

    def path(self, stem):
        """A path in this run's private temporary directory."""
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="ipcq-bench-")
        return os.path.join(self._tmpdir, f"{stem}-{next(self._count)}")

    def add_pid(self, pid):
        """Remember a child process to kill if the run stops early."""
        self._pids.add(pid)

    def reaped(self, pid):
        """Forget a child process that was waited for."""
        self._pids.discard(pid)

    def cleanup(self):
        """Kill the children still running and remove every queue."""
        for pid in list(self._pids):
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self._pids.discard(pid)
        for name in list(self._posix):
            self.unlink_posix(name)
        for msqid in list(self._sysv):
            self.remove_sysv(msqid)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None


# -- loops in one process ----------------------------------------------------


def time_pairs(send, recv, msg, n):
    """Nanoseconds per ``send(msg)`` then ``recv()``, over *n* pairs."""
    loop = _repeat(None, n)
    start = _perf_ns()
    for _ in loop:
        send(msg)
        recv()
    return (_perf_ns() - start) / n


def time_pickle(item, protocol, n):
    """Nanoseconds per ``pickle.loads(pickle.dumps(item, protocol))``."""
    dumps, loads = pickle.dumps, pickle.loads
    loop = _repeat(None, n)
    start = _perf_ns()
    for _ in loop:
        data = dumps(item, protocol)
        loads(data)
    return (_perf_ns() - start) / n


def time_get_into(put, get_into, msg, buffer, n):
    """Nanoseconds per ``put(msg)`` then ``get_into(buffer)``."""
    loop = _repeat(None, n)
    start = _perf_ns()
    for _ in loop:
        put(msg)
        get_into(buffer)
    return (_perf_ns() - start) / n


def time_batches(put_many, get_many, batch, n):
    """Nanoseconds per message of ``put_many(batch)``, ``get_many()``."""
    size = len(batch)
    loop = _repeat(None, n)
    start = _perf_ns()
    for _ in loop:
        put_many(batch)
        get_many(size)
    return (_perf_ns() - start) / (n * size)


def cpu_ns():
    """User plus system CPU time of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round((usage.ru_utime + usage.ru_stime) * 1e9)


def rss_bytes():
    """The resident set size of this process now (not its peak)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- roles for two processes -------------------------------------------------


def pairs(channel, msg, n, warm):
    """Put + get pairs through one endpoint, run in a child process."""

    def role(sync):
        end = channel.endpoint("both")
        try:
            time_pairs(end.send, end.recv, msg, warm)
            gc.collect()
            sync()
            return time_pairs(end.send, end.recv, msg, n)
        finally:
            end.finish()

    return role


def producer(channel, msg, n, warm):
    """The sending side of a stream, run in a child process."""

    def role(sync):
        end = channel.endpoint("send")
        send = end.send
        for _ in _repeat(None, warm):
            send(msg)
        sync()
        t0 = time.monotonic_ns()
        cpu0 = cpu_ns()
        for _ in _repeat(None, n):
            send(msg)
        # A sender with a background thread (multiprocessing, zmq) has
        # not finished until that thread has handed everything over.
        end.finish()
        return t0, time.monotonic_ns(), cpu_ns() - cpu0

    return role


def consumer(channel, n, warm):
    """The receiving side of a stream, run in a child process."""

    def role(sync):
        end = channel.endpoint("recv")
        recv = end.recv
        for _ in _repeat(None, warm):
            recv()
        sync()
        t0 = time.monotonic_ns()
        cpu0 = cpu_ns()
        for _ in _repeat(None, n):
            recv()
        result = t0, time.monotonic_ns(), cpu_ns() - cpu0
        end.finish()
        return result

    return role


def client(link, msg, n, warm):
    """The timing side of a ping-pong: one latency per round trip."""

    def role(sync):
        end = link.side(0)
        send, recv = end.send, end.recv
        for _ in _repeat(None, warm):
            send(msg)
            recv()
        latencies = array("q", bytes(8 * n))
        clock = _perf_ns
        sync()
        for i in range(n):
            start = clock()
            send(msg)
            recv()
            latencies[i] = clock() - start
        end.finish()
        return latencies.tobytes()

    return role


def server(link, msg, n, warm):
    """The echo side of a ping-pong: a message of the same size back."""

    def role(sync):
        end = link.side(1)
        send, recv = end.send, end.recv
        for _ in _repeat(None, warm):
            recv()
            send(msg)
        sync()
        for _ in _repeat(None, n):
            recv()
            send(msg)
        end.finish()

    return role


# -- the two-process harness -------------------------------------------------


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _child(role, cpu, ready_w, go_r, result_w, inherited):
    # Runs in the forked child and never returns: os._exit() keeps the
    # parent's cleanup (finally blocks, atexit) from running here.
    code = 1
    try:
        for fd in inherited:
            os.close(fd)
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

        def sync():
            os.write(ready_w, b"r")
            if os.read(go_r, 1) != b"g":
                raise BenchError("the benchmark driver went away")

        payload = pickle.dumps(("ok", role(sync)))
        code = 0
    except BaseException as exc:  # noqa: B036 - reported to the parent
        payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
    try:
        _write_all(result_w, payload)
    finally:
        os._exit(code)


def _outcome(data):
    if not data:
        return "error", "it died without a word"
    return pickle.loads(data)


def run_roles(roles, cpus, registry, timeout, what):
    """Run each role in its own child process; return their results.

    The child that runs ``roles[i]`` is pinned to CPU ``cpus[i]`` (None:
    left to the scheduler).  Each child warms up, says it is ready and
    waits; once all are ready they are told to go at the same moment.  A
    child that fails, or a run that outlasts *timeout* seconds, raises
    BenchError naming *what*; the other children are then killed, since
    they may be blocked on a queue that nobody will serve any more.
    """
    children = []
    parent_fds = []
    deadline = time.monotonic() + timeout
    try:
        for role, cpu in zip(roles, cpus):
            ready_r, ready_w = os.pipe()
            go_r, go_w = os.pipe()
            result_r, result_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                _child(
                    role,
                    cpu,
                    ready_w,
                    go_r,
                    result_w,
                    parent_fds + [ready_r, go_w, result_r],
                )
            registry.add_pid(pid)
            os.close(ready_w)
            os.close(go_r)
            os.close(result_w)
            parent_fds += [ready_r, go_w, result_r]
            children.append((pid, ready_r, go_w, result_r))

        # Wait until every child is ready, or one of them failed.
        waiting = {c[1]: c for c in children}
        while waiting:
            for fd in _select(waiting, deadline, what, timeout):
                child = waiting.pop(fd)
                if os.read(fd, 1) != b"r":
                    status, value = _outcome(_drain(child[3], deadline))
                    raise BenchError(f"{what} failed in a child process: {value}")
        for _, _, go_w, _ in children:
            os.write(go_w, b"g")

        # Collect every result; the first failure stops the run.
        chunks = {c[3]: [] for c in children}
        open_fds = dict(chunks)
        while open_fds:
            for fd in _select(open_fds, deadline, what, timeout):
                data = os.read(fd, 65536)
                if data:
                    chunks[fd].append(data)
                    continue
                del open_fds[fd]
                status, value = _outcome(b"".join(chunks[fd]))
                if status != "ok":
                    raise BenchError(f"{what} failed in a child process: {value}")
                chunks[fd] = value
        return [chunks[c[3]] for c in children]
    finally:
        for fd in parent_fds:
            os.close(fd)
        for pid, *_ in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            registry.reaped(pid)


def _select(fds, deadline, what, timeout):
    left = deadline - time.monotonic()
    ready = select.select(list(fds), [], [], left)[0] if left > 0 else []
    if not ready:
        raise BenchError(f"{what} did not finish within {timeout:.0f} s")
    return ready


def _drain(fd, deadline):
    """Read *fd* to EOF, giving up at the deadline."""
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if select.select([fd], [], [], left)[0]:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)
