"""ipcq's own pickle reader and writer against the pickle module.

For trees of built-in objects, ipcq writes protocol 1 and reads every
protocol itself (ipcq._pickle); the promise is that nothing tells the
difference from pickle: the same bytes out, the same objects (sharing
and cycles included) back, and the same exception type for bytes that
pickle refuses.  Hypothesis generates the trees; damaged messages are
every prefix of a valid one and random byte changes.
"""

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipcq import DecodeError, _pickle
from ipcq.serializers import PickleSerializer

# Hypothesis's report of a failing example can import mypy_extensions,
# whose deprecation warning would otherwise replace the report.
pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**31) - 2, max_value=2**31 + 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.text(st.characters(codec=None, categories=["Cs", "Lu", "Nd"]))
    | st.binary(max_size=300)
)
keys = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(),
    lambda inner: st.tuples(inner, inner),
    max_leaves=4,
)
trees = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(keys, inner, max_size=5)
    ),
    max_leaves=30,
)


def same(a, b):
    """Equal as pickle sees them: values, types, sharing, NaNs alike."""
    return pickle.dumps(a, 4) == pickle.dumps(b, 4)


def outcome(loads, data):
    try:
        return "ok", loads(data)
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        return "error", type(exc)


def assert_reads_like_pickle(data):
    mine, theirs = outcome(_pickle.loads, data), outcome(pickle.loads, data)
    assert mine[0] == theirs[0], (data, mine, theirs)
    if mine[0] == "ok":
        assert same(mine[1], theirs[1]), data
    else:
        assert mine[1] is theirs[1], data


@settings(max_examples=400, deadline=None)
@given(trees)
def test_writes_the_bytes_of_pickle_protocol_1(tree):
    assert _pickle.dumps(tree, 1) == pickle.dumps(tree, 1)


@settings(max_examples=300, deadline=None)
@given(trees, st.sampled_from(PROTOCOLS))
def test_reads_what_pickle_writes_in_every_protocol(tree, protocol):
    data = pickle.dumps(tree, protocol)
    assert same(_pickle.loads(data), pickle.loads(data))
    assert _pickle.dumps(tree, protocol) == data


def shared_and_cyclic():
    text = "shared"
    inner = [1, 2]
    loop = []
    loop.append(loop)
    selfdict = {}
    selfdict["me"] = selfdict
    holder = []
    # A tuple inside itself through a list: pickle writes it with
    # POP_MARK, which ipcq leaves to pickle.
    cyclic_tuple = (holder,)
    holder.append(cyclic_tuple)
    return {
        "same str twice": [text, text],
        "same list twice": [inner, inner, (inner,)],
        "list inside itself": loop,
        "dict inside itself": selfdict,
        "tuple inside itself": cyclic_tuple,
        "more than 256 memo entries": [f"s{i}" for i in range(600)] * 2,
        "deeper than the fast path": nested(150),
        "999 items": list(range(999)),
        "1000 items": list(range(1000)),
        "1001 items": list(range(1001)),
        "dict of 1000": {i: i for i in range(1000)},
        "dict of 2000": {i: str(i) for i in range(2000)},
        "dict of 1001": {str(i): None for i in range(1001)},
        "int limits": [0, 255, 256, 65535, 65536, -1, 2**64]
        + [2**31 - 1, -(2**31), 2**31, -(2**31) - 1],
        "floats": [0.0, -0.0, 1e308, 5e-324, float("inf"), float("nan")],
        "lone surrogate": ["\ud800", "a\udfffb"],
        "non-ASCII": ["héllo", "日本", "🐍"],
        "subclasses": [True, PickleSerializer(2), range(3)],
        "bytes": [b"", b"x" * 300, bytearray(b"ab")],
    }


def nested(depth):
    top = current = []
    for _ in range(depth):
        current.append([])
        current = current[0]
    return top


