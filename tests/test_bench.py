"""The benchmark suite runs in its quick mode and reports what it measured.

These tests check the shape of the results (every contender there, the
JSON written, every figure a positive number) and that no queue is left
behind, never how fast anything was.  They need a C compiler for the C
floor; the peer libraries are optional and skipped when missing.
"""

import importlib.util
import json
import os
import shlex
import shutil
import signal
import sysconfig
import threading
import time

import pytest

from ipcq import bench, posixmq
from ipcq.bench import _harness

COMPILER = shlex.split(os.environ.get("CC") or "cc")[0]

pytestmark = [
    pytest.mark.skipif(
        shutil.which(COMPILER) is None,
        reason=f"no C compiler ({COMPILER}) for the C floor",
    ),
    # Python 3.12+ warns about fork() in a process with threads; pytest's
    # faulthandler watchdog is such a thread, and the children here only
    # run queue calls before os._exit().
    pytest.mark.filterwarnings(
        "ignore:This process .* is multi-threaded:DeprecationWarning"
    ),
]

# The peers and the module that tells whether each is installed.
PEERS = {
    "posix_ipc": "posix_ipc",
    "sysv_ipc": "sysv_ipc",
    "ipcqueue-posix": "ipcqueue",
    "ipcqueue-sysv": "ipcqueue",
    "faster-fifo": "faster_fifo",
    "pyzmq": "zmq",
}
ALWAYS = ["c-posix", "c-sysv", "ipcq-posix", "ipcq-sysv", "mp.Queue"]
# The bare binding is built with the Python headers, where they are.
HEADERS = os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))
BINDINGS = ["binding-posix", "binding-sysv"]


def installed(module):
    return importlib.util.find_spec(module) is not None


def sysv_queue_ids():
    """Ids of every System V queue on the system now."""
    with open("/proc/sysvipc/msg") as f:
        header = f.readline().split()
        column = header.index("msqid")
        return {int(line.split()[column]) for line in f if line.strip()}


