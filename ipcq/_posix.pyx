# cython: language_level=3, binding=False
"""POSIX message queues (mq_overview(7)): the engine of ipcq.posixmq."""

cimport cython
from cpython.buffer cimport PyBuffer_Release
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport (
    PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE,
)
from cpython.exc cimport PyErr_CheckSignals
from cpython.list cimport PyList_GET_SIZE
from cpython.object cimport PyObject
from libc.errno cimport (
    EACCES, EAGAIN, EBADF, EEXIST, EINTR, EINVAL, EMFILE, EMSGSIZE,
    ENAMETOOLONG, ENFILE, ENOENT, ENOSPC, ETIMEDOUT, errno,
)
from libc.stdio cimport snprintf
from libc.stdlib cimport free, malloc
from posix.fcntl cimport (
    O_CLOEXEC, O_CREAT, O_EXCL, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, open,
)
from posix.stat cimport fchmod, fstat, struct_stat
from posix.time cimport timespec
from posix.unistd cimport close

from ipcq._common cimport (
    Codec, after_eintr, alone_in_interpreter, decode_item, encode_item,
    fill_timespec, fork_generation, get_writable_buffer, list_push,
    list_with_room, monotonic, pair_result, raise_errno, slice_deadline,
    to_long, wait_deadline,
)
from ipcq.includes.mqueue cimport (
    mq_attr, mq_close, mq_getattr, mq_open, mq_receive, mq_send,
    mq_timedreceive, mq_timedsend, mq_unlink, mqd_t,
)
from ipcq.includes.poll cimport (
    EFD_CLOEXEC, EFD_NONBLOCK, POLLIN, POLLOUT, eventfd, eventfd_read,
    eventfd_t, eventfd_write, pollfd, ppoll,
)

import os
import queue
import resource
import warnings

from ipcq._common import (
    PickleSecurityWarning, QueueError, read_limit,
)
from ipcq.serializers import resolve

__all__ = ["Queue", "QueueError", "unlink", "PRIORITY_MAX"]

cdef enum:
    # sysconf(_SC_MQ_PRIO_MAX) is 32768 on Linux: priorities 0 to 32767.
    PRIO_LIMIT = 32767

PRIORITY_MAX = PRIO_LIMIT

# NAME_MAX: the longest name after the leading slash, in bytes.
cdef Py_ssize_t NAME_MAX = 255

cdef str MQ_PROC = "/proc/sys/fs/mqueue/"

# An absolute deadline already in the past: mq_timedsend(3) and
# mq_timedreceive(3) then return ETIMEDOUT at once instead of sleeping, so a
# call that cannot block needs neither O_NONBLOCK (shared with every process
# that inherited the descriptor) nor a release of the GIL.
cdef timespec EXPIRED
EXPIRED.tv_sec = 0
EXPIRED.tv_nsec = 0

# An untimed wait sleeps inside mq_timedsend(3) or mq_timedreceive(3).
# When other threads exist, it sleeps in slices of this many nanoseconds:
# a slice that ends finds out whether close() was called meanwhile, which
# nothing else can tell a thread asleep in the kernel, and runs the
# handler of a signal that landed just before the system call.  So
# close() wakes such a thread within 50 ms, and an idle waiting thread
# wakes 20 times a second.  Alone in its process, a thread sleeps until
# a message (or room) or a signal comes.
cdef long WAIT_SLICE_NS = 50000000


cdef mqd_t reopen_nonblocking(mqd_t fd, int oflag) noexcept:
    """A second descriptor for the queue behind *fd*, in O_NONBLOCK mode,
    or -1 if the system gives none.

    A try that must not wait then costs a plain mq_send(3) or
    mq_receive(3): about 40 ns less per call here than mq_timedsend(3)
    and mq_timedreceive(3) with an expired deadline, whose timespec the
    kernel copies and checks.  Opening /proc/self/fd/N makes a new open
    file description of the same queue, so its O_NONBLOCK is this
    handle's alone: no other process or handle sees it, and *fd* keeps
    blocking for the calls that wait.  Without /proc, with every
    descriptor of RLIMIT_NOFILE in use or with the queue's mode changed
    since *fd* was opened, the handle uses the expired deadline instead.
    """
    cdef char path[48]

    snprintf(path, sizeof(path), "/proc/self/fd/%d", <int>fd)
    return open(path, oflag | O_NONBLOCK | O_CLOEXEC)


cdef bytes encode_name(object name):
    cdef bytes raw

    if not isinstance(name, str):
        raise TypeError(
            f"queue name must be a str such as '/jobs', "
            f"not {type(name).__name__}"
        )
    if (len(name) < 2 or name[0] != "/" or "/" in name[1:]
            or "\0" in name):
        raise QueueError(
            EINVAL,
            f"invalid queue name {name!r}: it must be '/' followed by 1 to "
            f"{NAME_MAX} characters, none of them '/' or NUL",
        )

    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) - 1 > NAME_MAX:
        raise QueueError(
            EINVAL,
            f"invalid queue name: {len(raw) - 1} bytes after the '/', "
            f"more than the limit of {NAME_MAX}",
        )
    return raw


