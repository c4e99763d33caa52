# cython: language_level=3, binding=False
"""System V message queues (msgop(2)): the engine of ipcq.sysvmq."""

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
    E2BIG, EACCES, EAGAIN, EBADF, EEXIST, EIDRM, EINTR, EINVAL, EMSGSIZE,
    ENOENT, ENOMSG, ENOSPC, EPERM, errno,
)
from libc.signal cimport SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSEGV
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from posix.signal cimport (
    SIG_BLOCK, SIG_SETMASK, sigdelset, sigfillset, sigset_t,
)
from posix.time cimport timespec

from ipcq._common cimport (
    Codec, after_eintr, decode_item, encode_item, fill_timespec,
    fork_generation, get_writable_buffer, list_push, list_with_room,
    monotonic, pair_result, raise_errno, to_long, wait_deadline,
)
from ipcq.includes.msg cimport (
    IPC_CREAT, IPC_EXCL, IPC_NOWAIT, IPC_PRIVATE, IPC_RMID, IPC_SET,
    IPC_STAT, ftok as c_ftok, key_t, msgctl, msgget, msgrcv, msgsnd,
    msqid_ds,
)
from ipcq.includes.poll cimport ppoll, pthread_sigmask

import os
import queue
import warnings

from ipcq._common import (
    PickleSecurityWarning, QueueError, read_limit,
)
from ipcq.serializers import resolve

__all__ = ["Queue", "QueueError", "ftok", "remove"]

cdef str KERNEL_PROC = "/proc/sys/kernel/"

# The kernel's default msgmax, used only where /proc cannot be read.
cdef Py_ssize_t MSGMAX_FALLBACK = 8192

# A message buffer starts with the C long mtype, then the text.
cdef Py_ssize_t HEADER = sizeof(long)

# The room get_many() makes in its list before it takes the first
# message: more items grow it as append() does.
cdef Py_ssize_t BATCH_ROOM = 16

# A timed wait polls with IPC_NOWAIT (the kernel has no timed msgrcv or
# msgsnd), sleeping between tries: first POLL_FIRST seconds, doubling up to
# POLL_MAX.  The wait thus ends within POLL_MAX of its deadline, and costs
# a few hundred short system calls a second, not a busy core.
cdef double POLL_FIRST = 0.0001
cdef double POLL_MAX = 0.002


cdef long check_type(object msg_type) except 0:
    cdef long mtype = to_long(msg_type, "msg_type")

    if mtype < 1:
        raise QueueError(
            EINVAL, f"msg_type must be a positive integer, not {mtype}"
        )
    return mtype


cdef struct Nap:
    # A timed wait in progress: its deadline, its next sleep, and the
    # signal mask that the sleeps let in.
    double deadline
    double delay
    sigset_t saved
    bint masked


cdef inline void start_nap(Nap *nap, double deadline) noexcept nogil:
    nap.deadline = deadline
    nap.delay = POLL_FIRST
    nap.masked = False


cdef inline void end_nap(Nap *nap) noexcept nogil:
    if nap.masked:
        pthread_sigmask(SIG_SETMASK, &nap.saved, NULL)
        nap.masked = False


cdef long check_max_bytes(object value) except -1:
    cdef long n = to_long(value, "max_bytes")

    if n <= 0:
        raise QueueError(EINVAL, f"max_bytes must be at least 1, not {n}")
    return n


cdef int open_existing(key_t key) noexcept:
    """msgget(2) an existing queue if this process may use it at all.

    msgget checks the permissions its flag asks for: asking for none
    would open any queue, even one whose mode lets this user do nothing.
    Read and write are asked first, then either alone, so that a queue
    this user may only read (or only write) still opens; msgsnd and msgrcv
    check the rest.
    """
    cdef int qid = -1
    cdef int flag

    for flag in (0o600, 0o400, 0o200):
        qid = msgget(key, flag)
        if qid >= 0 or errno != EACCES:
            break
    return qid


cdef Py_ssize_t read_msgmax():
    cdef object value = read_limit(KERNEL_PROC + "msgmax")
    if value is None or value <= 0:
        return MSGMAX_FALLBACK
    return value


def ftok(path, proj_id):
    """Return the System V key that ftok(3) makes of *path* and *proj_id*.

    C programs that call ``ftok(path, proj_id)`` on the same file get the
    same key.  *proj_id* is 1 to 255.  The key is returned as an unsigned
    32-bit number, the form :class:`Queue` takes.
    """
    cdef bytes raw = os.fsencode(path)
    cdef int proj = proj_id
    cdef key_t key

    if not 1 <= proj <= 255:
        raise QueueError(EINVAL, f"proj_id must be 1 to 255, not {proj}")

    key = c_ftok(raw, proj)
    if key == -1:
        raise OSError(errno, os.strerror(errno), os.fsdecode(raw))
    return <unsigned int>key


