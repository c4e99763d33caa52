"""Fixtures shared by the test suite.

Every queue a test makes has a name or key unique to the test run and is
removed afterwards, whatever the test did to it.  ``make_queue(kind, ...)``
builds either kind with keyword arguments that both understand; tests
that take the ``kind`` fixture run once for POSIX and once for System V.
"""

import itertools
import os
import uuid

import pytest

from ipcq import posixmq, sysvmq

_counter = itertools.count()
_RUN = uuid.uuid4().hex[:8]


def unique_name(prefix="t"):
    """A POSIX queue name no other test, run or process uses."""
    return f"/ipcq-{prefix}-{_RUN}-{os.getpid()}-{next(_counter)}"


def unique_key():
    """A System V key that is free now (never 0, never taken)."""
    while True:
        key = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        if key == 0:
            continue
        try:
            sysvmq.Queue(key, create=False).detach()
        except FileNotFoundError:
            return key


class QueueFactory:
    """Builds queues for one test and removes them all afterwards."""

    def __init__(self):
        self.posix_names = []
        self.sysv_ids = []
        self.handles = []

    def posix(self, name=None, maxsize=5, maxmsgsize=256, **kwargs):
        name = name or unique_name()
        self.posix_names.append(name)
        q = posixmq.Queue(name, maxsize, maxmsgsize, **kwargs)
        self.handles.append(q)
        return q

    def sysv(self, key="unique", max_bytes=None, **kwargs):
        """A System V queue; by default with a fresh key, so that
        :meth:`reopen` can open it again (pass key=0 for a private one)."""
        if key == "unique":
            key = unique_key()
        q = sysvmq.Queue(key, max_bytes, **kwargs)
        if q.id not in self.sysv_ids:
            self.sysv_ids.append(q.id)
        self.handles.append(q)
        return q

    def reopen(self, q, **kwargs):
        """A second handle on the queue *q*, with options of its own."""
        if isinstance(q, posixmq.Queue):
            return self.posix(name=q.name, **kwargs)
        return self.sysv(key=q.key, **kwargs)

    def __call__(self, kind, **kwargs):
        return getattr(self, kind)(**kwargs)

    def cleanup(self):
        for q in self.handles:
            if isinstance(q, posixmq.Queue) and not q.closed:
                q.close()
        for name in self.posix_names:
            try:
                posixmq.unlink(name)
            except FileNotFoundError:
                pass
        for qid in self.sysv_ids:
            try:
                sysvmq.remove(qid)
            except FileNotFoundError:
                pass


@pytest.fixture
def make_queue():
    factory = QueueFactory()
    yield factory
    factory.cleanup()


@pytest.fixture(params=["posix", "sysv"])
def kind(request):
    """Runs a test once per queue kind."""
    return request.param


@pytest.fixture
def q(make_queue, kind):
    """An empty queue of each kind: POSIX 5 x 256 B, System V default."""
    return make_queue(kind)


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow",
        action="store_true",
        help="also run the long soak and fuzz variants (marked slow)",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="a long variant: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
