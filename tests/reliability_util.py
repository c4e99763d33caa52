"""Helpers shared by the reliability tests: children, timers, CPU time.

Forked children never return into pytest: they leave with ``os._exit``,
so no fixture, atexit hook or finalizer of the parent runs twice.  A
child's result (or the exception it raised) comes back pickled through a
pipe; ``QueueError`` and the built-in exceptions pickle as they are.
"""

import contextlib
import ctypes
import errno
import os
import pickle
import resource
import select
import signal
import statistics
import time
import traceback

import pytest

CLONE_NEWIPC = 0x08000000

# Children started and not yet waited for, so that a failing test does not
# leave one blocked on a queue forever.
_running = set()


class ChildFailed(AssertionError):
    """A forked child died, hung or could not send its result back."""


def _send(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def start_child(func, *args):
    """Fork; the child runs ``func(*args)`` and pickles the outcome to a pipe.

    Returns ``(pid, read_fd)`` for :func:`collect`.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            os.close(r)
            try:
                outcome = ("ok", func(*args))
            except BaseException as exc:
                outcome = ("raised", exc)
            try:
                data = pickle.dumps(outcome)
            except Exception:
                data = pickle.dumps(("raised", RuntimeError(repr(outcome))))
            _send(w, data)
        except BaseException:
            traceback.print_exc()
            status = 70
        finally:
            os._exit(status)
    os.close(w)
    _running.add(pid)
    return pid, r


def kill_child(pid, r=None):
    """SIGKILL a child of :func:`start_child` and reap it."""
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    _running.discard(pid)
    if r is not None:
        os.close(r)


@pytest.fixture(autouse=True)
def reap_children():
    """Kill the children a test started and did not wait for."""
    yield
    while _running:
        pid = _running.pop()
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def collect(pid, r, timeout=10.0):
    """Wait for a child of :func:`start_child`; return ``(kind, value)``.

    *kind* is ``"ok"`` (value is the return value) or ``"raised"`` (value
    is the exception).  A child still running after *timeout* seconds is
    killed and ChildFailed raised.
    """
    chunks = []
    deadline = time.monotonic() + timeout
    finished = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildFailed(f"child {pid} still running after {timeout} s")
            ready, _, _ = select.select([r], [], [], left)
            if not ready:
                continue
            chunk = os.read(r, 65536)
            if not chunk:
                finished = True
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        if not finished:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        _running.discard(pid)
    if not chunks:
        if os.WIFSIGNALED(status):
            how = f"was killed by signal {os.WTERMSIG(status)}"
        else:
            how = f"exited with status {os.WEXITSTATUS(status)}"
        raise ChildFailed(f"child {pid} {how} and sent nothing back")
    return pickle.loads(b"".join(chunks))


def run_in_child(func, *args, timeout=10.0):
    """Run ``func(*args)`` in a forked child; return its result or re-raise."""
    kind, value = collect(*start_child(func, *args), timeout=timeout)
    if kind == "raised":
        raise value
    return value


def outcome_in_child(func, *args, timeout=10.0):
    """Like :func:`run_in_child`, but return the exception instead of raising."""
    return collect(*start_child(func, *args), timeout=timeout)[1]


def unshare_ipc_namespace():
    """Move the calling (child) process into a new IPC namespace.

    A new namespace has its own queues and its own fs.mqueue.* and
    kernel.msg* settings, so a child may lower them to reach a system
    limit without touching any other process.  Returns False if the
    kernel refuses (no CAP_SYS_ADMIN).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWIPC) == 0:
        return True
    if ctypes.get_errno() in (errno.EPERM, errno.EINVAL, errno.ENOSYS):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def can_unshare_ipc():
    """True if a child may enter a new IPC namespace on this machine."""
    try:
        return run_in_child(unshare_ipc_namespace, timeout=5)
    except Exception:
        return False


def write_sysctl(path, value):
    """Write one /proc/sys setting (in a child that owns its namespace)."""
    with open(path, "w") as f:
        f.write(f"{value}\n")


def cpu_seconds():
    """User plus system CPU time of this process (all threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def interval_timer(handler, interval, first=None):
    """Run *handler* on SIGALRM every *interval* s (after *first*) inside."""
    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, first or interval, interval)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def alarm_after(seconds, handler):
    """Run *handler* once on SIGALRM, *seconds* after entering."""
    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds, 0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, previous)


def median(values):
    return statistics.median(values)
