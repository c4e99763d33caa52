"""The contenders: ipcq, its peers and the C floor behind one interface.

A contender makes *channels*: one queue (or socket pair) from a sender to
a receiver.  The driver makes the channel; each process that uses it
opens an :class:`Endpoint` on it, whose ``send`` and ``recv`` are the
library's own bound methods, so that the timed loops call the library
directly and pay for no adapter.  A *link* is two channels, one each
way, for the ping-pong; pyzmq uses one PAIR connection for both ways.
"""

import importlib
import importlib.metadata
import os
import time
from typing import NamedTuple

from ipcq import posixmq, sysvmq

# The serializers of ipcq measured on objects.
IPCQ_SERIALIZERS = ("pickle", "msgpack", "json")


class Spec(NamedTuple):
    """What a channel must carry."""

    serializer: str  # 'raw', 'pickle', 'msgpack' or 'json'
    msgsize: int  # the largest message: a POSIX queue's mq_msgsize
    depth: int  # messages a POSIX queue holds: its mq_maxmsg


def _nothing():
    pass


class Endpoint(NamedTuple):
    """One process's end of a channel: the library's own methods."""

    send: object
    recv: object
    finish: object = _nothing  # flush and close what this end opened


class Link:
    """Two channels, one each way: the two sides of a ping-pong."""

    def __init__(self, contender, spec, registry):
        self._ping = contender.channel(spec, registry)
        try:
            self._pong = contender.channel(spec, registry)
        except BaseException:
            self._ping.close()
            raise

    def side(self, index):
        """Side 0 sends pings and receives pongs; side 1 the reverse."""
        ping = self._ping.endpoint("send" if index == 0 else "recv")
        pong = self._pong.endpoint("recv" if index == 0 else "send")

        def finish():
            ping.finish()
            pong.finish()

        if index == 0:
            return Endpoint(ping.send, pong.recv, finish)
        return Endpoint(pong.send, ping.recv, finish)

    def close(self):
        """Remove both channels."""
        try:
            self._ping.close()
        finally:
            self._pong.close()


