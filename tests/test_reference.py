"""The reference's examples and ipcqueue's documented behaviours."""

import contextlib
import doctest
import io
import os
import pickle

import pytest

import ipcq
from ipcq import posixmq, sysvmq
from ipcq._common import read_limit

HERE = os.path.dirname(__file__)


def remove_posix(*names):
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            posixmq.unlink(name)


def remove_sysv_key(key):
    with contextlib.suppress(FileNotFoundError):
        sysvmq.Queue(key, create=False).close()


@pytest.fixture
def reference_queues():
    """The fixed names and key the examples use, free before and after."""
    names = ("/foo", "/my_queue", "/my_ipc_queue")
    remove_posix(*names)
    remove_sysv_key(1)
    yield
    remove_posix(*names)
    remove_sysv_key(1)


def test_reference_examples_run_as_doctests(reference_queues):
    result = doctest.testfile(
        os.path.join(HERE, "reference_examples.md"),
        module_relative=False,
        optionflags=doctest.ELLIPSIS,
    )
    assert result.attempted == 28
    assert result.failed == 0


CLASS_EXAMPLE = """
from ipcq import posixmq
# Create a queue
q = posixmq.Queue('/my_ipc_queue', maxsize=100)
# Put an item with priority
q.put('hello', priority=5)
# Get an item
message = q.get()
print(message)
# Close and unlink the queue
q.close()
q.unlink()
"""


def test_reference_class_example(reference_queues):
    out = io.StringIO()
    msg_max = read_limit("/proc/sys/fs/mqueue/msg_max")
    with contextlib.redirect_stdout(out):
        if msg_max is not None and msg_max < 100:
            with pytest.raises(ipcq.QueueValueError, match="msg_max=") as info:
                exec(CLASS_EXAMPLE, {})
            assert info.value.errno == ipcq.QueueError.INVALID_VALUE
            assert f"msg_max={msg_max}" in str(info.value)
            assert "/proc/sys/fs/mqueue/msg_max" in str(info.value)
        else:
            exec(CLASS_EXAMPLE, {})
            assert out.getvalue() == "hello\n"


@pytest.mark.parametrize("module", [posixmq, sysvmq], ids=["posix", "sysv"])
def test_module_docstring_examples(module):
    remove_posix("/ipcq-doc")
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


def test_reference_error_constants():
    # Every constant the reference lists exists on both modules' QueueError,
    # is an int, and the distinct failures have distinct values.
    names = [
        "ERROR",
        "INVALID_VALUE",
        "NO_PERMISSIONS",
        "NO_SYSTEM_RESOURCES",
        "INVALID_DESCRIPTOR",
        "INTERRUPTED",
        "TOO_BIG_MESSAGE",
        "TIMEOUT",
        "DOES_NOT_EXIST",
    ]
    for module in (posixmq, sysvmq):
        values = [getattr(module.QueueError, name) for name in names]
        assert all(isinstance(v, int) for v in values)
        assert len(set(values)) == len(values)


def test_queue_error_signature_and_attributes():
    err = posixmq.QueueError(posixmq.QueueError.DOES_NOT_EXIST)
    assert err.errno == posixmq.QueueError.DOES_NOT_EXIST
    assert isinstance(err.msg, str) and err.msg
    assert isinstance(err, FileNotFoundError)
    assert isinstance(err, OSError)

    err = sysvmq.QueueError(sysvmq.QueueError.INVALID_VALUE, "bad size")
    assert (err.errno, err.msg) == (sysvmq.QueueError.INVALID_VALUE, "bad size")
    assert isinstance(err, ValueError)

    generic = posixmq.QueueError(posixmq.QueueError.ERROR)
    assert type(generic) is posixmq.QueueError

    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err)
    assert (copy.errno, copy.msg) == (err.errno, err.msg)


def test_default_serializer_is_pickle_protocol_1(make_queue):
    # ipcqueue peers write protocol 1 and expect to read it.
    q = make_queue.posix(serializer="raw")
    reader = make_queue.posix(name=q.name)
    writer = make_queue.posix(name=q.name, serializer=None)
    writer.put({"a": 1})
    payload = q.get()
    assert payload == pickle.dumps({"a": 1}, protocol=1)
    writer.put([1, "A"], pickle_protocol=5)
    payload = q.get()
    assert payload == pickle.dumps([1, "A"], protocol=5)
    assert reader.qsize() == 0