cdef class Queue:
    """Queue(key=None, max_bytes=None, serializer=None, *, mode=0o600,
    create=True, exclusive=False, retry_interrupted=False)
--

    A System V message queue.

    *key* None or 0 makes a new private queue (IPC_PRIVATE), reachable by
    its :attr:`id` and by children; a positive key (at most 2**32 - 1)
    opens the queue with that key, creating it if it is missing.  A
    negative or bigger key raises OverflowError.  *max_bytes* sets the
    queue's capacity in bytes (``msg_qbytes``); going above
    ``kernel.msgmnb`` needs CAP_SYS_RESOURCE.  *serializer* is as for
    :class:`ipcq.posixmq.Queue`.

    Keyword-only options: *mode*, the permission bits of a queue this
    call creates (0600: only its owner may use it); *create* False opens
    an existing queue and never creates one; *exclusive* True fails with
    FileExistsError if the key is taken; *retry_interrupted* True resumes
    a wait that a signal interrupted instead of raising INTERRUPTED.

    As in ipcqueue, :meth:`close` removes the queue from the system;
    :meth:`detach` forgets it and leaves it in place.
    """

    cdef int _id
    cdef unsigned int _key
    cdef bint _closed
    cdef bint _retry
    # Whether the last untimed receive had to wait (see _receive_into).
    cdef bint _recv_waited
    cdef Codec _codec
    cdef Py_ssize_t _msgmax
    cdef char *_rbuf
    cdef Py_ssize_t _rcap
    cdef bint _rbusy
    # The fork generations in which _rbuf and _sbuf were taken: a thread
    # of a parent process that held one does not exist in a child (see
    # _take_receive_buffer()).
    cdef unsigned long _rgen
    cdef unsigned long _sgen
    cdef char *_sbuf
    cdef bint _sbusy
    cdef Py_ssize_t _scap
    # What get_into() returned last, refilled by the next call if free.
    cdef object _last_into
    cdef object __weakref__

    def __cinit__(self):
        self._id = -1
        self._closed = True

    def __init__(self, key=None, max_bytes=None, serializer=None, *,
                 mode=0o600, bint create=True, bint exclusive=False,
                 bint retry_interrupted=False):
        cdef object k = 0 if key is None else to_long(key, "key")
        cdef key_t c_key
        cdef int c_mode
        cdef int qid = -1
        cdef int err = 0
        cdef bint created = False

        if self._id >= 0:
            raise RuntimeError("Queue.__init__() called twice")
        if not 0 <= k <= 0xFFFFFFFF:
            raise OverflowError(f"key must be 0 to 4294967295, not {k!r}")
        c_key = <key_t><unsigned int>k
        c_mode = to_long(mode, "mode")
        if not 0 <= c_mode <= 0o777:
            raise QueueError(EINVAL, f"mode must be 0 to 0o777, not {mode!r}")
        if max_bytes is not None:
            check_max_bytes(max_bytes)
        self._codec = resolve(serializer)

        if c_key == IPC_PRIVATE:
            if not create:
                raise QueueError(
                    EINVAL, "a private queue (key None or 0) is always new: "
                    "create=False cannot open one"
                )
            qid = msgget(IPC_PRIVATE, IPC_CREAT | c_mode)
            err = errno
            created = qid >= 0
        else:
            # As for POSIX queues: create exclusively first, so that only a
            # queue this call made gets the caller's mode and max_bytes
            # rolls back cleanly; then open an existing one as it is.
            for _ in range(100):
                if create:
                    qid = msgget(c_key, IPC_CREAT | IPC_EXCL | c_mode)
                    err = errno
                    if qid >= 0:
                        created = True
                        break
                    if err != EEXIST or exclusive:
                        break
                qid = open_existing(c_key)
                err = errno
                if qid >= 0 or err != ENOENT or not create:
                    break

        if qid < 0:
            raise_errno(err, self._open_error(err, k))

        self._id = qid
        self._key = <unsigned int>c_key
        self._closed = False
        self._retry = retry_interrupted
        self._msgmax = read_msgmax()
        if max_bytes is not None:
            try:
                self._set_max_bytes(max_bytes)
            except BaseException:
                if created:
                    msgctl(qid, IPC_RMID, NULL)
                self._closed = True
                raise
        if self._codec.unpickles:
            try:
                self._warn_if_shared()
            except BaseException:
                # The warning was turned into an error: undo this call.
                if created:
                    msgctl(qid, IPC_RMID, NULL)
                self._closed = True
                raise

    cdef str _open_error(self, int err, object key):
        if err == ENOSPC:
            return (
                "cannot create a queue: the system already has msgmni="
                f"{read_limit(KERNEL_PROC + 'msgmni')} queues "
                f"({KERNEL_PROC}msgmni); remove unused ones ('ipcs -q', "
                "'ipcrm') or raise it as root with 'sysctl kernel.msgmni=N'"
            )
        if err == EACCES:
            return f"permission denied for the queue with key {key}"
        if err == ENOENT:
            return f"no queue has key {key}"
        if err == EEXIST:
            return f"a queue with key {key} already exists"
        return f"cannot open the queue with key {key}: {os.strerror(err)}"

    cdef int _set_max_bytes(self, object max_bytes) except -1:
        cdef msqid_ds ds
        cdef int err

        self._stat(&ds)
        ds.msg_qbytes = max_bytes
        if msgctl(self._id, IPC_SET, &ds) == 0:
            return 0

        err = errno
        if err == EPERM:
            raise QueueError(
                err,
                f"max_bytes={max_bytes} is above the system limit msgmnb="
                f"{read_limit(KERNEL_PROC + 'msgmnb')} ({KERNEL_PROC}msgmnb),"
                " or this process does not own the queue; raising it needs "
                "CAP_SYS_RESOURCE, or as root 'sysctl kernel.msgmnb="
                f"{max_bytes}'",
            )
        raise_errno(err, f"cannot set max_bytes={max_bytes}: "
                    f"{os.strerror(err)}")

    cdef _warn_if_shared(self):
        cdef msqid_ds ds

        if msgctl(self._id, IPC_STAT, &ds) == 0 and ds.msg_perm.mode & 0o022:
            warnings.warn(
                f"queue {self._id} is writable by other users (mode "
                f"{ds.msg_perm.mode & 0o777:#o}) and uses pickle, which runs "
                "code chosen by whoever writes a message; use 'msgpack', "
                "'json' or 'raw' with untrusted writers",
                PickleSecurityWarning,
                # The caller's frame: compiled frames are not counted.
                stacklevel=1,
            )

    def __dealloc__(self):
        free(self._rbuf)
        free(self._sbuf)

    def __repr__(self):
        state = "closed" if self._closed else "open"
        return f"<ipcq.sysvmq.Queue key={self._key} id={self._id} {state}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        """Leave the block: :meth:`close`, which removes the queue."""
        if not self._closed:
            self.close()

    def __reduce__(self):
        raise TypeError(
            "a queue handle cannot be pickled; open the queue by key "
            "(or by id, for a private queue) in the other process"
        )

    @property
    def key(self):
        """The key the queue was opened with; 0 for a private queue."""
        return self._key

    @property
    def id(self):
        """The kernel's identifier of the queue (msqid)."""
        return self._id

    @property
    def serializer(self):
        """The serializer this handle encodes and decodes with."""
        return self._codec.serializer

    @property
    def closed(self):
        """True once :meth:`close` or :meth:`detach` was called."""
        return self._closed

    @property
    def max_bytes(self):
        """The queue's capacity in bytes (``msg_qbytes``)."""
        cdef msqid_ds ds
        self._stat(&ds)
        return ds.msg_qbytes

    @max_bytes.setter
    def max_bytes(self, value):
        check_max_bytes(value)
        self._set_max_bytes(value)

    # -- sending ----------------------------------------------------------

    def put(self, item, block=True, msg_type=1, pickle_protocol=None,
            timeout=None):
        """Put *item* into the queue as a message of type *msg_type*.

        *msg_type* is a positive C long that receivers select on.  With
        *block* true (the default), wait for room: forever if *timeout*
        is None, else at most *timeout* seconds, then raise
        :class:`queue.Full`.  With *block* false, raise queue.Full at once
        if the queue is full.
        """
        cdef long mtype = check_type(msg_type)
        cdef double deadline = wait_deadline(block, timeout)

        if self._closed:
            self._raise_closed()
        if not self._send_item(item, mtype, block, deadline, pickle_protocol):
            raise queue.Full

    def put_nowait(self, item, msg_type=1, pickle_protocol=None):
        """Put *item* without waiting: ``put(item, block=False)``."""
        return self.put(item, False, msg_type, pickle_protocol)

    def put_many(self, items, block=True, msg_type=1, pickle_protocol=None,
                 timeout=None):
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
        cdef long mtype = check_type(msg_type)
        cdef double deadline = wait_deadline(block, timeout)
        cdef Py_ssize_t count = 0

        if self._closed:
            self._raise_closed()
        try:
            for item in items:
                if not self._send_item(item, mtype, block, deadline,
                                       pickle_protocol):
                    break
                count += 1
        except BaseException as exc:
            # The items before the failing one were sent: say how many.
            exc.count = count
            raise
        return count

    @cython.final
    cdef inline int _send_item(self, object item, long mtype, bint block,
                               double deadline,
                               object pickle_protocol) except -1:
        """Encode and send one item; return 1 if sent, 0 if no room."""
        cdef object data
        cdef Py_ssize_t size

        data = encode_item(self._codec, item, pickle_protocol)

        # The common case in one system call, inlined into put() and
        # put_many(): bytes that fit the handle's free send buffer, and
        # room in the queue.  Any failure is left to the general path,
        # which tries again and explains it.
        if type(data) is bytes and not self._sbusy and self._sbuf != NULL:
            size = PyBytes_GET_SIZE(data)
            if size <= self._scap:
                (<long *>self._sbuf)[0] = mtype
                memcpy(self._sbuf + HEADER, PyBytes_AS_STRING(data), size)
                if msgsnd(self._id, self._sbuf, size, IPC_NOWAIT) == 0:
                    return 1
        return self._send_data(data, mtype, block, deadline)

    @cython.final
    cdef int _send_data(self, object data, long mtype, bint block,
                        double deadline) except -1:
        """Send one encoded item; return 1 if sent, 0 if no room."""
        cdef Py_buffer view
        cdef char *buf
        cdef Py_ssize_t size

        # msgsnd(2) takes the type and the text in one buffer, so the text
        # is copied once, behind the type.  bytes, what most serializers
        # return, needs no buffer request.
        if type(data) is bytes:
            size = PyBytes_GET_SIZE(data)
            buf = self._take_send_buffer(size)
            (<long *>buf)[0] = mtype
            memcpy(buf + HEADER, PyBytes_AS_STRING(data), size)
        else:
            self._codec.get_buffer(data, &view)
            try:
                size = view.len
                buf = self._take_send_buffer(size)
                (<long *>buf)[0] = mtype
                memcpy(buf + HEADER, view.buf, size)
            finally:
                PyBuffer_Release(&view)

        try:
            return self._send(buf, size, block, deadline)
        finally:
            self._give_send_buffer(buf)

    @cython.final
    cdef int _send(self, char *buf, Py_ssize_t size, bint block,
                   double deadline) except -1:
        cdef int rc, err
        cdef Nap nap

        if self._closed:
            self._raise_closed()
        rc = msgsnd(self._id, buf, size, IPC_NOWAIT)
        if rc == 0:
            return 1
        err = errno
        if err != EAGAIN:
            self._raise_io(err, "send to")
        self._check_fits(size)
        if not block:
            return 0

        if deadline < 0:
            while True:
                # Handlers of signals that came while the GIL was held run
                # now, not after the wait.
                # XXX: msgsnd(2) and msgrcv(2) cannot let signals in
                # atomically as ppoll(2) does, so one that lands between
                # this check and the call is handled when the call
                # returns.  Waiting in naps, as timed waits do, would
                # close that window at the cost of up to POLL_MAX latency.
                PyErr_CheckSignals()
                with nogil:
                    rc = msgsnd(self._id, buf, size, 0)
                    err = errno
                if rc == 0:
                    return 1
                self._send_failed(err)

        start_nap(&nap, deadline)
        try:
            while self._nap(&nap):
                rc = msgsnd(self._id, buf, size, IPC_NOWAIT)
                if rc == 0:
                    return 1
                self._send_failed(errno)
            return 0
        finally:
            end_nap(&nap)

    cdef int _send_failed(self, int err) except -1:
        if self._closed:
            self._raise_closed_while_waiting()
        if err == EINTR:
            after_eintr(self._retry)
        elif err != EAGAIN:
            self._raise_io(err, "send to")
        return 0

    cdef int _check_fits(self, Py_ssize_t size) except -1:
        # A message larger than the queue's byte capacity would wait
        # forever; msgsnd(2) only fails on size > msgmax.
        cdef msqid_ds ds

        self._stat(&ds)
        if <unsigned long>size > ds.msg_qbytes:
            raise QueueError(
                EMSGSIZE,
                f"message of {size} bytes can never fit in queue {self._id}, "
                f"whose capacity (max_bytes) is {ds.msg_qbytes} bytes",
            )
        return 0

    @cython.final
    cdef char *_take_send_buffer(self, Py_ssize_t size) except NULL:
        cdef char *buf

        if size > self._msgmax:
            self._msgmax = read_msgmax()
            if size > self._msgmax:
                raise QueueError(
                    EMSGSIZE,
                    f"message of {size} bytes is bigger than the "
                    f"system's {self._msgmax}-byte maximum (msgmax, "
                    f"{KERNEL_PROC}msgmax)",
                )
        # As for the receive buffer, after a fork.
        if self._sbusy and self._sgen != fork_generation():
            self._sbusy = False
        if not self._sbusy:
            if self._sbuf == NULL or self._scap < size:
                buf = <char *>malloc(HEADER + max(size, self._msgmax))
                if buf == NULL:
                    raise MemoryError()
                free(self._sbuf)
                self._sbuf = buf
                self._scap = max(size, self._msgmax)
            self._sbusy = True
            self._sgen = fork_generation()
            return self._sbuf

        buf = <char *>malloc(HEADER + size)
        if buf == NULL:
            raise MemoryError()
        return buf

    @cython.final
    cdef void _give_send_buffer(self, char *buf) noexcept:
        if buf == self._sbuf:
            self._sbusy = False
        else:
            free(buf)

    # -- receiving --------------------------------------------------------

    def get(self, block=True, msg_type=0, timeout=None):
        """Remove and return an item from the queue.

        *msg_type* 0 takes the first message; a positive one the first
        message of that type; a negative one the first message of the
        lowest type at most ``abs(msg_type)``.  With *block* true (the
        default), wait for a message: forever if *timeout* is None, else
        at most *timeout* seconds, then raise :class:`queue.Empty`.  With
        *block* false, raise queue.Empty at once if there is none.
        """
        cdef long mtype = to_long(msg_type, "msg_type")
        cdef Py_ssize_t size
        cdef object data

        # The common case in one system call, without the layers of the
        # general path: no deadline, a message already there that fits the
        # handle's free buffer.  The GIL is held from the receive to the
        # copy, so no other thread can use the buffer meanwhile.
        if (timeout is None and not self._closed and self._rbuf != NULL
                and not self._rbusy):
            if not (self._recv_waited and block):
                size = msgrcv(self._id, self._rbuf, self._rcap, mtype,
                              IPC_NOWAIT)
                if not block and size < 0 and errno == ENOMSG:
                    raise queue.Empty
            else:
                # The last receive had to wait, so this one waits in
                # msgrcv(2) at once, without the general path's layers.
                # After a signal whose handlers let the wait go on, or any
                # other failure (a message too long for the buffer, a
                # removed queue), the general path takes over; nothing was
                # taken from the queue.
                size = self._wait_receive(mtype)
            if size >= 0:
                data = PyBytes_FromStringAndSize(self._rbuf + HEADER, size)
                return decode_item(self._codec, data,
                                   (<long *>self._rbuf)[0], True)
        return self._get(block, mtype, timeout, False)

    def get_nowait(self, msg_type=0):
        """Get an item without waiting: ``get(block=False)``."""
        return self._get(False, to_long(msg_type, "msg_type"), None, False)

    def get_with_type(self, block=True, msg_type=0, timeout=None):
        """Like :meth:`get`, but return ``(item, msg_type)``."""
        return self._get(block, to_long(msg_type, "msg_type"), timeout, True)

    @cython.final
    cdef object _get(self, bint block, long mtype, object timeout,
                     bint with_type):
        cdef double deadline = wait_deadline(block, timeout)
        cdef long got_type = 0
        cdef object data
        cdef object item

        if self._closed:
            self._raise_closed()

        data = self._receive(mtype, block, deadline, &got_type)
        if data is None:
            raise queue.Empty
        item = decode_item(self._codec, data, got_type, True)
        if with_type:
            return item, got_type
        return item

    def get_many(self, max_items, block=True, msg_type=0, timeout=None):
        """Remove and return up to *max_items* items, as a list.

        Waits as :meth:`get` does for the first item only (raising
        :class:`queue.Empty` if none comes), then takes what else of
        *msg_type* is already there without waiting.  If a message cannot
        be decoded, :class:`ipcq.DecodeError` is raised with the items
        received before it in its ``items`` attribute, so none is lost; so
        does any exception raised midway (by a signal handler, say).
        """
        cdef Py_ssize_t limit = to_long(max_items, "max_items")
        cdef long mtype = to_long(msg_type, "msg_type")
        cdef double deadline = wait_deadline(block, timeout)
        cdef long got_type = 0
        cdef list items
        cdef object first
        cdef bytes data
        cdef char *buf
        cdef Py_ssize_t cap, size

        if limit < 1:
            raise QueueError(
                EINVAL, f"max_items must be at least 1, not {limit}"
            )
        if self._closed:
            self._raise_closed()

        first = self._receive(mtype, block, deadline, &got_type)
        if first is None:
            raise queue.Empty
        data = <bytes>first
        items = list_with_room(limit if limit < BATCH_ROOM else BATCH_ROOM)
        # The rest without waiting, into one buffer for the whole batch:
        # one system call each, straight from this loop while messages are
        # there.  The general path only explains a failure (a removed
        # queue, say), or finds that none is left after all.
        buf = self._take_receive_buffer(&cap)
        try:
            while True:
                list_push(items,
                          decode_item(self._codec, data, got_type, True))
                if PyList_GET_SIZE(items) >= limit:
                    return items
                size = msgrcv(self._id, buf, cap, mtype, IPC_NOWAIT)
                if size < 0:
                    if errno == ENOMSG:
                        return items
                    size = self._receive_into(buf, cap, mtype, False, 0)
                if size == -1:
                    return items
                if size == -2:
                    # Longer than this buffer (msgmax was raised since):
                    # the general path grows the buffer.
                    data = self._receive(mtype, False, 0, &got_type)
                    if data is None:
                        return items
                    continue
                self._recv_waited = False
                got_type = (<long *>buf)[0]
                data = <bytes>PyBytes_FromStringAndSize(buf + HEADER, size)
        except BaseException as exc:
            # The items before the failing one have left the queue: they
            # go with the exception (a DecodeError, or a signal handler's).
            exc.items = items
            raise
        finally:
            self._give_receive_buffer(buf)

    def get_into(self, buffer, block=True, msg_type=0, timeout=None):
        """Receive the next message's bytes into *buffer*, with no allocation.

        *buffer* is any writable contiguous buffer (bytearray, memoryview,
        numpy array).  A message longer than it raises QueueError
        (TOO_BIG_MESSAGE) and stays in the queue.  The serializer is not
        applied.  Returns ``(nbytes, msg_type)``; *msg_type* selects and
        waiting works as for :meth:`get`.  The kernel writes the type
        and the text together, so the text passes through this handle's
        buffer and is copied once into *buffer*.  The tuple is the one the
        last call returned, refilled, once the caller has let go of it: a
        loop that unpacks it allocates nothing (Python makes an int above
        256 on the fly, as for any int).
        """
        cdef Py_buffer view
        cdef long mtype = to_long(msg_type, "msg_type")
        cdef double deadline
        cdef char *buf
        cdef Py_ssize_t size
        cdef Py_ssize_t cap

        # The common case in one system call, as in get(): a bytearray,
        # written with the GIL held, so that nothing can resize it
        # meanwhile; no buffer request.  A message longer than it fails
        # with E2BIG, stays queued, and the general path says so.
        if (type(buffer) is bytearray and timeout is None
                and not self._closed and self._rbuf != NULL
                and not self._rbusy
                and not (self._recv_waited and block)):
            size = msgrcv(self._id, self._rbuf,
                          min(PyByteArray_GET_SIZE(buffer), self._rcap),
                          mtype, IPC_NOWAIT)
            if size >= 0:
                memcpy(PyByteArray_AS_STRING(buffer), self._rbuf + HEADER,
                       size)
                return self._into_result(size, (<long *>self._rbuf)[0])
            if not block and errno == ENOMSG:
                raise queue.Empty

        deadline = wait_deadline(block, timeout)
        if self._closed:
            self._raise_closed()
        get_writable_buffer(buffer, &view)
        try:
            buf = self._take_receive_buffer(&cap)
            try:
                size = self._receive_into(
                    buf, min(view.len, cap), mtype, block, deadline
                )
                if size == -2:
                    raise QueueError(
                        EMSGSIZE,
                        f"the next message in queue {self._id} is longer "
                        f"than the {view.len}-byte buffer; it stays in the "
                        "queue",
                    )
                if size >= 0:
                    memcpy(view.buf, buf + HEADER, size)
                    mtype = (<long *>buf)[0]
            finally:
                self._give_receive_buffer(buf)
        finally:
            PyBuffer_Release(&view)
        if size < 0:
            raise queue.Empty
        return self._into_result(size, mtype)

    @cython.final
    cdef inline object _into_result(self, Py_ssize_t size, long mtype):
        # The (nbytes, msg_type) of get_into(): the last call's tuple
        # again when the caller let go of it.
        self._last_into = pair_result(<PyObject *>self._last_into, size, mtype)
        return self._last_into

    @cython.final
    cdef object _receive(self, long mtype, bint block, double deadline,
                         long *got_type):
        """Receive one message as bytes, or None if none came in time."""
        cdef char *buf
        cdef Py_ssize_t size
        cdef Py_ssize_t cap

        while True:
            buf = self._take_receive_buffer(&cap)
            try:
                size = self._receive_into(buf, cap, mtype, block, deadline)
                if size == -1:
                    return None
                if size >= 0:
                    got_type[0] = (<long *>buf)[0]
                    # Exactly the message's size: a kept message holds no
                    # more memory than it needs.
                    return PyBytes_FromStringAndSize(buf + HEADER, size)
            finally:
                self._give_receive_buffer(buf)

            # E2BIG: the message is longer than the buffer, which was
            # sized for msgmax, so msgmax was raised since.  The message
            # stays queued; read it again with a larger buffer.
            self._msgmax = max(read_msgmax(), 2 * cap)

    @cython.final
    cdef Py_ssize_t _wait_receive(self, long mtype) except -2:
        """One waiting msgrcv(2) into the handle's free buffer.

        Returns the text's size, or -1 for the caller to go on to the
        general path.
        """
        cdef Py_ssize_t size
        cdef int err

        # A signal that came while this thread held the GIL: its handler
        # runs before the wait, as in _receive_into().
        PyErr_CheckSignals()
        self._rbusy = True
        self._rgen = fork_generation()
        with nogil:
            size = msgrcv(self._id, self._rbuf, self._rcap, mtype, 0)
            err = errno
        self._rbusy = False
        if size < 0 and err == EINTR and not self._closed:
            # As _receive_failed() would: run the handlers, then fail with
            # INTERRUPTED or let the general path wait again.
            after_eintr(self._retry)
        return size

    @cython.final
    cdef Py_ssize_t _receive_into(self, char *buf, Py_ssize_t cap,
                                  long mtype, bint block,
                                  double deadline) except -3:
        """Receive into *buf* (type, then at most *cap* bytes of text).

        Returns the text's size, -1 if no message came in time, or -2 if
        the message is longer than *cap* (E2BIG; it stays queued).
        """
        cdef Py_ssize_t size
        cdef int err
        cdef Nap nap

        # After an untimed receive that had to wait, the next one goes
        # straight to the waiting msgrcv(2): one system call, not a failed
        # try and then the wait, in a ping-pong of two processes.
        if not (block and deadline < 0 and self._recv_waited):
            size = msgrcv(self._id, buf, cap, mtype, IPC_NOWAIT)
            if size >= 0:
                self._recv_waited = False
                return size
            err = errno
            if err == E2BIG:
                return -2
            if err != ENOMSG:
                self._raise_io(err, "receive from")
            if not block:
                return -1

        if deadline < 0:
            while True:
                PyErr_CheckSignals()
                with nogil:
                    size = msgrcv(self._id, buf, cap, mtype, 0)
                    err = errno
                if size >= 0:
                    self._recv_waited = True
                    return size
                if self._receive_failed(err):
                    return -2

        start_nap(&nap, deadline)
        try:
            while self._nap(&nap):
                size = msgrcv(self._id, buf, cap, mtype, IPC_NOWAIT)
                if size >= 0:
                    return size
                if self._receive_failed(errno):
                    return -2
            return -1
        finally:
            end_nap(&nap)

    cdef int _receive_failed(self, int err) except -1:
        """Return 1 if the message is longer than the buffer, 0 to wait on."""
        if self._closed:
            self._raise_closed_while_waiting()
        if err == E2BIG:
            return 1
        if err == EINTR:
            after_eintr(self._retry)
        elif err != ENOMSG:
            self._raise_io(err, "receive from")
        return 0

    @cython.final
    cdef char *_take_receive_buffer(self, Py_ssize_t *cap) except NULL:
        """Return a buffer for a message of up to msgmax bytes, and its size.

        One receive buffer per queue, sized so that any message the kernel
        accepts fits.  While a thread waits with it, another thread
        receiving on the same handle gets one of its own.  Nothing here
        may release the GIL between the test of _rbusy and its setting.
        """
        cdef char *buf
        cdef Py_ssize_t size = self._msgmax
        cdef unsigned long gen = fork_generation()

        # Held by a thread that was waiting when another thread forked:
        # in the child that thread does not exist, and never gives it back.
        if self._rbusy and self._rgen != gen:
            self._rbusy = False
        if not self._rbusy:
            if self._rbuf == NULL or self._rcap < size:
                buf = <char *>malloc(HEADER + size)
                if buf == NULL:
                    raise MemoryError()
                free(self._rbuf)
                self._rbuf = buf
                self._rcap = size
            self._rbusy = True
            self._rgen = gen
            cap[0] = self._rcap
            return self._rbuf

        buf = <char *>malloc(HEADER + size)
        if buf == NULL:
            raise MemoryError()
        cap[0] = size
        return buf

    @cython.final
    cdef void _give_receive_buffer(self, char *buf) noexcept:
        if buf == self._rbuf:
            self._rbusy = False
        else:
            free(buf)

    # -- waiting ----------------------------------------------------------

    cdef int _nap(self, Nap *nap) except -1:
        """Sleep before the next try of a timed wait.

        Returns 0 once the deadline (CLOCK_MONOTONIC) has passed, else
        sleeps for the nap's delay or until the deadline, whichever comes
        first, doubles the delay up to POLL_MAX and returns 1.

        Signals stay blocked between the sleeps and are let in only by
        ppoll(2) while it sleeps, so a signal that arrives while this
        thread tries the queue still interrupts the next sleep: the Python
        handlers run, then the wait goes on or raises as for any
        interrupted wait.
        """
        cdef double left = nap.deadline - monotonic()
        cdef sigset_t blocked
        cdef timespec ts
        cdef int rc, err

        if not nap.masked:
            sigfillset(&blocked)
            # Faults must reach their handlers (faulthandler) at once.
            for signum in (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT):
                sigdelset(&blocked, signum)
            pthread_sigmask(SIG_BLOCK, &blocked, &nap.saved)
            nap.masked = True
            # Handlers of signals that came before the mask run now.
            PyErr_CheckSignals()

        if left <= 0:
            return 0
        fill_timespec(&ts, min(left, nap.delay))
        nap.delay = min(nap.delay * 2, POLL_MAX)

        with nogil:
            rc = ppoll(NULL, 0, &ts, &nap.saved)
            err = errno

        if self._closed:
            self._raise_closed_while_waiting()
        if rc < 0 and err == EINTR:
            after_eintr(self._retry)
        return 1

    # -- errors -----------------------------------------------------------

    cdef int _raise_closed(self) except -1:
        raise QueueError(EBADF, f"queue {self._id} is closed")

    cdef int _raise_closed_while_waiting(self) except -1:
        raise QueueError(EBADF, f"queue {self._id} was closed while waiting")

    cdef int _raise_io(self, int err, str action) except -1:
        # msgop(2): EIDRM when the queue is removed while a call waits,
        # EINVAL when the identifier no longer names a queue (the other
        # arguments are checked before the call), EACCES without read or
        # write permission.
        if err == EIDRM or err == EINVAL:
            raise_errno(EIDRM, f"queue {self._id} was removed from the system")
        if err == EACCES:
            raise_errno(err, f"permission denied to {action} queue {self._id}")
        raise_errno(
            err, f"cannot {action} queue {self._id}: {os.strerror(err)}"
        )

    # -- state ------------------------------------------------------------

    cdef int _stat(self, msqid_ds *ds) except -1:
        if self._closed:
            self._raise_closed()
        if msgctl(self._id, IPC_STAT, ds) < 0:
            self._raise_io(errno, "read the state of")
        return 0

    def qattr(self):
        """Return the queue's state as a dict.

        ``size`` (messages), ``max_bytes`` (capacity), as in ipcqueue, and
        ``bytes`` (bytes queued), ``mode``, ``uid``, ``gid``, ``cuid``,
        ``cgid``, ``last_send_pid``, ``last_receive_pid``,
        ``last_send_time``, ``last_receive_time``, ``last_change_time``.
        """
        cdef msqid_ds ds

        self._stat(&ds)
        return {
            "size": ds.msg_qnum,
            "max_bytes": ds.msg_qbytes,
            "bytes": ds.msg_cbytes,
            "mode": ds.msg_perm.mode & 0o777,
            "uid": ds.msg_perm.uid,
            "gid": ds.msg_perm.gid,
            "cuid": ds.msg_perm.cuid,
            "cgid": ds.msg_perm.cgid,
            "last_send_pid": ds.msg_lspid,
            "last_receive_pid": ds.msg_lrpid,
            "last_send_time": ds.msg_stime,
            "last_receive_time": ds.msg_rtime,
            "last_change_time": ds.msg_ctime,
        }

    def qsize(self):
        """Return the number of messages in the queue now."""
        cdef msqid_ds ds
        self._stat(&ds)
        return ds.msg_qnum

    def empty(self):
        """Return True if the queue holds no message now."""
        cdef msqid_ds ds
        self._stat(&ds)
        return ds.msg_qnum == 0

    def close(self):
        """Remove the queue from the system (IPC_RMID), as ipcqueue does.

        Every process's waiting calls on it fail at once; messages left in
        it are gone.  A second close raises QueueError with
        INVALID_DESCRIPTOR.  To stop using the queue without removing it,
        call :meth:`detach`.
        """
        cdef int err

        if self._closed:
            raise QueueError(EBADF, f"queue {self._id} is already closed")

        if msgctl(self._id, IPC_RMID, NULL) < 0:
            err = errno
            # EINVAL/EIDRM: already removed by someone else, which is what
            # close() was asked for.
            if err != EINVAL and err != EIDRM:
                self._raise_io(err, "remove")
        self._closed = True

    def detach(self):
        """Stop using the queue through this handle; the queue stays.

        A call waiting on this handle in another thread with a timeout
        raises INVALID_DESCRIPTOR within its next poll (2 ms at most).
        One waiting without a timeout is not woken: it sleeps in msgrcv(2)
        or msgsnd(2), which only a message, room, a signal or the queue's
        removal ends, and it completes when the message or the room comes.
        Waking it would take a signal sent to that thread, with a handler
        of ipcq's own in the process, or waits cut into polls like the
        timed ones; give such waits a timeout instead, or use close(),
        whose removal of the queue ends every wait at once.
        """
        if self._closed:
            raise QueueError(EBADF, f"queue {self._id} is already closed")
        self._closed = True


def remove(msqid):
    """Remove the queue whose identifier (not key) is *msqid*."""
    cdef int qid = msqid

    if msgctl(qid, IPC_RMID, NULL) == 0:
        return
    err = errno
    if err == EINVAL or err == EIDRM:
        raise_errno(ENOENT, f"no queue has id {qid}")
    if err == EPERM:
        raise_errno(err, f"permission denied to remove queue {qid}")
    raise_errno(err, f"cannot remove queue {qid}: {os.strerror(err)}")
