# cython: language_level=3
"""Exceptions, serializer codec and timing helpers shared by both queues."""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyObject_GetBuffer
from cpython.exc cimport PyErr_CheckSignals
from cpython.number cimport PyNumber_Index
from cpython.pystate cimport (
    PyInterpreterState, PyInterpreterState_ThreadHead, PyThreadState,
    PyThreadState_Next,
)
from libc.errno cimport (
    E2BIG, EACCES, EBADF, EEXIST, EIDRM, EINTR, EINVAL, EMSGSIZE, ENOENT,
    ENOMEM, EPERM, ETIMEDOUT,
)
from libc.math cimport isnan
from posix.time cimport (
    CLOCK_MONOTONIC, CLOCK_REALTIME, clock_gettime, timespec,
)

from ipcq._pickle cimport fast_dumps, fast_loads

import os


ERROR = -1


class QueueError(OSError):
    """An error of a message queue operation.

    ``QueueError(errno, msg=None)`` is an :class:`OSError` whose ``errno``
    is the system's errno value (or ``QueueError.ERROR``, -1, for a failure
    that has none) and whose ``msg`` (also ``strerror``) describes what
    failed.  The class constants are those errno values, so both
    ``e.errno == QueueError.DOES_NOT_EXIST`` and ``except
    FileNotFoundError`` work: building a ``QueueError`` returns the
    subclass that also derives from the matching built-in exception.
    """

    ERROR = ERROR
    INVALID_VALUE = EINVAL
    NO_PERMISSIONS = EACCES
    NO_SYSTEM_RESOURCES = ENOMEM
    INVALID_DESCRIPTOR = EBADF
    INTERRUPTED = EINTR
    TOO_BIG_MESSAGE = EMSGSIZE
    TIMEOUT = ETIMEDOUT
    DOES_NOT_EXIST = ENOENT

    def __new__(cls, errno=ERROR, msg=None):
        if cls is QueueError:
            cls = _SUBCLASS_BY_ERRNO.get(errno, QueueError)
        return OSError.__new__(cls, errno, msg)

    def __init__(self, errno=ERROR, msg=None):
        if msg is None:
            msg = os.strerror(errno) if errno > 0 else "queue error"
        OSError.__init__(self, errno, msg)
        self.msg = msg

    def __reduce__(self):
        return QueueError, (self.errno, self.msg)


class QueueNotFoundError(QueueError, FileNotFoundError):
    """The queue does not exist, or was removed (ENOENT, EIDRM)."""


class QueueExistsError(QueueError, FileExistsError):
    """Exclusive creation of a queue that already exists (EEXIST)."""


class QueuePermissionError(QueueError, PermissionError):
    """The caller lacks the permission it asked for (EACCES, EPERM)."""


class QueueInterruptedError(QueueError, InterruptedError):
    """A signal interrupted a blocked call (EINTR)."""


class QueueValueError(QueueError, ValueError):
    """An invalid argument or a message too big (EINVAL, EMSGSIZE)."""


class QueueTimeoutError(QueueError, TimeoutError):
    """A timed operation ran out of time (ETIMEDOUT)."""


_SUBCLASS_BY_ERRNO = {
    ENOENT: QueueNotFoundError,
    EIDRM: QueueNotFoundError,
    EEXIST: QueueExistsError,
    EACCES: QueuePermissionError,
    EPERM: QueuePermissionError,
    EINTR: QueueInterruptedError,
    EINVAL: QueueValueError,
    EMSGSIZE: QueueValueError,
    E2BIG: QueueValueError,
    ETIMEDOUT: QueueTimeoutError,
}


class DecodeError(ValueError):
    """A received message that the queue's serializer could not decode.

    The message has left the queue; it is not lost: ``payload`` holds its
    bytes as received, and ``priority`` (POSIX) or ``msg_type`` (System V)
    what it was sent with (the other one is None).  The serializer's own
    exception is the ``__cause__``.
    """

    def __init__(self, message, payload, priority=None, msg_type=None):
        ValueError.__init__(self, message)
        self.payload = payload
        self.priority = priority
        self.msg_type = msg_type


class PickleSecurityWarning(UserWarning):
    """The pickle serializer is used on a queue other users may write to."""


def read_limit(path):
    """Return the integer in the /proc file *path*, or None if unreadable."""
    try:
        with open(path, "rb") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


cdef class Codec:
    """The serializer of one queue, resolved once when the queue is built.

    ``kind`` tells the hot path whether it may skip the serializer (raw
    buffers) or call pickle with a per-message protocol.
    """

    def __init__(self, serializer, int kind, int protocol=-1,
                 bint unpickles=False):
        self.serializer = serializer
        self.kind = kind
        # Whether loads() unpickles, whichever path encodes: a queue that
        # others can write to then gets a PickleSecurityWarning.
        self.unpickles = unpickles or kind == CODEC_PICKLE
        self.protocol = protocol
        self.dumps = serializer.dumps
        self.loads = serializer.loads

    cdef object encode(self, object item, object pickle_protocol):
        if self.kind == CODEC_PICKLE:
            if pickle_protocol is None:
                return fast_dumps(item, self.protocol)
            return fast_dumps(item, pickle_protocol)

        if pickle_protocol is not None:
            raise ValueError(
                "pickle_protocol applies only to the pickle serializer, "
                f"not to {self.serializer!r}"
            )
        if self.kind == CODEC_RAW:
            return item
        return self.dumps(item)

    cdef int get_buffer(self, object data, Py_buffer *view) except -1:
        # PyBUF_SIMPLE asks for one contiguous run of bytes: what the
        # system call takes, with no copy.
        try:
            PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
        except (TypeError, BufferError) as exc:
            if self.kind == CODEC_RAW:
                raise TypeError(
                    "the raw serializer sends bytes-like objects only "
                    "(bytes, bytearray, memoryview, contiguous arrays), "
                    f"not {type(data).__name__}"
                ) from exc
            raise TypeError(
                f"{self.serializer!r}.dumps() returned "
                f"{type(data).__name__}, not a contiguous bytes-like object"
            ) from exc
        return 0

    cdef object decode(self, bytes data, long tag, bint is_type):
        if self.kind == CODEC_RAW:
            return data

        try:
            if self.kind == CODEC_PICKLE:
                return fast_loads(data)
            return self.loads(data)
        except Exception as exc:
            raise DecodeError(
                f"cannot decode a {len(data)}-byte message with "
                f"{self.serializer!r}: {exc!r}",
                data,
                None if is_type else tag,
                tag if is_type else None,
            ) from exc


