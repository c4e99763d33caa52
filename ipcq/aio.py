"""asyncio for ipcq queues: ``await aq.get()``, ``await aq.put(item)``.

``AsyncQueue(q)`` wraps an open :class:`ipcq.posixmq.Queue` or
:class:`ipcq.sysvmq.Queue` and returns an :class:`AsyncPosixQueue` or an
:class:`AsyncSysvQueue`.

A POSIX queue has a descriptor that the kernel reports readable while a
message is there and writable while there is room, so a waiting call is a
reader or writer callback on the event loop followed by a non-blocking
receive or send: no thread and no polling.  A System V queue has no
descriptor, so a waiting call runs the blocking system call in a thread,
outside the event loop.

Timeouts raise :class:`queue.Empty` and :class:`queue.Full`, as the
queues' own methods do.  A message that was taken for a waiter which was
cancelled in the meantime is kept and handed to the next ``get``.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import math
import queue
import signal
import threading
from typing import Any, TypeVar, Union, overload

from ipcq import posixmq, sysvmq
from ipcq._common import DecodeError, QueueError

__all__ = ["AsyncPosixQueue", "AsyncQueue", "AsyncSysvQueue"]

# A message held for the next get: (item, priority or msg_type), or the
# DecodeError that stands for a message the serializer could not decode.
_Entry = Union[tuple[Any, int], DecodeError]
_Got = asyncio.Future[tuple[Any, int]]
_Put = asyncio.Future[None]
_T = TypeVar("_T")
_A = TypeVar("_A", bound="AsyncQueue")


def _check_timeout(timeout: float | None) -> None:
    """Reject the timeouts that the queues' own methods reject."""
    if timeout is None:
        return
    if isinstance(timeout, (str, bytes)):
        raise TypeError(
            f"timeout must be a number or None, not {type(timeout).__name__}"
        )
    if math.isnan(timeout) or timeout < 0:
        raise QueueError(
            errno.EINVAL,
            f"timeout must be a non-negative number, not {timeout!r}",
        )


def _expire(fut: asyncio.Future[Any], exc_type: type[Exception]) -> None:
    if not fut.done():
        fut.set_exception(exc_type())


def _settle(fut: _Got, entry: _Entry) -> None:
    if isinstance(entry, BaseException):
        fut.set_exception(entry)
    else:
        fut.set_result(entry)


def _unwrap(entry: _Entry) -> tuple[Any, int]:
    if isinstance(entry, BaseException):
        raise entry
    return entry