cdef inline long check_priority(object priority) except -1:
    cdef long prio = to_long(priority, "priority")

    if prio < 0 or prio > PRIO_LIMIT:
        raise QueueError(
            EINVAL, f"priority must be 0 to {PRIO_LIMIT}, not {prio}"
        )
    return prio


cdef long positive(object value, str what) except -1:
    cdef long n = to_long(value, what)
    if n <= 0:
        raise QueueError(EINVAL, f"{what} must be at least 1, not {n}")
    return n


def _describe_open_error(int err, str name, long maxsize, long maxmsgsize,
                         bint creating):
    """Say why mq_open(3) failed, naming the limit and how to raise it."""
    if err == EINVAL and creating:
        msg_max = read_limit(MQ_PROC + "msg_max")
        msgsize_max = read_limit(MQ_PROC + "msgsize_max")
        if msg_max is not None and maxsize > msg_max:
            return (
                f"maxsize={maxsize} is above the system limit msg_max="
                f"{msg_max} ({MQ_PROC}msg_max); raise it as root with "
                f"'sysctl fs.mqueue.msg_max={maxsize}' or run with "
                "CAP_SYS_RESOURCE"
            )
        if msgsize_max is not None and maxmsgsize > msgsize_max:
            return (
                f"maxmsgsize={maxmsgsize} is above the system limit "
                f"msgsize_max={msgsize_max} ({MQ_PROC}msgsize_max); raise "
                f"it as root with 'sysctl fs.mqueue.msgsize_max="
                f"{maxmsgsize}'"
            )
        return (
            f"the kernel refused maxsize={maxsize}, "
            f"maxmsgsize={maxmsgsize} for queue {name!r}"
        )
    if err == EMFILE:
        soft, hard = resource.getrlimit(resource.RLIMIT_MSGQUEUE)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return (
            f"cannot open queue {name!r}: either the queues of this user "
            f"would exceed RLIMIT_MSGQUEUE ({soft} bytes, hard limit "
            f"{hard}; this queue needs at least {maxsize * maxmsgsize} "
            "bytes plus kernel overhead; 'ulimit -q' shows it, and raising "
            "the hard limit needs CAP_SYS_RESOURCE; close or unlink unused "
            "queues), or this process has all the descriptors "
            f"RLIMIT_NOFILE allows ({nofile})"
        )
    if err == ENOSPC:
        return (
            f"cannot create queue {name!r}: the system already has "
            f"queues_max={read_limit(MQ_PROC + 'queues_max')} queues "
            f"({MQ_PROC}queues_max); unlink unused ones, or raise it as "
            "root with 'sysctl fs.mqueue.queues_max=N'"
        )
    if err == ENFILE:
        return "the system has reached its limit of open files"
    if err == EACCES:
        return f"permission denied for queue {name!r}"
    if err == ENOENT:
        return f"queue {name!r} does not exist"
    if err == EEXIST:
        return f"queue {name!r} already exists"
    if err == ENAMETOOLONG:
        return f"queue name {name!r} is too long"
    return f"cannot open queue {name!r}: {os.strerror(err)}"


def unlink(name):
    """Remove the queue called *name* from the system.

    Processes that have it open keep using it until they close it; the
    name is free at once.  A queue that does not exist raises QueueError
    with DOES_NOT_EXIST.
    """
    cdef bytes raw = encode_name(name)
    cdef const char *c_name = raw
    cdef int rc, err

    with nogil:
        rc = mq_unlink(c_name)
        err = errno

    if rc < 0:
        if err == ENOENT:
            raise_errno(err, f"queue {name!r} does not exist")
        if err == EACCES:
            raise_errno(err, f"permission denied to unlink queue {name!r}")
        raise_errno(err, f"cannot unlink queue {name!r}: {os.strerror(err)}")


