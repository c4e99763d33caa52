"""MsgpackSerializer.dumps reuses msgpack Packers from a pool.

The promise is that the pool cannot be seen: the bytes are those of
msgpack.packb, a failed call leaves nothing behind for the next one,
and neither threads nor a call nested inside another ever share a
Packer's buffer.
"""

import threading

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipcq import serializers
from ipcq.serializers import MsgpackSerializer

items = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text()
    | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=20,
)


def reference(obj):
    return msgpack.packb(obj, use_bin_type=True)


@settings(max_examples=300, deadline=None)
@given(items)
def test_same_bytes_as_packb(obj):
    data = MsgpackSerializer.dumps(obj)
    assert data == reference(obj)
    assert type(data) is bytes


def test_a_failed_call_leaves_nothing_for_the_next():
    before = MsgpackSerializer.dumps([1, "A"])
    with pytest.raises(TypeError):
        # An object msgpack cannot write, after items already written.
        MsgpackSerializer.dumps(["x" * 100, object()])
    assert MsgpackSerializer.dumps([1, "A"]) == before == reference([1, "A"])


def test_a_nested_call_has_a_packer_of_its_own():
    nested = []

    class Mapping(dict):
        # msgpack reads a dict subclass through items(): Python code that
        # runs in the middle of the outer call.
        def items(self):
            nested.append(MsgpackSerializer.dumps(["inner", 1, 2, 3]))
            return super().items()

    outer = MsgpackSerializer.dumps({"a": [1, Mapping(b="c")], "z": "end"})
    assert outer == reference({"a": [1, {"b": "c"}], "z": "end"})
    assert nested == [reference(["inner", 1, 2, 3])]


def test_threads_never_share_a_packer():
    errors = []
    barrier = threading.Barrier(4)

    def work(n):
        barrier.wait()
        for i in range(3000):
            obj = {"thread": n, "i": i, "pad": "p" * (n * 50 + i % 7)}
            if MsgpackSerializer.dumps(obj) != reference(obj):
                errors.append((n, i))
                return

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_packer_grown_by_a_large_item_is_not_kept():
    MsgpackSerializer.dumps(0)
    idle = len(serializers._packers)
    big = b"\0" * (serializers._PACKER_KEEP + 1)
    assert MsgpackSerializer.dumps(big) == reference(big)
    # The large call's Packer was let go; the pool has one fewer.
    assert len(serializers._packers) == idle - 1
    assert MsgpackSerializer.dumps([1]) == reference([1])