class AsyncQueue:
    """An asyncio view of a POSIX or System V queue.

    ``AsyncQueue(queue)``

    Wrapping an :class:`ipcq.posixmq.Queue` returns an
    :class:`AsyncPosixQueue`, and wrapping an :class:`ipcq.sysvmq.Queue`
    an :class:`AsyncSysvQueue`.  The wrapper belongs to one event loop at
    a time (the one running when a call first has to wait).

    ``async for item in aq`` gets items until :meth:`close` is called;
    ``async with aq`` closes the wrapper and the queue at the end of the
    block, as the queue's own context manager does.
    """

    _queue: Any

    @overload
    def __new__(cls, queue: posixmq.Queue) -> AsyncPosixQueue: ...

    @overload
    def __new__(cls, queue: sysvmq.Queue) -> AsyncSysvQueue: ...

    def __new__(cls, queue: Any) -> Any:
        if cls is AsyncQueue:
            if isinstance(queue, posixmq.Queue):
                cls = AsyncPosixQueue
            elif isinstance(queue, sysvmq.Queue):
                cls = AsyncSysvQueue
            else:
                raise TypeError(
                    "AsyncQueue wraps an ipcq.posixmq.Queue or an "
                    f"ipcq.sysvmq.Queue, not {type(queue).__name__}"
                )
        return object.__new__(cls)

    # No __init__ here: each subclass has its own, so that type checkers
    # take the return type of AsyncQueue(q) from __new__.
    def _setup(self, queue: Any) -> None:
        if queue.closed:
            raise QueueError(errno.EBADF, f"cannot wrap a closed queue: {queue!r}")
        self._queue = queue
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._stash: collections.deque[_Entry] = collections.deque()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self._queue!r} {state}>"

    @property
    def queue(self) -> Any:
        """The wrapped queue."""
        return self._queue

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def qsize(self) -> int:
        """Return the number of messages in the queue and held for a get."""
        return int(self._queue.qsize()) + len(self._stash)

    def empty(self) -> bool:
        """Return True if no message is in the queue or held for a get."""
        return not self._stash and bool(self._queue.empty())

    # -- lifetime ---------------------------------------------------------

    def close(self) -> None:
        """Close the wrapper and the queue, as ``queue.close()`` would.

        Calls waiting on this wrapper fail with QueueError
        (INVALID_DESCRIPTOR).  Closing twice raises the same error.
        """
        self._check_open()
        self._closed = True
        self._fail_waiters(
            QueueError(errno.EBADF, f"{self._queue!r} was closed while waiting")
        )
        self._release(close=True)

    def _fail_waiters(self, exc: QueueError) -> None:
        raise NotImplementedError

    def _release(self, close: bool) -> None:
        raise NotImplementedError

    def _has_waiters(self) -> bool:
        raise NotImplementedError

    async def __aenter__(self: _A) -> _A:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if not self._closed:
            self.close()

    def __aiter__(self: _A) -> _A:
        return self

    async def __anext__(self) -> Any:
        if self._closed:
            raise StopAsyncIteration
        try:
            item, _ = await self._get_entry(True, None, 0)
        except QueueError as exc:
            if self._closed and exc.errno == errno.EBADF:
                raise StopAsyncIteration from None
            raise
        return item

    async def _get_entry(
        self, block: bool, timeout: float | None, selector: int
    ) -> tuple[Any, int]:
        raise NotImplementedError

    # -- shared helpers ---------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise QueueError(errno.EBADF, f"{self!r} is closed")

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None and self._has_waiters():
                raise RuntimeError(f"{self!r} has calls waiting in another event loop")
            self._loop = loop
        return loop

    async def _wait(
        self,
        fut: asyncio.Future[_T],
        waiters: collections.deque[asyncio.Future[_T]],
        timeout: float | None,
        exc_type: type[Exception],
    ) -> _T:
        """Wait for *fut*, which *waiters* holds until it is served.

        A message set on *fut* just before the waiting task was cancelled
        goes back to the wrapper, for the next get.
        """
        handle = None
        if timeout is not None:
            handle = fut.get_loop().call_later(timeout, _expire, fut, exc_type)
        try:
            return await fut
        except asyncio.CancelledError:
            if exc_type is queue.Empty:
                self._recover(fut)
            raise
        finally:
            if handle is not None:
                handle.cancel()
            try:
                waiters.remove(fut)
            except ValueError:
                pass
            self._after_wait()

    def _recover(self, fut: asyncio.Future[Any]) -> None:
        if not fut.done() or fut.cancelled():
            return
        exc = fut.exception()
        if exc is None:
            self._keep(fut.result())
        elif isinstance(exc, DecodeError):
            self._keep(exc)

    def _keep(self, entry: _Entry) -> None:
        raise NotImplementedError

    def _after_wait(self) -> None:
        pass