cdef class Queue:
    """Queue(name, maxsize=10, maxmsgsize=1024, serializer=None, *,
    mode=0o600, create=True, exclusive=False, read=True, write=True,
    retry_interrupted=False)
--

    A POSIX message queue, created if it does not exist.

    *name* is ``'/'`` followed by up to 255 characters.  *maxsize* (the
    number of messages) and *maxmsgsize* (bytes per message) apply when
    the queue is created; an existing queue keeps its own, which the
    handle adopts (see :attr:`maxsize`, :attr:`maxmsgsize`).  *serializer*
    is a name (``'pickle'``, ``'msgpack'``, ``'json'``, ``'raw'``) or an
    object with ``dumps``/``loads``; None means pickle, protocol 1.

    Keyword-only options: *mode*, the permission bits of a queue this
    call creates (0600: only its owner may use it); *create* False opens
    an existing queue and never creates one; *exclusive* True creates a
    new queue and fails with FileExistsError if the name is taken; *read*
    False or *write* False open a write-only or read-only handle;
    *retry_interrupted* True resumes a wait that a signal interrupted
    (after the Python handlers ran without raising) instead of raising
    QueueError with INTERRUPTED.
    """

    cdef mqd_t _fd
    # The same queue through a file description of this handle's own, in
    # O_NONBLOCK mode (see reopen_nonblocking), or -1.
    cdef mqd_t _nb_fd
    cdef int _wake_fd
    cdef int _waiters
    cdef unsigned long _waiters_gen
    cdef bint _closed
    # Whether the last untimed receive (send) had to wait: the next one
    # then goes straight to the waiting system call, one call instead of
    # a failed try and then the wait, as in a ping-pong of two processes.
    cdef bint _recv_waited
    cdef bint _send_waited
    cdef bint _retry
    cdef str _name
    cdef long _maxsize
    cdef long _msgsize
    cdef Codec _codec
    cdef char *_buf
    cdef bint _buf_busy
    # The fork generation in which _buf was taken: a thread of a parent
    # process that held it does not exist in a child (see _take_buffer()).
    cdef unsigned long _buf_gen
    # What get_into() returned last, refilled by the next call if free.
    cdef object _last_into
    cdef object __weakref__

    def __cinit__(self):
        self._fd = -1
        self._nb_fd = -1
        self._wake_fd = -1
        self._closed = True

    def __init__(self, name, maxsize=10, maxmsgsize=1024, serializer=None,
                 *, mode=0o600, bint create=True, bint exclusive=False,
                 bint read=True, bint write=True,
                 bint retry_interrupted=False):
        cdef bytes raw = encode_name(name)
        cdef const char *c_name = raw
        cdef long c_maxsize = positive(maxsize, "maxsize")
        cdef long c_msgsize = positive(maxmsgsize, "maxmsgsize")
        cdef int c_mode
        cdef int oflag
        cdef mq_attr attr
        cdef mqd_t fd = -1
        cdef int err = 0
        cdef bint created = False

        if self._fd >= 0:
            raise RuntimeError("Queue.__init__() called twice")
        c_mode = to_long(mode, "mode")
        if not 0 <= c_mode <= 0o7777:
            raise QueueError(EINVAL, f"mode must be 0 to 0o7777, not {mode!r}")
        if read and write:
            oflag = O_RDWR
        elif read:
            oflag = O_RDONLY
        elif write:
            oflag = O_WRONLY
        else:
            raise ValueError("a queue handle needs read=True or write=True")
        self._codec = resolve(serializer)

        attr.mq_flags = 0
        attr.mq_maxmsg = c_maxsize
        attr.mq_msgsize = c_msgsize
        attr.mq_curmsgs = 0
        # Create exclusively first so that the caller's mode is applied
        # only to a queue this call made; an existing queue (EEXIST) is
        # then opened as it is.  ENOENT on that open means it was unlinked
        # in between: try again.
        for _ in range(100):
            if create:
                with nogil:
                    fd = mq_open(c_name, oflag | O_CREAT | O_EXCL,
                                 c_mode, &attr)
                    err = errno
                if fd >= 0:
                    created = True
                    break
                if err != EEXIST or exclusive:
                    break
            with nogil:
                fd = mq_open(c_name, oflag, 0, NULL)
                err = errno
            if fd >= 0 or err != ENOENT or not create:
                break

        if fd < 0:
            raise_errno(err, _describe_open_error(
                err, name, c_maxsize, c_msgsize, create))

        # mq_open(3) masks the mode with the umask; the mode asked for is
        # the mode wanted.
        if created:
            fchmod(fd, c_mode)
        mq_getattr(fd, &attr)

        self._fd = fd
        self._nb_fd = reopen_nonblocking(fd, oflag)
        self._closed = False
        self._name = name
        self._maxsize = attr.mq_maxmsg
        self._msgsize = attr.mq_msgsize
        self._retry = retry_interrupted
        if self._codec.unpickles:
            try:
                self._warn_if_shared()
            except BaseException:
                # The warning was turned into an error: undo this call.
                self._closed = True
                self._release_fds()
                if created:
                    mq_unlink(c_name)
                raise

    cdef _warn_if_shared(self):
        cdef struct_stat st

        if fstat(self._fd, &st) == 0 and st.st_mode & 0o022:
            warnings.warn(
                f"queue {self._name!r} is writable by other users (mode "
                f"{st.st_mode & 0o777:#o}) and uses pickle, which runs code "
                "chosen by whoever writes a message; use 'msgpack', 'json' "
                "or 'raw' with untrusted writers",
                PickleSecurityWarning,
                # The caller's frame: compiled frames are not counted.
                stacklevel=1,
            )

    def __del__(self):
        if not self._closed:
            warnings.warn(
                f"unclosed queue {self._name!r}", ResourceWarning, source=self
            )
            self.close()

    def __dealloc__(self):
        if self._fd >= 0:
            mq_close(self._fd)
        if self._nb_fd >= 0:
            mq_close(self._nb_fd)
        if self._wake_fd >= 0:
            close(self._wake_fd)
        free(self._buf)

    def __repr__(self):
        state = "closed" if self._closed else "open"
        return (
            f"<ipcq.posixmq.Queue {self._name!r} maxsize={self._maxsize} "
            f"maxmsgsize={self._msgsize} {state}>"
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if not self._closed:
            self.close()

    def __reduce__(self):
        raise TypeError(
            "a queue handle cannot be pickled; open the queue by name in "
            "the other process"
        )

    @property
    def name(self):
        """The queue's name, such as ``'/jobs'``."""
        return self._name

    @property
    def maxsize(self):
        """How many messages the queue holds (its ``mq_maxmsg``)."""
        return self._maxsize

    @property
    def maxmsgsize(self):
        """The largest message in bytes (its ``mq_msgsize``)."""
        return self._msgsize

    @property
    def serializer(self):
        """The serializer this handle encodes and decodes with."""
        return self._codec.serializer

    @property
    def closed(self):
        """True once :meth:`close` was called."""
        return self._closed

    # -- sending ----------------------------------------------------------

    def put(self, item, block=True, timeout=None, priority=0,
            pickle_protocol=None):
        """Put *item* into the queue.

        With *block* true (the default), wait for room: forever if
        *timeout* is None, else at most *timeout* seconds, then raise
        :class:`queue.Full`.  With *block* false, raise queue.Full at once
        if the queue is full (*timeout* is then ignored).  Messages of
        higher *priority* (0 to 32767) are received first; equal
        priorities in the order sent.  *pickle_protocol* overrides the
        pickle serializer's protocol for this message.
        """
        cdef unsigned int prio = <unsigned int>check_priority(priority)
        cdef double deadline = wait_deadline(block, timeout)

        if self._closed:
            self._raise_closed()
        if not self._send_item(item, prio, block, deadline, pickle_protocol):
            raise queue.Full

    def put_nowait(self, item, priority=0, pickle_protocol=None):
        """Put *item* without waiting: ``put(item, block=False)``."""
        return self.put(item, False, None, priority, pickle_protocol)

    def put_many(self, items, block=True, timeout=None, priority=0,
                 pickle_protocol=None):
        """Put every item of the iterable *items*, in order; return the count.

        One call pays Python's overhead once for the batch.  With *block*
        true and no *timeout*, every item is put, waiting for room as
        needed.  Otherwise the batch stops at the first item that finds
        no room (at once with *block* false, or when *timeout*, counted
        for the whole batch, runs out), and the return value tells how
        many items were put: the rest were not sent.  An exception raised
        by an item (a serializer error, say) or by the wait (a signal)
        carries that count as its ``count`` attribute.
        """
        cdef unsigned int prio = <unsigned int>check_priority(priority)
        cdef double deadline = wait_deadline(block, timeout)
        cdef Py_ssize_t count = 0

        if self._closed:
            self._raise_closed()
        try:
            for item in items:
                if not self._send_item(item, prio, block, deadline,
                                       pickle_protocol):
                    break
                count += 1
        except BaseException as exc:
            # The items before the failing one were sent: say how many.
            exc.count = count
            raise
        return count

    @cython.final
    cdef inline int _send_item(self, object item, unsigned int prio,
                               bint block, double deadline,
                               object pickle_protocol) except -1:
        """Encode and send one item; return 1 if sent, 0 if no room."""
        cdef object data
        cdef int err

        data = encode_item(self._codec, item, pickle_protocol)

        # The common case in one system call, inlined into put() and
        # put_many(): bytes that fit, and room in the queue.  Anything
        # else takes the general path, which explains failures.
        if (type(data) is bytes and PyBytes_GET_SIZE(data) <= self._msgsize
                and not (block and deadline < 0 and self._send_waited)):
            if self._try_send(PyBytes_AS_STRING(data),
                              PyBytes_GET_SIZE(data), prio) == 0:
                return 1
            err = errno
            if not block and (err == EAGAIN or err == ETIMEDOUT):
                return 0
        return self._send_data(data, prio, block, deadline)

    @cython.final
    cdef int _send_data(self, object data, unsigned int prio, bint block,
                        double deadline) except -1:
        """Send one encoded item; return 1 if sent, 0 if no room."""
        cdef Py_buffer view

        # bytes, what most serializers return, needs no buffer request.
        if type(data) is bytes:
            self._check_size(PyBytes_GET_SIZE(data))
            return self._send(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                              prio, block, deadline)

        self._codec.get_buffer(data, &view)
        try:
            self._check_size(view.len)
            return self._send(<const char *>view.buf, view.len, prio, block,
                              deadline)
        finally:
            PyBuffer_Release(&view)

    @cython.final
    cdef inline int _check_size(self, Py_ssize_t size) except -1:
        if size > self._msgsize:
            raise QueueError(
                EMSGSIZE,
                f"message of {size} bytes is bigger than the "
                f"{self._msgsize}-byte maximum of queue {self._name!r}",
            )
        return 0

    @cython.final
    cdef int _send(self, const char *buf, size_t size, unsigned int prio,
                   bint block, double deadline) except -1:
        cdef int rc, err

        while True:
            if self._closed:
                self._raise_closed()
            if not (block and deadline < 0 and self._send_waited):
                rc = self._try_send(buf, size, prio)
                if rc == 0:
                    self._send_waited = False
                    return 1
                err = errno
                if err != ETIMEDOUT and err != EAGAIN:
                    self._raise_io(err, "send to")
                if not block:
                    return 0
            if deadline < 0:
                if self._call_waiting(True, <char *>buf, size, &prio) == 0:
                    self._send_waited = True
                    return 1
            # A timed wait, or a descriptor in O_NONBLOCK mode.
            self._send_waited = False
            if not self._wait(POLLOUT, deadline):
                return 0

    @cython.final
    cdef inline int _try_send(self, const char *buf, size_t size,
                              unsigned int prio) noexcept:
        """Send without waiting: 0, or -1 with errno (EAGAIN or ETIMEDOUT
        when the queue is full)."""
        if self._nb_fd >= 0:
            return mq_send(self._nb_fd, buf, size, prio)
        return mq_timedsend(self._fd, buf, size, prio, &EXPIRED)

    @cython.final
    cdef inline Py_ssize_t _try_receive(self, char *buf, size_t cap,
                                        unsigned int *prio) noexcept:
        """Receive without waiting: the size, or -1 with errno (EAGAIN or
        ETIMEDOUT when the queue is empty)."""
        if self._nb_fd >= 0:
            return mq_receive(self._nb_fd, buf, cap, prio)
        return mq_timedreceive(self._fd, buf, cap, prio, &EXPIRED)

    # -- receiving --------------------------------------------------------

    def get(self, block=True, timeout=None):
        """Remove and return an item from the queue.

        The oldest message of the highest priority comes first.  With
        *block* true (the default), wait for one: forever if *timeout* is
        None, else at most *timeout* seconds, then raise
        :class:`queue.Empty`.  With *block* false, raise queue.Empty at
        once if there is none.
        """
        cdef unsigned int prio
        cdef Py_ssize_t size
        cdef object data
        cdef int err

        # The common case in one system call, without the layers of the
        # general path: no deadline, a message already there, the handle's
        # buffer free.  The GIL is held from the receive to the copy, so
        # no other thread can use the buffer meanwhile.
        if (timeout is None and not self._closed and self._buf != NULL
                and not self._buf_busy):
            if not (self._recv_waited and block):
                size = self._try_receive(self._buf, self._msgsize, &prio)
                if size >= 0:
                    data = PyBytes_FromStringAndSize(self._buf, size)
                    return decode_item(self._codec, data, prio, False)
                err = errno
                if not block and (err == EAGAIN or err == ETIMEDOUT):
                    raise queue.Empty
            elif alone_in_interpreter():
                # The last receive had to wait, so this one waits in
                # mq_receive(3) at once, as _call_waiting() would, without
                # its layers.  After a signal whose handlers let the wait
                # go on, or any other failure (a descriptor in O_NONBLOCK
                # mode), the general path takes over; nothing was taken
                # from the queue.
                size = self._wait_receive(&prio)
                if size >= 0:
                    data = PyBytes_FromStringAndSize(self._buf, size)
                    return decode_item(self._codec, data, prio, False)
        return self._get(block, timeout, False)

    def get_nowait(self):
        """Get an item without waiting: ``get(block=False)``."""
        return self._get(False, None, False)

    def get_with_priority(self, block=True, timeout=None):
        """Like :meth:`get`, but return ``(item, priority)``."""
        return self._get(block, timeout, True)

    @cython.final
    cdef object _get(self, bint block, object timeout, bint with_priority):
        cdef double deadline = wait_deadline(block, timeout)
        cdef unsigned int prio = 0
        cdef object data
        cdef object item

        if self._closed:
            self._raise_closed()

        data = self._receive(block, deadline, &prio)
        if data is None:
            raise queue.Empty
        item = decode_item(self._codec, data, prio, False)
        if with_priority:
            return item, prio
        return item

    def get_many(self, max_items, block=True, timeout=None):
        """Remove and return up to *max_items* items, as a list.

        Waits as :meth:`get` does for the first item only (raising
        :class:`queue.Empty` if none comes), then takes what else is
        already there without waiting.  If a message cannot be decoded,
        :class:`ipcq.DecodeError` is raised with the items received
        before it in its ``items`` attribute, so that none is lost; so
        does any exception raised midway (by a signal handler, say).
        """
        cdef Py_ssize_t limit = to_long(max_items, "max_items")
        cdef double deadline = wait_deadline(block, timeout)
        cdef unsigned int prio = 0
        cdef list items
        cdef object first
        cdef bytes data
        cdef char *buf
        cdef Py_ssize_t size

        if limit < 1:
            raise QueueError(
                EINVAL, f"max_items must be at least 1, not {limit}"
            )
        if self._closed:
            self._raise_closed()

        first = self._receive(block, deadline, &prio)
        if first is None:
            raise queue.Empty
        data = <bytes>first
        # At most a full queue's worth is there at once, usually.
        items = list_with_room(limit if limit < self._maxsize else self._maxsize)
        # The rest without waiting, into one buffer for the whole batch:
        # one system call each, straight from this loop while messages are
        # there.  The general path only explains a failure (a closed
        # handle, say), or finds that the queue is empty after all.
        buf = self._take_buffer()
        try:
            while True:
                list_push(items, decode_item(self._codec, data, prio, False))
                if PyList_GET_SIZE(items) >= limit:
                    return items
                size = self._try_receive(buf, self._msgsize, &prio)
                if size < 0:
                    if errno == ETIMEDOUT or errno == EAGAIN:
                        return items
                    size = self._receive_into(buf, self._msgsize, False, 0,
                                              &prio)
                    if size < 0:
                        return items
                self._recv_waited = False
                data = <bytes>PyBytes_FromStringAndSize(buf, size)
        except BaseException as exc:
            # The items before the failing one have left the queue: they
            # go with the exception (a DecodeError, or a signal handler's).
            exc.items = items
            raise
        finally:
            self._give_buffer(buf)

    def get_into(self, buffer, block=True, timeout=None):
        """Receive the next message's bytes into *buffer*, with no allocation.

        *buffer* is any writable contiguous buffer (bytearray, memoryview,
        numpy array) of at least :attr:`maxmsgsize` bytes, which
        mq_receive(3) requires whatever the message's size; a smaller one
        raises QueueError (TOO_BIG_MESSAGE) before anything is received.
        The serializer is not applied.  Returns ``(nbytes, priority)``;
        waiting works as for :meth:`get`.  The tuple is the one the last
        call returned, refilled, once the caller has let go of it: a loop
        that unpacks it allocates nothing (Python makes an int above 256
        on the fly, as for any int).
        """
        cdef Py_buffer view
        cdef double deadline
        cdef unsigned int prio = 0
        cdef Py_ssize_t size
        cdef int err

        # The common case in one system call, as in get(): a bytearray
        # large enough, written with the GIL held, so that nothing can
        # resize it meanwhile; no buffer request.
        if (type(buffer) is bytearray and timeout is None
                and not self._closed and not (self._recv_waited and block)
                and PyByteArray_GET_SIZE(buffer) >= self._msgsize):
            size = self._try_receive(PyByteArray_AS_STRING(buffer),
                                     PyByteArray_GET_SIZE(buffer), &prio)
            if size >= 0:
                return self._into_result(size, prio)
            err = errno
            if not block and (err == EAGAIN or err == ETIMEDOUT):
                raise queue.Empty

        deadline = wait_deadline(block, timeout)
        if self._closed:
            self._raise_closed()
        get_writable_buffer(buffer, &view)
        try:
            if view.len < self._msgsize:
                raise QueueError(
                    EMSGSIZE,
                    f"buffer of {view.len} bytes is smaller than the "
                    f"{self._msgsize}-byte maximum message size of queue "
                    f"{self._name!r}; a receive needs room for the largest",
                )
            size = self._receive_into(<char *>view.buf, view.len, block,
                                      deadline, &prio)
        finally:
            PyBuffer_Release(&view)
        if size < 0:
            raise queue.Empty
        return self._into_result(size, prio)

    @cython.final
    cdef inline object _into_result(self, Py_ssize_t size, unsigned int prio):
        # The (nbytes, priority) of get_into(): the last call's tuple
        # again when the caller let go of it.
        self._last_into = pair_result(<PyObject *>self._last_into, size, prio)
        return self._last_into

    @cython.final
    cdef object _receive(self, bint block, double deadline,
                         unsigned int *prio):
        """Receive one message as bytes, or None if none came in time."""
        cdef char *buf = self._take_buffer()
        cdef Py_ssize_t size

        try:
            size = self._receive_into(buf, self._msgsize, block, deadline,
                                      prio)
            if size < 0:
                return None
            # Exactly the message's size: a kept message holds no more
            # memory than it needs.
            return PyBytes_FromStringAndSize(buf, size)
        finally:
            self._give_buffer(buf)

    @cython.final
    cdef Py_ssize_t _receive_into(self, char *buf, size_t cap, bint block,
                                  double deadline,
                                  unsigned int *prio) except -2:
        """Receive into *buf*; return the size, or -1 if none came."""
        cdef Py_ssize_t size
        cdef int err

        while True:
            if self._closed:
                self._raise_closed()
            if not (block and deadline < 0 and self._recv_waited):
                size = self._try_receive(buf, cap, prio)
                if size >= 0:
                    self._recv_waited = False
                    return size
                err = errno
                if err != ETIMEDOUT and err != EAGAIN:
                    self._raise_io(err, "receive from")
                if not block:
                    return -1
            if deadline < 0:
                size = self._call_waiting(False, buf, cap, prio)
                if size >= 0:
                    self._recv_waited = True
                    return size
            # A timed wait, or a descriptor in O_NONBLOCK mode.
            self._recv_waited = False
            if not self._wait(POLLIN, deadline):
                return -1

    @cython.final
    cdef Py_ssize_t _wait_receive(self, unsigned int *prio) except -2:
        """One untimed mq_receive(3) into the handle's free buffer.

        For a thread alone in the interpreter, so that the wait needs no
        slices (see _wait_limit()).  Returns the size, or -1 for the
        caller to go on to the general path.
        """
        cdef Py_ssize_t size
        cdef int err

        # A signal that came while this thread held the GIL: its handler
        # runs before the wait, as in _call_waiting().
        PyErr_CheckSignals()
        self._enter_wait()
        self._buf_busy = True
        self._buf_gen = fork_generation()
        with nogil:
            size = mq_receive(self._fd, self._buf, self._msgsize, prio)
            err = errno
        self._buf_busy = False
        self._leave_wait()
        if size < 0 and err == EINTR and not self._closed:
            # As _call_waiting() would: run the handlers, then fail with
            # INTERRUPTED or let the general path wait again.
            after_eintr(self._retry)
        return size

    @cython.final
    cdef Py_ssize_t _call_waiting(self, bint sending, char *buf, size_t size,
                                  unsigned int *prio) except -2:
        """Send or receive, waiting inside the call itself; untimed waits only.

        One system call both waits and moves the message, as a C
        program's mq_send(3) or mq_receive(3) does; a timed wait uses
        ppoll() instead, whose timeout runs on CLOCK_MONOTONIC rather than
        the settable CLOCK_REALTIME of mq_timedsend(3) and
        mq_timedreceive(3).  Returns 0 once sent or the size received, or
        -1 if the descriptor is in O_NONBLOCK mode (set through a file
        description that another process shares), for the caller to wait
        with ppoll() instead.
        """
        cdef timespec ts
        cdef const timespec *limit
        cdef Py_ssize_t rc
        cdef int err

        self._enter_wait()
        try:
            while True:
                # A signal that came while this thread held the GIL did not
                # interrupt anything: run its handler now.
                # XXX: one that lands between this check and the system
                # call is run when the call returns: when the slice ends
                # (50 ms) if there is one, else with the next message.
                PyErr_CheckSignals()
                limit = self._wait_limit(&ts)
                with nogil:
                    if limit == NULL and sending:
                        rc = mq_send(self._fd, buf, size, prio[0])
                    elif limit == NULL:
                        rc = mq_receive(self._fd, buf, size, prio)
                    elif sending:
                        rc = mq_timedsend(self._fd, buf, size, prio[0], limit)
                    else:
                        rc = mq_timedreceive(self._fd, buf, size, prio, limit)
                    err = errno
                # A message that moved is done with even if close() was
                # called meanwhile: it has left the queue, or entered it.
                if rc >= 0:
                    return rc
                if self._closed:
                    self._raise_closed_while_waiting()
                if err == ETIMEDOUT:
                    continue
                if err == EAGAIN:
                    return -1
                if err != EINTR:
                    self._raise_io(err, "send to" if sending else "receive from")
                after_eintr(self._retry)
        finally:
            self._leave_wait()

    @cython.final
    cdef char *_take_buffer(self) except NULL:
        # One receive buffer per queue.  While a thread waits with it (the
        # GIL released), another thread receiving on the same handle gets
        # a buffer of its own for that call.
        cdef char *buf
        cdef unsigned long gen = fork_generation()

        # Held by a thread that was waiting when another thread forked:
        # in the child that thread does not exist, and never gives it back.
        if self._buf_busy and self._buf_gen != gen:
            self._buf_busy = False
        if not self._buf_busy:
            if self._buf == NULL:
                self._buf = <char *>malloc(self._msgsize)
                if self._buf == NULL:
                    raise MemoryError()
            self._buf_busy = True
            self._buf_gen = gen
            return self._buf

        buf = <char *>malloc(self._msgsize)
        if buf == NULL:
            raise MemoryError()
        return buf

    @cython.final
    cdef void _give_buffer(self, char *buf) noexcept:
        if buf == self._buf:
            self._buf_busy = False
        else:
            free(buf)

    # -- waiting ----------------------------------------------------------

    cdef int _wait(self, short events, double deadline) except -1:
        """Wait until the queue is ready for *events*, or the deadline.

        Returns 1 when it may be ready (the caller tries again without
        blocking; another process may have won the race), 0 when the
        deadline has passed.  ppoll(2) measures its timeout on
        CLOCK_MONOTONIC.  The second descriptor is an eventfd that close()
        signals, so that waiting threads wake up instead of sleeping on a
        descriptor that is about to be closed.
        """
        cdef pollfd fds[2]
        cdef timespec ts
        cdef timespec *timeout
        cdef double left
        cdef int rc, err
        cdef eventfd_t drained

        self._enter_wait()
        try:
            self._ensure_wake_fd()
            fds[0].fd = self._fd
            fds[0].events = events
            fds[1].fd = self._wake_fd
            fds[1].events = POLLIN
            while True:
                timeout = NULL
                if deadline >= 0:
                    left = deadline - monotonic()
                    if left <= 0:
                        return 0
                    fill_timespec(&ts, left)
                    timeout = &ts

                # A signal that came while this thread held the GIL did not
                # interrupt anything: run its handler now rather than after
                # the wait.
                # XXX: one that lands between this check and ppoll() is
                # handled only when ppoll() returns (readiness, timeout).
                # Blocking signals around the wait and handing the saved
                # mask to ppoll() would close that window, for two more
                # system calls per wait; the System V timed wait does so.
                PyErr_CheckSignals()
                with nogil:
                    rc = ppoll(fds, 2, timeout, NULL)
                    err = errno

                if self._closed:
                    self._raise_closed_while_waiting()
                if rc > 0:
                    if fds[1].revents:
                        # Only close() signals the eventfd; a wake-up while
                        # still open would repeat forever unless drained.
                        eventfd_read(self._wake_fd, &drained)
                    return 1
                if rc < 0:
                    if err != EINTR:
                        raise OSError(err, os.strerror(err))
                    after_eintr(self._retry)
        finally:
            self._leave_wait()

    @cython.final
    cdef inline const timespec *_wait_limit(self, timespec *ts) noexcept:
        # Where another thread could call close(), the wait is cut into
        # slices; a process with one thread sleeps without a timer, whose
        # setting and cancelling cost about 0.3 us per wait here.
        if alone_in_interpreter():
            return NULL
        slice_deadline(ts, WAIT_SLICE_NS)
        return ts

    @cython.final
    cdef void _enter_wait(self) noexcept:
        # The waiting threads counted before a fork() do not exist in the
        # child, and the eventfd it inherited is shared with the parent:
        # the child starts from none and makes its own, so that neither
        # process's close() wakes the other's threads.
        cdef unsigned long gen = fork_generation()

        if self._waiters_gen != gen:
            self._waiters_gen = gen
            self._waiters = 0
            if self._wake_fd >= 0:
                close(self._wake_fd)
                self._wake_fd = -1
        self._waiters += 1

    @cython.final
    cdef void _leave_wait(self) noexcept:
        # The last thread to stop waiting on a closed handle closes the
        # descriptors, which close() left open for it.
        self._waiters -= 1
        if self._closed and self._waiters == 0:
            self._release_fds()

    cdef int _ensure_wake_fd(self) except -1:
        if self._wake_fd >= 0:
            return 0
        self._wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)
        if self._wake_fd < 0:
            raise OSError(errno, os.strerror(errno))
        return 0

    # -- errors -----------------------------------------------------------

    cdef int _raise_closed(self) except -1:
        raise QueueError(EBADF, f"queue {self._name!r} is closed")

    cdef int _raise_closed_while_waiting(self) except -1:
        raise QueueError(
            EBADF, f"queue {self._name!r} was closed while waiting"
        )

    cdef int _raise_io(self, int err, str action) except -1:
        # mq_send(3) / mq_receive(3): EBADF when the handle was not opened
        # for this direction, EMSGSIZE when a message or buffer does not
        # fit, EINTR only if a signal arrives in the short non-blocking
        # call.
        if err == EBADF:
            raise_errno(
                err, f"cannot {action} queue {self._name!r}: the handle "
                "was not opened for it (read=/write=)"
            )
        if err == EINTR:
            after_eintr(True)
            return 0
        raise_errno(
            err, f"cannot {action} queue {self._name!r}: {os.strerror(err)}"
        )

    # -- state ------------------------------------------------------------

    cdef int _getattr(self, mq_attr *attr) except -1:
        if self._closed:
            self._raise_closed()
        if mq_getattr(self._fd, attr) < 0:
            raise_errno(errno, f"cannot read the attributes of {self._name!r}")
        return 0

    def qattr(self):
        """Return ``{'size', 'max_size', 'max_msgbytes'}`` of the queue."""
        cdef mq_attr attr

        self._getattr(&attr)
        return {
            "size": attr.mq_curmsgs,
            "max_size": attr.mq_maxmsg,
            "max_msgbytes": attr.mq_msgsize,
        }

    cdef long _curmsgs(self) except -1:
        cdef mq_attr attr

        self._getattr(&attr)
        return attr.mq_curmsgs

    def qsize(self):
        """Return the number of messages in the queue now.

        Other processes may change it at any moment: ``qsize() > 0`` does
        not promise that a ``get()`` will not block.
        """
        return self._curmsgs()

    def empty(self):
        """Return True if the queue holds no message now."""
        return self._curmsgs() == 0

    def full(self):
        """Return True if the queue holds :attr:`maxsize` messages now."""
        return self._curmsgs() >= self._maxsize

    def fileno(self):
        """Return the queue descriptor, for select, poll and asyncio.

        It is readable while the queue holds a message and writable while
        it has room.  The handle owns it: do not close it yourself.
        """
        if self._closed:
            self._raise_closed()
        return self._fd

    def close(self):
        """Close this handle; the queue itself stays (see :meth:`unlink`).

        Threads waiting on this handle wake up with QueueError
        (INVALID_DESCRIPTOR): at once those that wait with a timeout,
        within 50 ms those that wait without one.  Closing twice raises
        the same error.
        """
        if self._closed:
            raise QueueError(EBADF, f"queue {self._name!r} is already closed")

        self._closed = True
        # Waiters counted in another process (before a fork) are not this
        # process's to wake, and its eventfd is not this process's to
        # signal.  Threads waiting in ppoll() wake at once through the
        # eventfd, those asleep in the queue calls at the end of their
        # slice; the last one closes the descriptors.
        if self._waiters and self._waiters_gen == fork_generation():
            if self._wake_fd >= 0:
                eventfd_write(self._wake_fd, 1)
        else:
            self._release_fds()

    cdef void _release_fds(self) noexcept:
        if self._fd >= 0:
            mq_close(self._fd)
            self._fd = -1
        if self._nb_fd >= 0:
            mq_close(self._nb_fd)
            self._nb_fd = -1
        if self._wake_fd >= 0:
            close(self._wake_fd)
            self._wake_fd = -1

    def unlink(self):
        """Remove the queue from the system (see :func:`unlink`)."""
        unlink(self._name)
