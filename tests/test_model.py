"""Random sequences of operations, checked against a pure-Python model.

Hypothesis drives a real queue of each kind with puts, gets and batch
calls in random order, with random priorities, types, sizes and
capacities, and compares every result with what a small model of the
kernel's rules predicts:

* POSIX: the highest priority first, first-in first-out within one
  priority; at most ``maxsize`` messages of at most ``maxmsgsize`` bytes.
* System V: ``msg_type`` 0 takes the first message, a positive type the
  first of that type, a negative one the first of the lowest type up to
  its absolute value; a message fits while the queued bytes stay within
  ``max_bytes`` and the number of messages too (the kernel caps both).

Every call here is non-blocking or has a zero timeout, so a run never
waits.  The default run is short; ``--run-slow`` runs many more examples.
"""

import errno
import itertools
import queue
from functools import partial

import pytest
from conftest import unique_name
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import ipcq
from ipcq import posixmq, sysvmq
from ipcq._common import read_limit

# Hypothesis's report of a failing example can import mypy_extensions,
# whose deprecation warning would otherwise replace the report.
pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)

MSG_MAX = min(read_limit("/proc/sys/fs/mqueue/msg_max") or 10, 10)
MSGMNB = read_limit("/proc/sys/kernel/msgmnb") or 16384