cdef long to_long_slow(object value, str what) except? -1:
    """Convert an integer argument that is not an int, refusing floats and
    strings (see to_long).

    Cython's own conversion would truncate 1.5 to 1; a priority or a
    message type given as a float is a mistake worth reporting.
    """
    if isinstance(value, float) or not hasattr(type(value), "__index__"):
        raise TypeError(
            f"{what} must be an int, not {type(value).__name__}"
        )
    return PyNumber_Index(value)


cdef int get_writable_buffer(object buffer, Py_buffer *view) except -1:
    """Request one writable, contiguous run of bytes, as get_into() needs."""
    try:
        PyObject_GetBuffer(buffer, view, PyBUF_WRITABLE)
    except (TypeError, BufferError) as exc:
        raise TypeError(
            "get_into() needs a writable contiguous buffer (bytearray, "
            f"memoryview, array), not {type(buffer).__name__}"
        ) from exc
    return 0


cdef double monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef double deadline_for(object timeout) except? -2.0:
    """Turn a timeout in seconds into a CLOCK_MONOTONIC deadline.

    Returns -1.0 for no deadline (None or infinity).  A monotonic deadline
    is immune to changes of the wall clock, unlike the CLOCK_REALTIME
    deadlines that mq_timedsend(3) and mq_timedreceive(3) take.
    """
    cdef double seconds

    if timeout is None:
        return -1.0
    if isinstance(timeout, (str, bytes)):
        raise TypeError(
            f"timeout must be a number or None, not {type(timeout).__name__}"
        )

    seconds = timeout
    if isnan(seconds) or seconds < 0:
        raise QueueError(
            EINVAL, f"timeout must be a non-negative number, not {timeout!r}"
        )
    if seconds == float("inf"):
        return -1.0
    return monotonic() + seconds


cdef void fill_timespec(timespec *ts, double seconds) noexcept nogil:
    if seconds < 0:
        seconds = 0
    ts.tv_sec = <long>seconds
    ts.tv_nsec = <long>((seconds - ts.tv_sec) * 1e9)
    if ts.tv_nsec > 999999999:
        ts.tv_nsec = 999999999


cdef extern from "<pthread.h>" nogil:
    int pthread_atfork(void (*prepare)() noexcept nogil,
                       void (*parent)() noexcept nogil,
                       void (*child)() noexcept nogil)


# How many times this process is a child of fork(): a handle that counted
# waiting threads before a fork knows from it that the child has none of
# them, without a getpid() system call per wait.
cdef unsigned long forks_seen = 0


cdef void count_fork() noexcept nogil:
    global forks_seen
    forks_seen += 1


pthread_atfork(NULL, NULL, count_fork)


cdef unsigned long fork_generation() noexcept nogil:
    return forks_seen


cdef extern from "Python.h":
    PyInterpreterState *PyInterpreterState_Get()


cdef bint alone_in_interpreter() noexcept:
    """True if no other thread has a Python thread state, with the GIL held.

    Then no other thread can call close() on a handle while this one
    waits in the kernel, and the wait needs no slices to notice it.  A
    thread that C code starts later and that enters Python only then
    (PyGILState_Ensure) is not seen; if it closes the handle, the wait
    goes on until a message comes, as in a C program.
    """
    cdef PyThreadState *ts = PyInterpreterState_ThreadHead(
        PyInterpreterState_Get()
    )
    return ts != NULL and PyThreadState_Next(ts) == NULL


cdef void slice_deadline(timespec *ts, long nanoseconds) noexcept nogil:
    """An absolute CLOCK_REALTIME deadline *nanoseconds* from now."""
    clock_gettime(CLOCK_REALTIME, ts)
    ts.tv_nsec += nanoseconds
    while ts.tv_nsec >= 1000000000:
        ts.tv_nsec -= 1000000000
        ts.tv_sec += 1


cdef int raise_errno(int err, str message) except -1:
    raise QueueError(err, message)


cdef int after_eintr(bint retry) except -1:
    """Handle EINTR from a blocked call, with the GIL held.

    The Python-level signal handlers run first; an exception one of them
    raises (KeyboardInterrupt, say) propagates at once.  Otherwise the
    call is resumed when *retry* is set, as PEP 475 does for the standard
    library, or fails with INTERRUPTED as ipcqueue documents.
    """
    if PyErr_CheckSignals() < 0:
        return -1
    if not retry:
        raise QueueError(EINTR, "interrupted by a signal while waiting")
    return 0


# The codec kinds, for ipcq.serializers.resolve().
KIND_RAW = CODEC_RAW
KIND_PICKLE = CODEC_PICKLE
KIND_OTHER = CODEC_OTHER