@pytest.mark.parametrize("name", sorted(shared_and_cyclic()))
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sharing_cycles_and_edges(name, protocol):
    obj = shared_and_cyclic()[name]
    data = pickle.dumps(obj, protocol)
    assert _pickle.dumps(obj, protocol) == data
    back = _pickle.loads(data)
    assert same(back, pickle.loads(data))


def test_shared_objects_stay_shared():
    inner = [1]
    back = _pickle.loads(_pickle.dumps([inner, inner], 1))
    assert back[0] is back[1]
    loop = []
    loop.append(loop)
    back = _pickle.loads(_pickle.dumps(loop, 1))
    assert back[0] is back


@settings(max_examples=150, deadline=None)
@given(trees, st.sampled_from(PROTOCOLS))
def test_every_prefix_fails_as_pickle_fails(tree, protocol):
    data = pickle.dumps(tree, protocol)
    for end in range(len(data)):
        assert_reads_like_pickle(data[:end])


@settings(max_examples=400, deadline=None)
@given(trees, st.sampled_from(PROTOCOLS), st.data())
def test_damaged_bytes_read_as_pickle_reads_them(tree, protocol, data):
    message = bytearray(pickle.dumps(tree, protocol))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(message) - 1))
        message[at] = data.draw(st.integers(0, 255))
    assert_reads_like_pickle(bytes(message))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b".",
        b"N",
        b"NN.",
        b"(N.",
        b"a.",
        b"]K\x01K\x02s.",
        b"}]K\x01s.",
        b"}(K\x01u.",
        b"]q\x05.",
        b"h\x00.",
        b"X\x05\x00\x00\x00ab.",
        b"X\x01\x00\x00\x00\xff.",
        b"\x80\x09N.",
        b"\x95\x10\x00\x00\x00\x00\x00\x00\x00N.",
        b"I2\n.",
        b"N.trailing",
        b"(" * 100 + b"N.",
        # A memo slot written twice: the second value is the one read.
        b"(K\x01q\x00K\x02q\x00h\x00t.",
        b"(K\x01q\x01h\x01t.",
        b"K\x01t.",
        b"]K\x01e.",
        b"}K\x01K\x02u.",
        b"\x80\x02K\x01K\x02\x86.",
        b"\x80\x02K\x01\x87.",
    ],
)
def test_irregular_messages(data):
    assert_reads_like_pickle(data)


def test_serializer_uses_it():
    serializer = PickleSerializer()
    item = {"id": 42, "name": "widget", "price": 9.99, "ok": True}
    assert serializer.dumps(item) == pickle.dumps(item, 1)
    assert PickleSerializer(5).dumps(item) == pickle.dumps(item, 5)
    assert serializer.loads(pickle.dumps(item, 5)) == item
    with pytest.raises(pickle.UnpicklingError):
        serializer.loads(b"\x00.")


ITEMS = [[1, "A"], {"k": (1.5, None, True)}, "x" * 200, [[], {}, ()], 2**40]


@pytest.mark.parametrize("protocol", [None, 1, 4])
def test_queues_send_pickle_bytes_and_read_them_back(make_queue, kind, protocol):
    q = make_queue(kind)
    raw = make_queue.reopen(q, serializer="raw")
    for item in ITEMS:
        q.put(item, pickle_protocol=protocol)
    for item in ITEMS:
        assert raw.get() == pickle.dumps(item, protocol or 1)
    for item in ITEMS:
        raw.put(pickle.dumps(item, protocol or 1))
    for item in ITEMS:
        assert q.get() == item


def test_queue_reports_a_damaged_pickle(make_queue, kind):
    q = make_queue(kind)
    raw = make_queue.reopen(q, serializer="raw")
    raw.put(b"]q\x00(K\x01e")
    with pytest.raises(DecodeError) as info:
        q.get()
    assert info.value.payload == b"]q\x00(K\x01e"
    assert isinstance(info.value.__cause__, EOFError)  # as pickle says
    q.put([1, "A"])
    assert q.get() == [1, "A"]