class Contender:
    """A library (or the C floor) taking part in the benchmarks."""

    key = ""  # short id, as in --only
    label = ""  # as printed
    kind = None  # 'posix', 'sysv', or None for other transports
    # 'c', 'binding' (the bare binding), 'ref' (a reference), 'ipcq' or 'peer'
    family = "peer"
    serializers = ("raw",)  # what it can send
    module = None  # module whose import tells whether it is installed
    dist = None  # distribution name, for its version and install hint
    note = ""  # how it moves messages, for the documentation
    show_serializer = False  # name the serializer in row labels
    # Starts threads in the process that uses it.  Its put + get pairs
    # run in a child process, so that the driver, where every other
    # library's pairs run, never becomes a process that has had threads:
    # glibc's cancellable system calls cost more in one for good (see
    # docs/benchmarks.rst), which would tax every library after it.
    threads = False

    def missing(self):
        """None if usable here, else why not (one line)."""
        if self.module is None:
            return None
        try:
            importlib.import_module(self.module)
        except ImportError:
            return f"{self.label}: not installed (pip install {self.dist})"
        return None

    def version(self):
        """The installed version of the library, or None."""
        if self.dist is None:
            return None
        try:
            return importlib.metadata.version(self.dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    def label_for(self, serializer):
        """The row label for one serializer of this contender."""
        if self.show_serializer:
            return f"{self.label} ({serializer})"
        return self.label

    def prepare(self, registry):
        """Make ready what the contender needs for the run (a build, say);
        raise BenchError if it cannot take part here."""

    def channel(self, spec, registry):
        """A new channel carrying *spec*, made in the driver process."""
        raise NotImplementedError

    def link(self, spec, registry):
        """A new link (two ways) carrying *spec*."""
        return Link(self, spec, registry)


class _SameProcess:
    """A channel whose driver-side handle serves the driver process."""

    def __init__(self):
        self._pid = os.getpid()

    def _here(self):
        return os.getpid() == self._pid


# -- the C floor ---------------------------------------------------------------


class CFloor(Contender):
    """The C program floor.c: the system calls and nothing else."""

    family = "c"

    def __init__(self, kind):
        self.kind = kind
        self.key = f"c-{kind}"
        self.label = f"C {kind}"
        self.note = (
            "mq_send(3) / mq_receive(3)" if kind == "posix" else "msgsnd(2) / msgrcv(2)"
        )


class _BindingChannel:
    """A queue made as ipcq's channel makes it, used through the bare
    binding's Channel."""

    def __init__(self, binding, kind, spec, registry):
        self._binding = binding
        self._kind = kind
        raw = spec._replace(serializer="raw")
        if kind == "posix":
            self._ipcq = _IpcqPosixChannel(raw, registry)
            self._cap = spec.msgsize
        else:
            self._ipcq = _IpcqSysvChannel(raw, registry)
            # A receive buffer for any message the kernel takes, as
            # ipcq's is.
            self._cap = _msgmax()
        self._queue = self._ipcq._queue

    def endpoint(self, role):
        if self._kind == "sysv":
            ch = self._binding.Channel(True, self._queue.id, -1, self._cap)
            return Endpoint(ch.send, ch.recv)
        here = self._ipcq._here()
        q = self._queue if here else posixmq.Queue(self._ipcq._name, create=False)
        fd = q.fileno()
        # The same open file in O_NONBLOCK mode, for the tries that must
        # not wait, as ipcq opens it.
        nb_fd = os.open(f"/proc/self/fd/{fd}", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        ch = self._binding.Channel(False, fd, nb_fd, self._cap)

        def finish():
            os.close(nb_fd)
            if not here:
                q.close()

        return Endpoint(ch.send, ch.recv, finish)

    def close(self):
        self._ipcq.close()


class Binding(Contender):
    """binding.c: the least a Python binding that releases the GIL does.

    Built on the fly in :meth:`prepare`; see binding.c.
    """

    family = "binding"

    def __init__(self, kind):
        self.kind = kind
        self.key = f"binding-{kind}"
        self.label = f"bare binding {kind}"
        self.note = (
            "binding.c: a C extension making ipcq's system calls for a raw "
            "put and get, and nothing else"
        )
        self._module = None

    def prepare(self, registry):
        from ipcq.bench._floor import build_binding

        self._module = build_binding(registry)

    def channel(self, spec, registry):
        return _BindingChannel(self._module, self.kind, spec, registry)


class PickleAlone(Contender):
    """pickle.dumps and pickle.loads of the item, with no queue at all.

    With the C floor it bounds what any queue that pickles can reach: a
    put + get can cost no less than the system calls plus the pickling.
    """

    key = "pickle"
    label = "pickle alone, no queue"
    family = "ref"
    serializers = ("pickle",)
    note = "pickle.dumps(item, 1) then pickle.loads, in the same loop"


# -- ipcq ------------------------------------------------------------------------


class _IpcqPosixChannel(_SameProcess):
    def __init__(self, spec, registry):
        super().__init__()
        self._registry = registry
        self._serializer = spec.serializer
        self._name = registry.posix_name()
        self._queue = posixmq.Queue(
            self._name,
            spec.depth,
            spec.msgsize,
            spec.serializer,
            exclusive=True,
        )

    def endpoint(self, role):
        if self._here():
            q = self._queue
            return Endpoint(q.put, q.get)
        # Another process opens the queue by name, as real users do.
        q = posixmq.Queue(self._name, serializer=self._serializer, create=False)
        return Endpoint(q.put, q.get, q.close)

    def close(self):
        self._queue.close()
        self._registry.unlink_posix(self._name)


class _IpcqSysvChannel(_SameProcess):
    def __init__(self, spec, registry):
        super().__init__()
        self._registry = registry
        self._queue = sysvmq.Queue(None, None, spec.serializer)
        registry.add_sysv(self._queue.id)

    def endpoint(self, role):
        # A private queue is reached through the handle a child inherits.
        q = self._queue
        return Endpoint(q.put, q.get)

    def close(self):
        msqid = self._queue.id
        self._queue.detach()
        self._registry.remove_sysv(msqid)


class _Ipcq(Contender):
    """What both ipcq contenders share."""

    family = "ipcq"
    serializers = ("raw",) + IPCQ_SERIALIZERS
    dist = "ipcq"
    show_serializer = True

    def version(self):
        # The version of the code running, installed or not.
        import ipcq

        return ipcq.__version__


class IpcqPosix(_Ipcq):
    """ipcq.posixmq.Queue, with each serializer."""

    key = "ipcq-posix"
    label = "ipcq posix"
    kind = "posix"
    note = "this package, POSIX queues"

    def channel(self, spec, registry):
        return _IpcqPosixChannel(spec, registry)


class IpcqSysv(_Ipcq):
    """ipcq.sysvmq.Queue, with each serializer."""

    key = "ipcq-sysv"
    label = "ipcq sysv"
    kind = "sysv"
    note = "this package, System V queues"

    def channel(self, spec, registry):
        return _IpcqSysvChannel(spec, registry)


# -- posix_ipc and sysv_ipc --------------------------------------------------


class _PosixIpcChannel(_SameProcess):
    def __init__(self, spec, registry):
        import posix_ipc

        super().__init__()
        self._mod = posix_ipc
        self._registry = registry
        self._name = registry.posix_name()
        self._queue = posix_ipc.MessageQueue(
            self._name,
            posix_ipc.O_CREX,
            mode=0o600,
            max_messages=spec.depth,
            max_message_size=spec.msgsize,
        )

    def endpoint(self, role):
        q = self._queue if self._here() else self._mod.MessageQueue(self._name)
        return Endpoint(q.send, q.receive)

    def close(self):
        self._queue.close()
        self._registry.unlink_posix(self._name)


class _SysvIpcChannel(_SameProcess):
    def __init__(self, spec, registry):
        import sysv_ipc

        super().__init__()
        self._registry = registry
        # The receive buffer as large as the biggest message the kernel
        # takes (msgmax), as ipcq's and the C floor's are.
        self._queue = sysv_ipc.MessageQueue(
            None,
            sysv_ipc.IPC_CREX,
            mode=0o600,
            max_message_size=_msgmax(),
        )
        registry.add_sysv(self._queue.id)

    def endpoint(self, role):
        q = self._queue
        return Endpoint(q.send, q.receive)

    def close(self):
        self._registry.remove_sysv(self._queue.id)


class PosixIpc(Contender):
    """posix_ipc.MessageQueue: send() and receive()."""

    key = "posix_ipc"
    label = "posix_ipc"
    kind = "posix"
    module = dist = "posix_ipc"
    note = "C extension, POSIX queues, bytes only"

    def channel(self, spec, registry):
        return _PosixIpcChannel(spec, registry)


class SysvIpc(Contender):
    """sysv_ipc.MessageQueue: send() and receive()."""

    key = "sysv_ipc"
    label = "sysv_ipc"
    kind = "sysv"
    module = dist = "sysv_ipc"
    note = "C extension, System V queues, bytes only"

    def channel(self, spec, registry):
        return _SysvIpcChannel(spec, registry)


# -- ipcqueue ------------------------------------------------------------------


def _ipcqueue_serializer(name):
    from ipcqueue import serializers

    return {
        "raw": serializers.RawSerializer,
        "pickle": serializers.PickleSerializer,
    }[name]


class _IpcqueuePosixChannel(_SameProcess):
    def __init__(self, spec, registry):
        from ipcqueue import posixmq as ipcqueue_posix

        super().__init__()
        self._mod = ipcqueue_posix
        self._registry = registry
        self._spec = spec
        self._name = registry.posix_name()
        self._queue = ipcqueue_posix.Queue(
            self._name,
            spec.depth,
            spec.msgsize,
            _ipcqueue_serializer(spec.serializer),
        )

    def endpoint(self, role):
        if self._here():
            q = self._queue
            return Endpoint(q.put, q.get)
        # ipcqueue always opens with O_CREAT: this opens the queue.
        q = self._mod.Queue(
            self._name,
            self._spec.depth,
            self._spec.msgsize,
            _ipcqueue_serializer(self._spec.serializer),
        )
        return Endpoint(q.put, q.get, q.close)

    def close(self):
        self._queue.close()
        self._registry.unlink_posix(self._name)


class _IpcqueueSysvChannel(_SameProcess):
    def __init__(self, spec, registry):
        from ipcqueue import sysvmq as ipcqueue_sysv

        super().__init__()
        self._registry = registry
        # Key 0 is IPC_PRIVATE: a new queue.
        self._queue = ipcqueue_sysv.Queue(
            0, None, _ipcqueue_serializer(spec.serializer)
        )
        self._id = self._queue._queue_id
        registry.add_sysv(self._id)

    def endpoint(self, role):
        q = self._queue
        return Endpoint(q.put, q.get)

    def close(self):
        # ipcqueue's close() removes the queue (IPC_RMID).
        self._registry.remove_sysv(self._id)


class IpcqueuePosix(Contender):
    """ipcqueue.posixmq.Queue, raw or with its default pickle."""

    key = "ipcqueue-posix"
    label = "ipcqueue posix"
    kind = "posix"
    serializers = ("raw", "pickle")
    module = "ipcqueue.posixmq"
    dist = "ipcqueue"
    note = "cffi, POSIX queues; pickle (protocol 1) or raw"
    show_serializer = True

    def channel(self, spec, registry):
        return _IpcqueuePosixChannel(spec, registry)


class IpcqueueSysv(IpcqueuePosix):
    """ipcqueue.sysvmq.Queue, raw or with its default pickle."""

    key = "ipcqueue-sysv"
    label = "ipcqueue sysv"
    kind = "sysv"
    module = "ipcqueue.sysvmq"
    note = "cffi, System V queues; pickle (protocol 1) or raw"

    def channel(self, spec, registry):
        return _IpcqueueSysvChannel(spec, registry)


# -- other transports ----------------------------------------------------------


class _FasterFifoChannel:
    def __init__(self, spec, registry):
        import faster_fifo

        if spec.serializer == "raw":
            # Bytes as they are, as the raw serializers of the others.
            self._queue = faster_fifo.Queue(loads=bytes, dumps=bytes)
        else:
            self._queue = faster_fifo.Queue()

    def endpoint(self, role):
        q = self._queue
        return Endpoint(q.put, q.get)

    def close(self):
        self._queue.close()


class FasterFifo(Contender):
    """faster_fifo.Queue, raw (bytes as they are) or pickling."""

    key = "faster-fifo"
    label = "faster-fifo"
    serializers = ("raw", "pickle")
    module = "faster_fifo"
    dist = "faster-fifo"
    note = "shared memory ring with a process-shared mutex (fork only)"

    def channel(self, spec, registry):
        return _FasterFifoChannel(spec, registry)


class _MpQueueChannel(_SameProcess):
    def __init__(self, spec, registry):
        import multiprocessing

        super().__init__()
        self._queue = multiprocessing.get_context("fork").Queue()

    def endpoint(self, role):
        q = self._queue
        if self._here() or role != "send":
            return Endpoint(q.put, q.get)

        def flush():
            # put() hands items to a feeder thread; they are sent only
            # once it has written them all to the pipe.
            q.close()
            q.join_thread()

        return Endpoint(q.put, q.get, flush)

    def close(self):
        self._queue.close()
        self._queue.join_thread()


class MpQueue(Contender):
    """multiprocessing.Queue of the fork context."""

    threads = True
    key = "mp.Queue"
    label = "multiprocessing.Queue"
    serializers = ("raw", "pickle")
    note = "pipe and feeder thread; always pickles, bytes too"

    def channel(self, spec, registry):
        return _MpQueueChannel(spec, registry)


class _ZmqChannel:
    def __init__(self, spec, registry):
        self._path = registry.path("zmq")
        self._objects = spec.serializer != "raw"

    def _socket(self, context, bind):
        import zmq

        sock = context.socket(zmq.PAIR)
        if bind:
            sock.bind("ipc://" + self._path)
            return sock
        # A PAIR socket does not reconnect: connecting before the other
        # side has bound (its socket file exists) would never link them.
        deadline = time.monotonic() + 30
        while not os.path.exists(self._path):
            if time.monotonic() > deadline:
                sock.close(linger=0)
                raise TimeoutError(f"nothing bound {self._path} in 30 s")
            time.sleep(0.0005)
        sock.connect("ipc://" + self._path)
        return sock

    def _methods(self, sock):
        if self._objects:
            return sock.send_pyobj, sock.recv_pyobj
        return sock.send, sock.recv

    def endpoint(self, role):
        import zmq

        context = zmq.Context()
        if role == "both":
            sender = self._socket(context, True)
            receiver = self._socket(context, False)

            def finish():
                sender.close(linger=0)
                receiver.close(linger=0)
                context.term()

            return Endpoint(
                self._methods(sender)[0], self._methods(receiver)[1], finish
            )
        sock = self._socket(context, role == "send")
        send, recv = self._methods(sock)
        return Endpoint(
            send, recv, _zmq_finisher(context, sock, last_to_send=role == "send")
        )

    def bidirectional(self, index):
        import zmq

        context = zmq.Context()
        sock = self._socket(context, index == 0)
        send, recv = self._methods(sock)
        # Side 1 (the echo) sends the last message.
        return Endpoint(
            send, recv, _zmq_finisher(context, sock, last_to_send=index == 1)
        )

    def close(self):
        pass


def _zmq_finisher(context, sock, last_to_send):
    """How one end of a PAIR connection closes without losing messages.

    libzmq drops what a receiver has not yet read when its peer
    disconnects, so the side that sent the last message waits for the
    other's acknowledgement (up to 30 s) before it closes; the other side
    then waits briefly for a goodbye, so that the acknowledgement is not
    lost the same way.
    """

    def finish():
        if last_to_send:
            if not sock.poll(30_000):
                raise TimeoutError("pyzmq: no acknowledgement in 30 s")
            sock.recv()
            sock.send(b"bye")
        else:
            sock.send(b"ack")
            sock.poll(200)
        sock.close(linger=1000)
        context.term()

    return finish


class _ZmqLink:
    def __init__(self, spec, registry):
        self._channel = _ZmqChannel(spec, registry)

    def side(self, index):
        return self._channel.bidirectional(index)

    def close(self):
        pass


class Zmq(Contender):
    """pyzmq PAIR sockets over ipc://."""

    threads = True
    key = "pyzmq"
    label = "pyzmq PAIR"
    serializers = ("raw", "pickle")
    module = "zmq"
    dist = "pyzmq"
    note = "ipc:// (Unix socket) PAIR sockets, I/O threads; send_pyobj"

    def channel(self, spec, registry):
        return _ZmqChannel(spec, registry)

    def link(self, spec, registry):
        return _ZmqLink(spec, registry)


def _msgmax():
    try:
        with open("/proc/sys/kernel/msgmax") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 8192


def all_contenders():
    """Every contender: the references first, then ipcq, then the peers."""
    return [
        CFloor("posix"),
        CFloor("sysv"),
        Binding("posix"),
        Binding("sysv"),
        PickleAlone(),
        IpcqPosix(),
        IpcqSysv(),
        PosixIpc(),
        SysvIpc(),
        IpcqueuePosix(),
        IpcqueueSysv(),
        FasterFifo(),
        MpQueue(),
        Zmq(),
    ]