def has_cap_sys_resource():
    """True if this process may go above the system's queue limits."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 24))
    return False


CAN_EXCEED_LIMITS = has_cap_sys_resource()

_serial = itertools.count()


def payload(size):
    """*size* bytes, different from every other payload of that size."""
    stamp = next(_serial).to_bytes(8, "little")
    return (stamp * (size // 8 + 1))[:size]


# How a single put or get is asked for: these must all behave alike when
# the call cannot complete at once.
PUT_MODES = st.sampled_from(["nowait", "block_false", "timeout_0"])
GET_MODES = st.sampled_from(["nowait", "block_false", "timeout_0"])


def put_kwargs(mode):
    return {
        "nowait": None,
        "block_false": {"block": False},
        "timeout_0": {"timeout": 0},
    }[mode]


class PosixMachine(RuleBasedStateMachine):
    """A POSIX queue next to a list of (priority, order, payload)."""

    q = None

    @initialize(
        maxsize=st.integers(1, MSG_MAX),
        maxmsgsize=st.integers(1, 64),
    )
    def open_queue(self, maxsize, maxmsgsize):
        self.name = unique_name("model")
        self.q = posixmq.Queue(self.name, maxsize, maxmsgsize, serializer="raw")
        self.model = []
        self.order = itertools.count()

    def teardown(self):
        if self.q is not None:
            self.q.close()
            posixmq.unlink(self.name)

    def expect_get(self):
        if not self.model:
            return None
        best = max(self.model, key=lambda m: (m[0], -m[1]))
        self.model.remove(best)
        return best[2], best[0]

    # -- puts -------------------------------------------------------------

    @rule(size=st.integers(0, 66), priority=st.integers(0, 40), mode=PUT_MODES)
    def put(self, size, priority, mode):
        data = payload(size)
        kwargs = put_kwargs(mode)
        if kwargs is None:
            call = partial(self.q.put_nowait, data, priority=priority)
        else:
            call = partial(self.q.put, data, priority=priority, **kwargs)
        if size > self.q.maxmsgsize:
            with pytest.raises(ipcq.QueueError) as info:
                call()
            assert info.value.errno == errno.EMSGSIZE
        elif len(self.model) >= self.q.maxsize:
            with pytest.raises(queue.Full):
                call()
        else:
            assert call() is None
            self.model.append((priority, next(self.order), data))

    @rule(
        priority=st.sampled_from([0, 1, posixmq.PRIORITY_MAX]),
        mode=PUT_MODES,
    )
    def put_extreme_priority(self, priority, mode):
        self.put(1, priority, mode)

    @rule(
        sizes=st.lists(st.integers(0, 64), max_size=6),
        priority=st.integers(0, 5),
        timed=st.booleans(),
    )
    def put_many(self, sizes, priority, timed):
        items = [payload(min(s, self.q.maxmsgsize)) for s in sizes]
        kwargs = {"timeout": 0} if timed else {"block": False}
        room = self.q.maxsize - len(self.model)
        expected = min(room, len(items))

        assert self.q.put_many(items, priority=priority, **kwargs) == expected
        for data in items[:expected]:
            self.model.append((priority, next(self.order), data))

    # -- gets -------------------------------------------------------------

    @rule(mode=GET_MODES, with_priority=st.booleans())
    def get(self, mode, with_priority):
        expected = self.expect_get()
        kwargs = put_kwargs(mode)
        if with_priority:
            call = partial(self.q.get_with_priority, **(kwargs or {"block": False}))
        elif kwargs is None:
            call = self.q.get_nowait
        else:
            call = partial(self.q.get, **kwargs)
        if expected is None:
            with pytest.raises(queue.Empty):
                call()
        elif with_priority:
            assert call() == expected
        else:
            assert call() == expected[0]

    @rule(max_items=st.integers(1, 6), timed=st.booleans())
    def get_many(self, max_items, timed):
        kwargs = {"timeout": 0} if timed else {"block": False}
        expected = []
        while len(expected) < max_items:
            item = self.expect_get()
            if item is None:
                break
            expected.append(item[0])
        if not expected:
            with pytest.raises(queue.Empty):
                self.q.get_many(max_items, **kwargs)
        else:
            assert self.q.get_many(max_items, **kwargs) == expected

    @rule(extra=st.integers(-2, 8))
    def get_into(self, extra):
        buf = bytearray(max(0, self.q.maxmsgsize + extra))
        if extra < 0:
            # mq_receive(3) needs room for the largest message: refused
            # before anything is taken.
            with pytest.raises(ipcq.QueueError) as info:
                self.q.get_into(buf, block=False)
            assert info.value.errno == errno.EMSGSIZE
            return
        expected = self.expect_get()
        if expected is None:
            with pytest.raises(queue.Empty):
                self.q.get_into(buf, block=False)
        else:
            n, priority = self.q.get_into(buf, block=False)
            assert (bytes(buf[:n]), priority) == expected

    # -- bad calls leave the queue as it was -------------------------------

    @rule(priority=st.sampled_from([-1, posixmq.PRIORITY_MAX + 1, 2**40]))
    def put_bad_priority(self, priority):
        with pytest.raises((ipcq.QueueError, OverflowError)):
            self.q.put_nowait(b"", priority=priority)

    # -- state ------------------------------------------------------------

    @invariant()
    def sizes_agree(self):
        if self.q is None:
            return
        assert self.q.qsize() == len(self.model)
        assert self.q.empty() == (not self.model)
        assert self.q.full() == (len(self.model) >= self.q.maxsize)
        attr = self.q.qattr()
        assert attr["size"] == len(self.model)
        assert attr["max_size"] == self.q.maxsize
        assert attr["max_msgbytes"] == self.q.maxmsgsize


class SysvMachine(RuleBasedStateMachine):
    """A System V queue next to a list of (msg_type, payload)."""

    q = None

    @initialize(max_bytes=st.integers(1, 160))
    def open_queue(self, max_bytes):
        self.q = sysvmq.Queue(None, max_bytes, serializer="raw")
        self.model = []
        self.capacity = max_bytes

    def teardown(self):
        if self.q is not None:
            self.q.close()

    def fits(self, size):
        queued = sum(len(data) for _, data in self.model)
        return queued + size <= self.capacity and len(self.model) + 1 <= self.capacity

    def select(self, msg_type, take=True):
        """The index of the message msgrcv(2) would take, or None."""
        if msg_type == 0:
            candidates = list(range(len(self.model)))
        elif msg_type > 0:
            candidates = [i for i, m in enumerate(self.model) if m[0] == msg_type]
        else:
            eligible = [i for i, m in enumerate(self.model) if m[0] <= -msg_type]
            if not eligible:
                return None
            lowest = min(self.model[i][0] for i in eligible)
            candidates = [i for i in eligible if self.model[i][0] == lowest]
        return candidates[0] if candidates else None

    def expect_get(self, msg_type):
        index = self.select(msg_type)
        if index is None:
            return None
        msg_type, data = self.model.pop(index)
        return data, msg_type

    # -- puts -------------------------------------------------------------

    @rule(data=st.data(), msg_type=st.integers(1, 4), mode=PUT_MODES)
    def put(self, data, msg_type, mode):
        size = data.draw(st.integers(0, self.capacity))
        item = payload(size)
        kwargs = put_kwargs(mode)
        if kwargs is None:
            call = partial(self.q.put_nowait, item, msg_type=msg_type)
        else:
            call = partial(self.q.put, item, msg_type=msg_type, **kwargs)
        if self.fits(size):
            assert call() is None
            self.model.append((msg_type, item))
        else:
            with pytest.raises(queue.Full):
                call()

    @rule(extra=st.integers(1, 50))
    def put_never_fits_with_a_timeout(self, extra):
        # Bigger than the whole queue: waiting could never help.
        with pytest.raises(ipcq.QueueError) as info:
            self.q.put(payload(self.capacity + extra), timeout=0)
        assert info.value.errno == errno.EMSGSIZE

    @rule(
        sizes=st.lists(st.integers(0, 24), max_size=6),
        msg_type=st.integers(1, 4),
        timed=st.booleans(),
    )
    def put_many(self, sizes, msg_type, timed):
        items = [payload(min(s, self.capacity)) for s in sizes]
        kwargs = {"timeout": 0} if timed else {"block": False}
        expected = 0
        for item in items:
            if not self.fits(len(item)):
                break
            self.model.append((msg_type, item))
            expected += 1
        assert self.q.put_many(items, msg_type=msg_type, **kwargs) == expected

    # -- gets -------------------------------------------------------------

    @rule(msg_type=st.integers(-5, 5), mode=GET_MODES, with_type=st.booleans())
    def get(self, msg_type, mode, with_type):
        expected = self.expect_get(msg_type)
        kwargs = {
            "nowait": {"block": False},
            "block_false": {"block": False},
            "timeout_0": {"timeout": 0},
        }[mode]
        if with_type:
            call = partial(self.q.get_with_type, msg_type=msg_type, **kwargs)
        elif mode == "nowait":
            call = partial(self.q.get_nowait, msg_type)
        else:
            call = partial(self.q.get, msg_type=msg_type, **kwargs)
        if expected is None:
            with pytest.raises(queue.Empty):
                call()
        elif with_type:
            assert call() == expected
        else:
            assert call() == expected[0]

    @rule(max_items=st.integers(1, 6), msg_type=st.integers(-5, 5), timed=st.booleans())
    def get_many(self, max_items, msg_type, timed):
        kwargs = {"timeout": 0} if timed else {"block": False}
        expected = []
        while len(expected) < max_items:
            item = self.expect_get(msg_type)
            if item is None:
                break
            expected.append(item[0])
        if not expected:
            with pytest.raises(queue.Empty):
                self.q.get_many(max_items, msg_type=msg_type, **kwargs)
        else:
            assert self.q.get_many(max_items, msg_type=msg_type, **kwargs) == expected

    @rule(size=st.integers(0, 40), msg_type=st.integers(-5, 5))
    def get_into(self, size, msg_type):
        buf = bytearray(size)
        index = self.select(msg_type)
        if index is None:
            with pytest.raises(queue.Empty):
                self.q.get_into(buf, block=False, msg_type=msg_type)
        elif len(self.model[index][1]) > size:
            # Too long for the buffer: an error, and the message stays.
            with pytest.raises(ipcq.QueueError) as info:
                self.q.get_into(buf, block=False, msg_type=msg_type)
            assert info.value.errno == errno.EMSGSIZE
        else:
            data, got_type = self.expect_get(msg_type)
            n, t = self.q.get_into(buf, block=False, msg_type=msg_type)
            assert (bytes(buf[:n]), t) == (data, got_type)

    @rule(capacity=st.integers(1, 160))
    def change_capacity(self, capacity):
        self.q.max_bytes = capacity
        self.capacity = capacity

    # -- bad calls leave the queue as it was -------------------------------

    @rule(msg_type=st.sampled_from([0, -1, -(2**40)]))
    def put_bad_type(self, msg_type):
        with pytest.raises(ipcq.QueueError) as info:
            self.q.put_nowait(b"", msg_type=msg_type)
        assert info.value.errno == errno.EINVAL

    @precondition(lambda self: not CAN_EXCEED_LIMITS)
    @rule()
    def raise_capacity_above_msgmnb(self):
        with pytest.raises(ipcq.QueuePermissionError):
            self.q.max_bytes = MSGMNB + 1
        assert self.q.max_bytes == self.capacity

    # -- state ------------------------------------------------------------

    @invariant()
    def sizes_agree(self):
        if self.q is None:
            return
        attr = self.q.qattr()
        assert self.q.qsize() == attr["size"] == len(self.model)
        assert self.q.empty() == (not self.model)
        assert attr["bytes"] == sum(len(data) for _, data in self.model)
        assert attr["max_bytes"] == self.q.max_bytes == self.capacity


MACHINES = pytest.mark.parametrize(
    "machine", [PosixMachine, SysvMachine], ids=["posix", "sysv"]
)


def run(machine, examples, steps):
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@MACHINES
def test_queue_matches_model(machine):
    run(machine, examples=50, steps=40)


@pytest.mark.slow
@MACHINES
def test_queue_matches_model_long(machine):
    run(machine, examples=1500, steps=100)