class AsyncPosixQueue(AsyncQueue):
    """asyncio methods for an :class:`ipcq.posixmq.Queue`.

    Waiting calls are served in the order they started: a reader (or
    writer) callback on the queue's descriptor receives (or sends) for
    the first waiter, without blocking.  When another process takes the
    message first, the call simply waits again.

    The queue must be closed through the wrapper (:meth:`AsyncQueue.close`,
    or ``async with``), which first takes its descriptor off the event loop.
    """

    _queue: posixmq.Queue

    def __init__(self, queue: posixmq.Queue) -> None:
        self._setup(queue)
        self._fd: int = queue.fileno()
        self._getters: collections.deque[_Got] = collections.deque()
        self._putters: collections.deque[_Put] = collections.deque()
        self._pending_puts: dict[_Put, tuple[Any, int, Any]] = {}
        self._reading = False
        self._writing = False

    # -- receiving --------------------------------------------------------

    async def get(self, *, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return an item, waiting for one if need be.

        Messages of higher priority come first.  *timeout* (seconds)
        bounds the wait and raises :class:`queue.Empty`; *block* False
        raises queue.Empty at once if no message is there.
        """
        item, _ = await self._get_entry(block, timeout, 0)
        return item

    async def get_with_priority(
        self, *, block: bool = True, timeout: float | None = None
    ) -> tuple[Any, int]:
        """Like :meth:`get`, but return ``(item, priority)``."""
        return await self._get_entry(block, timeout, 0)

    def get_nowait(self) -> Any:
        """Return an item if one is there now, else raise queue.Empty."""
        item, _ = self._get_now()
        return item

    def _get_now(self) -> tuple[Any, int]:
        self._check_open()
        if self._stash:
            return _unwrap(self._stash.popleft())
        if any(not fut.done() for fut in self._getters):
            # Earlier calls are waiting for the next message.
            raise queue.Empty
        return self._queue.get_with_priority(False)

    async def _get_entry(
        self, block: bool, timeout: float | None, selector: int
    ) -> tuple[Any, int]:
        if block:
            _check_timeout(timeout)
        try:
            return self._get_now()
        except queue.Empty:
            if not block or timeout == 0:
                raise

        fut = self._running_loop().create_future()
        self._getters.append(fut)
        self._start_reading()
        return await self._wait(fut, self._getters, timeout, queue.Empty)

    def _on_readable(self) -> None:
        getters = self._getters
        while getters:
            fut = getters[0]
            if fut.done():
                getters.popleft()
                continue
            try:
                entry: _Entry = self._queue.get_with_priority(False)
            except queue.Empty:
                # Another reader took the message: wait for the next.
                return
            except DecodeError as exc:
                entry = exc
            except Exception as exc:
                getters.popleft()
                fut.set_exception(exc)
                continue
            getters.popleft()
            _settle(fut, entry)
        self._stop_reading()

    def _keep(self, entry: _Entry) -> None:
        # The message left the queue before the oldest message held here
        # could have: it goes first.
        for fut in self._getters:
            if not fut.done():
                _settle(fut, entry)
                return
        self._stash.appendleft(entry)

    def _start_reading(self) -> None:
        if not self._reading:
            assert self._loop is not None
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            assert self._loop is not None
            self._loop.remove_reader(self._fd)
            self._reading = False

    # -- sending ----------------------------------------------------------

    async def put(
        self,
        item: Any,
        *,
        block: bool = True,
        timeout: float | None = None,
        priority: int = 0,
        pickle_protocol: int | None = None,
    ) -> None:
        """Put *item* into the queue, waiting for room if need be.

        *priority* (0 to 32767) and *pickle_protocol* are as for
        :meth:`ipcq.posixmq.Queue.put`.  *timeout* (seconds) bounds the
        wait and raises :class:`queue.Full`; *block* False raises
        queue.Full at once if the queue is full.  A put cancelled while
        it waits sends nothing.
        """
        if block:
            _check_timeout(timeout)
        try:
            self._put_now(item, priority, pickle_protocol)
            return
        except queue.Full:
            if not block or timeout == 0:
                raise

        fut = self._running_loop().create_future()
        self._putters.append(fut)
        self._pending_puts[fut] = (item, priority, pickle_protocol)
        self._start_writing()
        await self._wait(fut, self._putters, timeout, queue.Full)

    def put_nowait(
        self, item: Any, priority: int = 0, pickle_protocol: int | None = None
    ) -> None:
        """Put *item* if there is room now, else raise queue.Full."""
        self._put_now(item, priority, pickle_protocol)

    def _put_now(self, item: Any, priority: int, pickle_protocol: int | None) -> None:
        self._check_open()
        if any(not fut.done() for fut in self._putters):
            # Earlier calls are waiting for room: this one queues behind.
            raise queue.Full
        self._queue.put_nowait(item, priority, pickle_protocol)

    def _on_writable(self) -> None:
        putters = self._putters
        while putters:
            fut = putters[0]
            if fut.done():
                putters.popleft()
                self._pending_puts.pop(fut, None)
                continue
            item, priority, protocol = self._pending_puts[fut]
            try:
                self._queue.put_nowait(item, priority, protocol)
            except queue.Full:
                return
            except Exception as exc:
                putters.popleft()
                del self._pending_puts[fut]
                fut.set_exception(exc)
                continue
            putters.popleft()
            del self._pending_puts[fut]
            fut.set_result(None)
        self._stop_writing()

    def _start_writing(self) -> None:
        if not self._writing:
            assert self._loop is not None
            self._loop.add_writer(self._fd, self._on_writable)
            self._writing = True

    def _stop_writing(self) -> None:
        if self._writing:
            assert self._loop is not None
            self._loop.remove_writer(self._fd)
            self._writing = False

    # -- state ------------------------------------------------------------

    def full(self) -> bool:
        """Return True if the queue holds its ``maxsize`` messages now."""
        return bool(self._queue.full())

    def _has_waiters(self) -> bool:
        return any(not f.done() for f in self._futures())

    def _futures(self) -> list[asyncio.Future[Any]]:
        return [*self._getters, *self._putters]

    def _after_wait(self) -> None:
        # Take the descriptor off the loop as soon as nobody waits on it.
        if self._reading and not self._getters:
            self._stop_reading()
        if self._writing and not self._putters:
            self._stop_writing()

    def _fail_waiters(self, exc: QueueError) -> None:
        for fut in self._futures():
            if not fut.done():
                fut.set_exception(exc)
        self._getters.clear()
        self._putters.clear()
        self._pending_puts.clear()

    def _release(self, close: bool) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            self._stop_reading()
            self._stop_writing()
        self._reading = self._writing = False
        if not close or self._queue.closed:
            return
        # Messages held for a get go back to the queue rather than being
        # dropped with the handle.  XXX: one that no longer fits (the
        # queue filled up meanwhile) is lost; keeping it would need a
        # blocking put at close time.
        while self._stash:
            entry = self._stash.pop()
            if isinstance(entry, tuple):
                try:
                    self._queue.put_nowait(entry[0], entry[1])
                except (queue.Full, QueueError, ValueError, TypeError):
                    pass
        self._queue.close()


def _block_signals() -> None:
    # Signals go to the main thread, whose handlers (and event loop) expect
    # them; a worker blocked in msgrcv(2) then never sees EINTR.
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())


def _matches(selector: int, msg_type: int) -> bool:
    """Whether a message of *msg_type* answers a get with *selector*."""
    if selector == 0:
        return True
    if selector > 0:
        return msg_type == selector
    return msg_type <= -selector


class AsyncSysvQueue(AsyncQueue):
    """asyncio methods for an :class:`ipcq.sysvmq.Queue`.

    The event loop never blocks: a get that has to wait hands the blocking
    msgrcv(2) to a thread, one per *msg_type* being waited for, which
    serves the waiting gets of that type in the order they started.  A
    put that has to wait runs in a thread of its own.

    Two System V facts shape this.  A thread blocked in msgrcv(2) cannot
    be called back: after its waiter timed out or was cancelled it goes on
    waiting, and the message it then receives is held for the next get
    (or put back into the queue if the wrapper was detached or its loop
    closed).  And a put cannot be taken back once its thread started: a
    put cancelled while it waits for room still sends the message when
    room appears, unless the queue is closed first.  A put with a timeout
    waits in its thread with the queue's own timed put.
    """

    _queue: sysvmq.Queue

    def __init__(self, queue: sysvmq.Queue) -> None:
        self._setup(queue)
        self._getters: dict[int, collections.deque[_Got]] = {}
        self._receiving: set[int] = set()
        self._putters: collections.deque[_Put] = collections.deque()
        self._detached = False
        # Threads that still use the queue, and callbacks they scheduled;
        # detach() leaves the queue to its threads until the count is 0.
        self._lock = threading.Lock()
        self._busy = 0
        self._released = False

    # -- receiving --------------------------------------------------------

    async def get(
        self, msg_type: int = 0, *, block: bool = True, timeout: float | None = None
    ) -> Any:
        """Remove and return an item, waiting for one if need be.

        *msg_type* selects as in :meth:`ipcq.sysvmq.Queue.get`: 0 the
        first message, a positive type the first of that type, a negative
        one the first of the lowest type up to its absolute value.
        *timeout* (seconds) bounds the wait and raises :class:`queue.Empty`;
        *block* False raises queue.Empty at once if no message is there.
        """
        item, _ = await self._get_entry(block, timeout, msg_type)
        return item

    async def get_with_type(
        self, msg_type: int = 0, *, block: bool = True, timeout: float | None = None
    ) -> tuple[Any, int]:
        """Like :meth:`get`, but return ``(item, msg_type)``."""
        return await self._get_entry(block, timeout, msg_type)

    def get_nowait(self, msg_type: int = 0) -> Any:
        """Return an item if one is there now, else raise queue.Empty."""
        item, _ = self._get_now(msg_type)
        return item

    def _get_now(self, selector: int) -> tuple[Any, int]:
        self._check_open()
        entry = self._take_held(selector)
        if entry is not None:
            return _unwrap(entry)
        if selector in self._receiving:
            # A thread is already receiving this type for earlier calls.
            raise queue.Empty
        return self._queue.get_with_type(False, selector)

    async def _get_entry(
        self, block: bool, timeout: float | None, selector: int
    ) -> tuple[Any, int]:
        if block:
            _check_timeout(timeout)
        try:
            return self._get_now(selector)
        except queue.Empty:
            if not block or timeout == 0:
                raise

        loop = self._running_loop()
        fut = loop.create_future()
        waiters = self._getters.setdefault(selector, collections.deque())
        waiters.append(fut)
        if selector not in self._receiving:
            self._start_receiver(loop, selector)
        return await self._wait(fut, waiters, timeout, queue.Empty)

    def _take_held(self, selector: int) -> _Entry | None:
        best = None
        for i, entry in enumerate(self._stash):
            msg_type = self._type_of(entry)
            if _matches(selector, msg_type):
                if selector >= 0:
                    best = i
                    break
                if best is None or msg_type < self._type_of(self._stash[best]):
                    best = i
        if best is None:
            return None
        entry = self._stash[best]
        del self._stash[best]
        return entry

    @staticmethod
    def _type_of(entry: _Entry) -> int:
        if isinstance(entry, DecodeError):
            return entry.msg_type or 0
        return entry[1]

    def _start_receiver(self, loop: asyncio.AbstractEventLoop, selector: int) -> None:
        self._receiving.add(selector)
        with self._lock:
            self._busy += 1
        threading.Thread(
            target=self._receive_in_thread,
            args=(loop, selector),
            name=f"ipcq-sysv-get-{self._queue.id}-{selector}",
            daemon=True,
        ).start()

    def _receive_in_thread(
        self, loop: asyncio.AbstractEventLoop, selector: int
    ) -> None:
        _block_signals()
        while True:
            try:
                entry: _Entry | BaseException = self._queue.get_with_type(
                    True, selector
                )
            except InterruptedError:
                continue
            except BaseException as exc:
                entry = exc
            break
        try:
            loop.call_soon_threadsafe(self._received, selector, entry)
        except RuntimeError:
            # The loop is closed: nobody will get this message here, so it
            # goes back into the queue.
            self._put_back(entry)
            self._done_with_queue()

    def _received(self, selector: int, entry: _Entry | BaseException) -> None:
        """Hand what a receiving thread got to the first waiting get."""
        self._receiving.discard(selector)
        try:
            if self._closed:
                # Detached: the message goes back to the queue (see
                # _release for an undecodable one).  Closed: the queue is
                # gone, and the message with it.
                if self._detached and isinstance(entry, tuple):
                    self._put_back_later(entry)
                return
            waiters = self._getters.get(selector, ())
            if not isinstance(entry, (tuple, DecodeError)):
                # The queue failed (closed, removed, no permission): every
                # get waiting for this type gets the error.
                for fut in waiters:
                    if not fut.done():
                        fut.set_exception(entry)
                return
            # The gets that asked for this type come first.
            for fut in waiters:
                if not fut.done():
                    _settle(fut, entry)
                    break
            else:
                self._keep(entry)
            self._serve(selector)
        finally:
            self._done_with_queue()

    def _serve(self, selector: int) -> None:
        """Give waiting gets of *selector* what is there; wait for the rest."""
        waiters = self._getters.get(selector)
        if not waiters:
            return
        for fut in waiters:
            if fut.done():
                continue
            try:
                entry: _Entry = self._queue.get_with_type(False, selector)
            except queue.Empty:
                assert self._loop is not None
                self._start_receiver(self._loop, selector)
                return
            except DecodeError as exc:
                entry = exc
            except Exception as exc:
                fut.set_exception(exc)
                continue
            _settle(fut, entry)

    def _keep(self, entry: _Entry) -> None:
        msg_type = self._type_of(entry)
        for selector, waiters in self._getters.items():
            if _matches(selector, msg_type):
                for fut in waiters:
                    if not fut.done():
                        _settle(fut, entry)
                        return
        self._stash.append(entry)

    # -- sending ----------------------------------------------------------

    async def put(
        self,
        item: Any,
        msg_type: int = 1,
        *,
        block: bool = True,
        timeout: float | None = None,
        pickle_protocol: int | None = None,
    ) -> None:
        """Put *item* as a message of type *msg_type*, waiting for room.

        *msg_type* and *pickle_protocol* are as for
        :meth:`ipcq.sysvmq.Queue.put`.  *timeout* (seconds) bounds the
        wait and raises :class:`queue.Full`; *block* False raises
        queue.Full at once if the queue is full.  See the class notes on
        cancelling a put that waits.
        """
        if block:
            _check_timeout(timeout)
        try:
            self._put_now(item, msg_type, pickle_protocol)
            return
        except queue.Full:
            if not block or timeout == 0:
                raise

        loop = self._running_loop()
        fut = loop.create_future()
        self._putters.append(fut)
        with self._lock:
            self._busy += 1
        threading.Thread(
            target=self._put_in_thread,
            args=(loop, fut, item, msg_type, pickle_protocol, timeout),
            name=f"ipcq-sysv-put-{self._queue.id}",
            daemon=True,
        ).start()
        await self._wait(fut, self._putters, None, queue.Full)

    def put_nowait(
        self, item: Any, msg_type: int = 1, pickle_protocol: int | None = None
    ) -> None:
        """Put *item* if there is room now, else raise queue.Full."""
        self._put_now(item, msg_type, pickle_protocol)

    def _put_now(self, item: Any, msg_type: int, pickle_protocol: int | None) -> None:
        self._check_open()
        if any(not fut.done() for fut in self._putters):
            # Earlier calls are waiting for room: this one queues behind.
            raise queue.Full
        self._queue.put_nowait(item, msg_type, pickle_protocol)

    def _put_in_thread(
        self,
        loop: asyncio.AbstractEventLoop,
        fut: _Put,
        item: Any,
        msg_type: int,
        pickle_protocol: int | None,
        timeout: float | None,
    ) -> None:
        _block_signals()
        outcome: BaseException | None = None
        while True:
            try:
                self._queue.put(item, True, msg_type, pickle_protocol, timeout)
            except InterruptedError:
                continue
            except BaseException as exc:
                outcome = exc
            break
        try:
            loop.call_soon_threadsafe(self._put_done, fut, outcome)
        except RuntimeError:
            self._done_with_queue()

    def _put_done(self, fut: _Put, outcome: BaseException | None) -> None:
        try:
            if fut.done():
                return
            if outcome is None:
                fut.set_result(None)
            else:
                fut.set_exception(outcome)
        finally:
            self._done_with_queue()

    # -- lifetime ---------------------------------------------------------

    def detach(self) -> None:
        """Stop using the queue through this wrapper; the queue stays.

        Calls waiting on this wrapper fail with QueueError
        (INVALID_DESCRIPTOR).  Messages held for a get, and any message a
        still-blocked receiving thread takes later, are put back into the
        queue.  The wrapped queue is detached once no thread uses it.
        """
        self._check_open()
        self._closed = True
        self._detached = True
        self._fail_waiters(
            QueueError(errno.EBADF, f"{self._queue!r} was detached while waiting")
        )
        self._release(close=False)

    def _put_back(self, entry: _Entry | BaseException) -> None:
        # In a worker thread, or on the loop when the queue has room.
        if isinstance(entry, tuple):
            try:
                self._queue.put(entry[0], True, entry[1])
            except (QueueError, ValueError, TypeError):
                pass

    def _put_back_later(self, entry: tuple[Any, int]) -> None:
        try:
            self._queue.put_nowait(entry[0], entry[1])
        except queue.Full:
            with self._lock:
                self._busy += 1
            threading.Thread(
                target=self._put_back_in_thread, args=(entry,), daemon=True
            ).start()
        except (QueueError, ValueError, TypeError):
            pass

    def _put_back_in_thread(self, entry: tuple[Any, int]) -> None:
        _block_signals()
        self._put_back(entry)
        self._done_with_queue()

    def _done_with_queue(self) -> None:
        with self._lock:
            self._busy -= 1
        self._detach_if_idle()

    def _detach_if_idle(self) -> None:
        # Runs on the loop or in the last worker thread: the lock makes
        # sure that exactly one of them detaches the queue.
        with self._lock:
            if self._busy or not self._detached or self._released:
                return
            self._released = True
        if not self._queue.closed:
            self._queue.detach()

    def _has_waiters(self) -> bool:
        return any(not f.done() for f in self._futures())

    def _futures(self) -> list[asyncio.Future[Any]]:
        futures: list[asyncio.Future[Any]] = list(self._putters)
        for waiters in self._getters.values():
            futures.extend(waiters)
        return futures

    def _fail_waiters(self, exc: QueueError) -> None:
        for fut in self._futures():
            if not fut.done():
                fut.set_exception(exc)
        for waiters in self._getters.values():
            waiters.clear()
        self._putters.clear()

    def _release(self, close: bool) -> None:
        if close:
            self._stash.clear()
            # IPC_RMID: the receiving threads wake up with an error.
            if not self._queue.closed:
                self._queue.close()
            return
        # XXX: a held DecodeError is dropped here: its bytes could only go
        # back through a raw handle on the same queue, which a private
        # queue (key 0) cannot get.
        while self._stash:
            entry = self._stash.popleft()
            if isinstance(entry, tuple):
                self._put_back_later(entry)
        self._detach_if_idle()