class Recorder:
    """Notes every queue name and id a Registry hands out."""

    def __init__(self, monkeypatch):
        self.names = []
        self.ids = []
        real_name = _harness.Registry.posix_name
        real_add = _harness.Registry.add_sysv

        def posix_name(registry):
            name = real_name(registry)
            self.names.append(name)
            return name

        def add_sysv(registry, msqid):
            self.ids.append(msqid)
            return real_add(registry, msqid)

        monkeypatch.setattr(_harness.Registry, "posix_name", posix_name)
        monkeypatch.setattr(_harness.Registry, "add_sysv", add_sysv)

    def assert_all_removed(self):
        for name in self.names:
            with pytest.raises(FileNotFoundError):
                posixmq.Queue(name, create=False)
        # The kernel gives a removed queue's id to no other queue for a
        # long while (a sequence number is part of it).
        assert not sysv_queue_ids() & set(self.ids)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One quick run shared by the tests of its results."""
    monkeypatch = pytest.MonkeyPatch()
    recorder = Recorder(monkeypatch)
    path = tmp_path_factory.mktemp("bench") / "results.json"
    calls = []
    try:
        data = bench.run(
            quick=True,
            json_path=str(path),
            memory_messages=20_000,
            progress=lambda *args: calls.append(args),
            out=None,
        )
    finally:
        monkeypatch.undo()
    return {"data": data, "path": path, "calls": calls, "recorder": recorder}


def keys_in(data, test):
    return {r["key"] for r in data["results"] if r["test"] == test}


def test_every_contender_is_measured_or_skipped_with_a_note(quick):
    data = quick["data"]
    expected = set(ALWAYS)
    if HEADERS:
        expected.update(BINDINGS)
    else:
        assert any("bare binding" in n and "Python headers" in n for n in data["notes"])
    for key, module in PEERS.items():
        if installed(module):
            expected.add(key)
        else:
            assert any(
                "not installed" in n and key.split("-")[0] in n for n in data["notes"]
            ), key

    # The pickle reference runs on objects only, next to the queues.
    assert {c["key"] for c in data["contenders"]} == expected | {"pickle"}
    assert keys_in(data, "pair") == expected | {"pickle"}
    for test in ("stream", "pingpong"):
        assert keys_in(data, test) == expected, test
    # ipcq runs every serializer on objects; pickle everywhere it applies.
    objects = [
        r
        for r in data["results"]
        if r["test"] == "pair" and r["variant"] == "small dict"
    ]
    assert {r["serializer"] for r in objects if r["key"] == "ipcq-posix"} == {
        "pickle",
        "msgpack",
        "json",
    }
    assert all(
        r["serializer"] == "pickle" for r in objects if r["family"] in ("peer", "ref")
    )


def test_pair_variants_cover_the_sizes_and_objects(quick):
    variants = {r["variant"] for r in quick["data"]["results"] if r["test"] == "pair"}
    assert variants == {"raw 64 B", "raw 1 KiB", "raw 8 KiB", "[1, 'A']", "small dict"}


def test_batch_calls_are_measured_when_the_queues_have_them(quick):
    data = quick["data"]
    for test, methods in (
        ("batch", ("put_many", "get_many")),
        ("get_into", ("get_into",)),
    ):
        if all(hasattr(posixmq.Queue, m) for m in methods):
            assert keys_in(data, test) == {
                "c-posix",
                "c-sysv",
                "ipcq-posix",
                "ipcq-sysv",
            }
        else:
            assert not keys_in(data, test)


def test_every_figure_is_a_positive_number(quick):
    data = quick["data"]
    for r in data["results"]:
        assert r["median"] > 0, r["label"]
        settings = data["settings"]
        per_round = settings["repeats"] if r["test"] in bench.IN_PROCESS else 1
        assert r["n"] > 0 and r["nsamples"] == settings["rounds"] * per_round
        if r["test"] == "stream":
            assert r["rate"] > 0 and r["wall_ns"] > 0 and r["cpu_ns"] > 0
        if r["test"] == "pingpong":
            assert r["p99"] >= r["median"] > 0
    for m in data["memory"]:
        assert m["messages"] == 20_000
        assert len(m["rss_kib"]) == 11 and min(m["rss_kib"]) > 0


def test_the_json_file_holds_the_results(quick):
    with open(quick["path"]) as f:
        stored = json.load(f)
    assert stored == json.loads(json.dumps(quick["data"]))
    assert stored["mode"] == "quick"
    assert stored["machine"]["cpu"] and stored["machine"]["kernel"]
    assert stored["versions"]["ipcq"]


def test_targets_compare_measured_ratios(quick):
    data = quick["data"]
    assert data["targets"]
    for t in data["targets"]:
        if t["value"] is None:
            assert t["met"] is None
        elif t["op"] == "<=":
            assert t["met"] == (t["value"] <= t["bound"])
        else:
            assert t["met"] == (t["value"] >= t["bound"])
    names = " ".join(t["name"] for t in data["targets"])
    assert "within 1.2x of C" in names and "memory" in names


def test_progress_counts_up_to_its_total(quick):
    calls = quick["calls"]
    assert [done for done, _, _ in calls] == list(range(1, len(calls) + 1))
    assert {total for _, total, _ in calls} == {len(calls)}
    assert all(isinstance(label, str) and label for _, _, label in calls)


def test_the_report_is_a_table_of_every_result(quick):
    text = bench._report.format_report(quick["data"])
    for r in quick["data"]["results"]:
        assert r["label"] in text
    assert "targets" in text


def test_no_queue_is_left_behind(quick):
    recorder = quick["recorder"]
    assert recorder.names and recorder.ids
    recorder.assert_all_removed()


def test_queues_are_removed_when_the_run_is_interrupted(monkeypatch):
    recorder = Recorder(monkeypatch)
    real_pair = bench.SAMPLERS["pair"]
    calls = []

    def interrupted(ctx, case, n):
        calls.append(case)
        if len(calls) < 3:
            return real_pair(ctx, case, n)
        # A queue made and still open when Ctrl-C comes.
        name = ctx.registry.posix_name()
        posixmq.Queue(name, 1, 64).close()
        raise KeyboardInterrupt

    monkeypatch.setitem(bench.SAMPLERS, "pair", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bench.run(quick=True, only=["ipcq"], out=None)
    assert len(calls) == 3
    recorder.assert_all_removed()


def test_main_reports_a_missing_compiler_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("CC", "/nonexistent/ipcq-test-cc")
    assert bench.main(["--quick", "--only", "ipcq"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("ipcq bench: error: no C compiler")
    assert "/nonexistent/ipcq-test-cc" in err


def test_main_rejects_a_bad_round_count(capsys):
    assert bench.main(["--quick", "--rounds", "0"]) == 1
    assert capsys.readouterr().err == (
        "ipcq bench: error: rounds must be at least 1, not 0\n"
    )


def test_tests_limit_the_run_to_those_named():
    data = bench.run(
        quick=True, only=["ipcq"], tests=["pair", "batch"], memory_messages=0, out=None
    )
    assert {r["test"] for r in data["results"]} == {"pair", "batch"}
    assert {r["key"] for r in data["results"] if r["test"] == "batch"} == {
        "c-posix",
        "c-sysv",
        "ipcq-posix",
        "ipcq-sysv",
    }
    # The targets of the tests that ran have a verdict; the others none.
    names = [t["name"] for t in data["targets"]]
    assert not [n for n in names if n.startswith(("stream", "pingpong"))]
    judged = [t for t in data["targets"] if t["met"] is not None]
    assert {t["name"].split(" ")[0] for t in judged} == {"pair", "batch"}


def test_main_rejects_an_unknown_test(capsys):
    assert bench.main(["--quick", "--tests", "pair,nap"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ipcq bench: error: no such test: nap (the tests: pair,")


def test_a_peer_that_is_not_installed_is_skipped_with_a_note(monkeypatch):
    from ipcq.bench import _contenders

    monkeypatch.setattr(_contenders.Zmq, "module", "ipcq_no_such_module")
    notes = []
    chosen = bench._select(_contenders.all_contenders(), set(), notes)
    assert "pyzmq" not in {c.key for c in chosen}
    assert {"c-posix", "pickle", "ipcq-posix", "ipcq-sysv"} <= {c.key for c in chosen}
    assert "pyzmq PAIR: not installed (pip install pyzmq); skipped" in notes


def test_sigterm_ends_the_run_cleanly_with_one_line(monkeypatch, capsys):
    recorder = Recorder(monkeypatch)
    real_pair = bench.SAMPLERS["pair"]
    calls = []

    def terminated(ctx, case, n):
        calls.append(case)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_pair(ctx, case, n)

    monkeypatch.setitem(bench.SAMPLERS, "pair", terminated)
    previous = signal.getsignal(signal.SIGTERM)
    status = bench.main(["--quick", "--only", "ipcq", "--memory", "0"])
    assert status == 128 + signal.SIGTERM
    assert capsys.readouterr().err == (
        "ipcq bench: terminated; every queue it made was removed\n"
    )
    # The handler is put back and the queues are gone.
    assert signal.getsignal(signal.SIGTERM) == previous
    recorder.assert_all_removed()


# -- the bare binding ---------------------------------------------------------


@pytest.fixture(scope="module")
def binding():
    if not HEADERS:
        pytest.skip("no Python headers to build the bare binding")
    from ipcq.bench import _floor

    registry = _harness.Registry()
    try:
        yield _floor.build_binding(registry)
    finally:
        registry.cleanup()


@pytest.fixture(params=["posix", "sysv"])
def binding_channel(request, binding):
    from ipcq.bench import _contenders

    registry = _harness.Registry()
    contender = _contenders.Binding(request.param)
    contender._module = binding
    channel = contender.channel(_contenders.Spec("raw", 64, 4), registry)
    end = channel.endpoint("both")
    try:
        yield request.param, end, channel
    finally:
        end.finish()
        channel.close()
        registry.cleanup()


def test_the_bare_binding_moves_messages_in_order(binding_channel):
    _, end, _ = binding_channel
    messages = [bytes([i]) * (i + 1) for i in range(4)]
    for m in messages:
        end.send(m)
    assert [end.recv() for _ in messages] == messages
    end.send(bytearray(b"from a bytearray"))
    assert end.recv() == b"from a bytearray"


def test_the_bare_binding_refuses_what_it_cannot_send(binding_channel):
    kind, end, channel = binding_channel
    end.send(b"kept")
    with pytest.raises(ValueError, match="too long"):
        end.send(b"x" * (64 + 1 if kind == "posix" else 100_000))
    with pytest.raises(TypeError):
        end.send("text")
    assert channel._queue.qsize() == 1
    assert end.recv() == b"kept"


def test_the_bare_binding_waits_with_the_gil_released(binding_channel):
    _, end, channel = binding_channel
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    def put_later():
        time.sleep(0.2)
        channel._queue.put(b"late")

    threads = [threading.Thread(target=tick), threading.Thread(target=put_later)]
    for t in threads:
        t.start()
    try:
        started = time.monotonic()
        assert end.recv() == b"late"
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    # The other thread ran while recv() waited.
    assert len([t for t in ticks if t > started]) >= 5
    # After a wait, a message already there still comes at once.
    channel._queue.put(b"next")
    assert end.recv() == b"next"


def test_without_python_headers_the_bare_binding_is_skipped(monkeypatch, tmp_path):
    real = sysconfig.get_paths

    def no_headers(*args, **kwargs):
        paths = dict(real(*args, **kwargs))
        paths["include"] = str(tmp_path)
        return paths

    monkeypatch.setattr(sysconfig, "get_paths", no_headers)
    data = bench.run(
        quick=True, only=["ipcq-posix"], tests=["pair"], memory_messages=0, out=None
    )
    assert not {"binding-posix", "binding-sysv"} & keys_in(data, "pair")
    assert {"c-posix", "ipcq-posix"} <= keys_in(data, "pair")
    assert (
        f"bare binding posix: no Python headers in {tmp_path} "
        "(Debian: apt-get install python3-dev); skipped"
    ) in data["notes"]


@pytest.mark.skipif(not installed("multiprocessing"), reason="no multiprocessing")
def test_libraries_that_start_threads_run_their_pairs_in_a_child(monkeypatch):
    # multiprocessing.Queue starts a feeder thread at its first put; in
    # the driver it would make every later pair pay for glibc's
    # multi-threaded system calls.
    driver = os.getpid()
    started = []
    real_start = threading.Thread.start

    def start(thread):
        if os.getpid() == driver:
            started.append(thread.name)
        return real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    data = bench.run(
        quick=True, only=["mp.Queue"], tests=["pair"], memory_messages=0, out=None
    )
    pairs = [r for r in data["results"] if r["key"] == "mp.Queue"]
    assert pairs and all(r["median"] > 0 for r in pairs)
    assert started == []
