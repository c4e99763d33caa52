"""The ``ipcq`` command, driven as a user drives it: in a subprocess.

Every test runs ``python -m ipcq ...`` (and the installed ``ipcq`` script
where there is one) in a new process, against the same ipcq that the
test suite imported.
"""

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import unique_key, unique_name

import ipcq
from ipcq import posixmq, sysvmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(ipcq.__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT)
# "python -m" puts the working directory first on sys.path: the directory
# that holds the ipcq under test (a checkout built in place, or
# site-packages) makes sure that the command runs that same ipcq.
CWD = ROOT
COMMAND = [sys.executable, "-m", "ipcq"]


def ipcq_run(*args, input=None, timeout=30):
    """Run ``python -m ipcq ARGS``; return the CompletedProcess (bytes)."""
    return subprocess.run(
        COMMAND + [str(a) for a in args],
        input=input,
        capture_output=True,
        timeout=timeout,
        cwd=CWD,
        env=ENV,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def ok(*args, input=None):
    """Run a command that must succeed; return its standard output."""
    proc = ipcq_run(*args, input=input)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    return proc.stdout.decode()


def fails(*args, status=1, input=None):
    """Run a command that must fail with one line on stderr; return it."""
    proc = ipcq_run(*args, input=input)
    err = proc.stderr.decode()
    assert proc.returncode == status, (proc.returncode, err)
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("ipcq")
    return err


def address(q):
    """What the command line calls queue *q*."""
    if isinstance(q, posixmq.Queue):
        return q.name
    return f"{q.key:#010x}"  # as the command prints keys


def make(make_queue, kind, **kwargs):
    """A queue for the command to open (by name or key), raw by default."""
    kwargs.setdefault("serializer", "raw")
    return make_queue(kind, **kwargs)


def sysv_exists(msqid):
    with open("/proc/sysvipc/msg") as f:
        return any(line.split()[1] == str(msqid) for line in f.readlines()[1:])


def posix_exists(name):
    try:
        posixmq.Queue(name, create=False).close()
    except FileNotFoundError:
        return False
    return True


# -- help and version ------------------------------------------------------

COMMANDS = ["ls", "info", "rm", "put", "get", "watch", "demo", "bench"]


def test_top_level_help_lists_every_command():
    out = ok("--help")
    assert out.startswith("usage: ipcq")
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s+\S", out, re.M), command


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    out = ok(command, "--help")
    assert out.startswith(f"usage: ipcq {command}")
    assert "options:" in out or "optional arguments:" in out


def test_version():
    assert ok("--version").strip() == f"ipcq {ipcq.__version__}"


def test_no_command_is_a_usage_error():
    err = fails(status=2)
    assert "COMMAND" in err


# -- put and get -----------------------------------------------------------


def test_put_argument_then_get(make_queue, kind):
    q = make(make_queue, kind)
    assert ok("put", address(q), "hello queue") == ""
    assert q.qsize() == 1
    assert ok("get", address(q)) == "hello queue\n"
    assert q.qsize() == 0


def test_put_each_line_of_stdin(make_queue, kind):
    q = make(make_queue, kind, **({"maxsize": 10} if kind == "posix" else {}))
    ok("put", address(q), input=b"one\ntwo words\n\xff\xfe\nlast")
    assert [q.get_nowait() for _ in range(4)] == [
        b"one",
        b"two words",
        b"\xff\xfe",
        b"last",
    ]
    assert q.empty()


def test_get_count_and_json_records(make_queue, kind):
    q = make(make_queue, kind)
    if kind == "posix":
        q.put(b"low", priority=1)
        q.put(b"high", priority=7)
        q.put(b"\x00\xff", priority=1)
        tag, expected_tags = "priority", [7, 1, 1]
    else:
        q.put(b"low", msg_type=1)
        q.put(b"high", msg_type=7)
        q.put(b"\x00\xff", msg_type=1)
        tag, expected_tags = "type", [1, 7, 1]
    records = [
        json.loads(line)
        for line in ok("get", address(q), "-n", 3, "--json").splitlines()
    ]
    assert [r[tag] for r in records] == expected_tags
    assert all(r["queue"] == address(q) for r in records)
    texts = [r.get("message") for r in records]
    assert "low" in texts and "high" in texts
    # Bytes that are not UTF-8 come as base64.
    assert [r["message_base64"] for r in records if "message_base64" in r] == ["AP8="]


def test_posix_priorities_from_the_command_line(make_queue):
    q = make(make_queue, "posix")
    for text, priority in (("routine", 0), ("urgent", 9), ("normal", 5)):
        ok("put", q.name, text, "--priority", priority)
    assert ok("get", q.name, "--count", 3).split() == ["urgent", "normal", "routine"]


def test_sysv_types_from_the_command_line(make_queue):
    q = make(make_queue, "sysv")
    key = str(q.key)  # decimal this time
    ok("put", key, "order", "--type", 1)
    ok("put", key, "invoice", "--type", 2)
    assert q.qattr()["size"] == 2
    assert ok("get", key, "--type", 2) == "invoice\n"
    assert ok("get", key, "--type", -5, "--json").count('"type":1') == 1


@pytest.mark.parametrize("fmt", ["json", "msgpack", "pickle"])
def test_formats_match_the_library(make_queue, kind, fmt):
    q = make(make_queue, kind, serializer=fmt)
    record = {"id": 7, "tags": ["a", "b"], "ok": True, "price": 9.5}
    ok("put", address(q), json.dumps(record), "--format", fmt)
    # The library reads what the command wrote...
    assert q.get_nowait() == record
    # ...and the command prints what the library wrote, as JSON.
    q.put({"n": [1, 2, 3], "s": "text"})
    assert json.loads(ok("get", address(q), "--format", fmt)) == {
        "n": [1, 2, 3],
        "s": "text",
    }


def test_json_lines_on_stdin_skip_blank_lines(make_queue, kind):
    q = make(make_queue, kind, serializer="json")
    ok("put", address(q), "--format", "json", input=b'{"a": 1}\n\n[2]\n"three"\n')
    assert [q.get_nowait() for _ in range(3)] == [{"a": 1}, [2], "three"]
    assert q.empty()


def test_get_waits_then_times_out(make_queue, kind):
    q = make(make_queue, kind)
    start = time.monotonic()
    err = fails("get", address(q), "--timeout", 0.3)
    elapsed = time.monotonic() - start
    assert "no message within 0.3 s" in err
    assert 0.3 <= elapsed < 10


def test_get_count_reports_how_many_came(make_queue, kind):
    q = make(make_queue, kind)
    q.put(b"only one")
    proc = ipcq_run("get", address(q), "-n", 2, "--timeout", 0)
    assert proc.returncode == 1
    assert proc.stdout == b"only one\n"
    assert b"(got 1 of 2)" in proc.stderr


def test_put_times_out_on_a_full_queue(make_queue, kind):
    if kind == "posix":
        q = make(make_queue, kind, maxsize=1)
    else:
        q = make(make_queue, kind, max_bytes=8)
    q.put(b"12345678")
    err = fails("put", address(q), "more", "--timeout", 0.2)
    assert "full" in err
    assert q.qsize() == 1


def test_get_leaves_an_undecodable_message_visible(make_queue, kind):
    q = make(make_queue, kind)
    q.put(b"not json")
    err = fails("get", address(q), "--format", "json")
    assert "b'not json'" in err


# -- creating: only when asked -------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["get", "--timeout", "0"],
        ["info"],
        ["put", "x"],
        ["watch", "-n", "1"],
    ],
    ids=["get", "info", "put", "watch"],
)
def test_commands_do_not_create_a_missing_posix_queue(args):
    name = unique_name("cli")
    command, *rest = args
    err = fails(command, name, *rest)
    assert "does not exist" in err
    assert not posix_exists(name)


def test_commands_do_not_create_a_missing_sysv_queue():
    key = unique_key()
    for args in (["get", "--timeout", "0"], ["info"], ["put", "x"]):
        command, *rest = args
        fails(command, hex(key), *rest)
    with pytest.raises(FileNotFoundError):
        sysvmq.Queue(key, create=False)


def test_put_create_makes_the_queue(make_queue):
    name = unique_name("cli")
    make_queue.posix_names.append(name)  # removed after the test
    ok(
        "put",
        name,
        "first",
        "--create",
        "--maxsize",
        3,
        "--maxmsgsize",
        128,
        "--mode",
        640,
    )
    info = json.loads(ok("info", name, "--json"))
    assert info["messages"] == 1
    assert info["max_messages"] == 3
    assert info["max_message_size"] == 128
    assert info["mode"] == "0640"

    key = unique_key()
    # The message may also come after the options.
    ok("put", hex(key), "--create", "--type", 4, "first")
    q = sysvmq.Queue(key, create=False, serializer="raw")
    make_queue.sysv_ids.append(q.id)
    try:
        assert q.get_with_type(block=False) == (b"first", 4)
    finally:
        q.detach()


# -- info, ls, rm ------------------------------------------------------------


def test_info(make_queue, kind):
    q = make(make_queue, kind)
    q.put(b"abc")
    q.put(b"defg")
    info = json.loads(ok("info", address(q), "--json"))
    assert info["kind"] == kind
    assert info["messages"] == 2
    assert info["mode"] == "0600"
    assert info["owner"]
    if kind == "sysv":
        assert info["id"] == q.id
        assert info["bytes"] == 7
        assert info["max_bytes"] == q.max_bytes
        assert info["last_send_pid"] == os.getpid()
    else:
        assert info["max_messages"] == q.maxsize
        assert info["max_message_size"] == q.maxmsgsize
    text = ok("info", address(q))
    assert re.search(r"^messages\s+2$", text, re.M)


def test_info_and_rm_by_id_of_a_private_queue(make_queue):
    q = make_queue("sysv", key=0)
    q.put(b"x")
    info = json.loads(ok("info", f"id:{q.id}", "--json"))
    assert info["key"] == 0
    assert info["messages"] == 1
    # A private queue can be inspected and removed, not opened.
    assert "private" in fails("get", f"id:{q.id}")
    ok("rm", f"id:{q.id}")
    assert not sysv_exists(q.id)


def test_negative_key_as_proc_prints_it(make_queue):
    key = 0x80000000 | unique_key()
    q = make(make_queue, "sysv", key=key)
    signed = key - 2**32
    info = json.loads(ok("info", str(signed), "--json"))
    assert info["id"] == q.id


def test_ls_lists_sysv_queues(make_queue):
    q = make(make_queue, "sysv")
    q.put(b"12345")
    listing = json.loads(ok("ls", "--json"))
    mine = [r for r in listing["sysv"] if r["id"] == q.id]
    assert len(mine) == 1
    assert mine[0]["key"] == q.key
    assert mine[0]["messages"] == 1
    assert mine[0]["bytes"] == 5
    assert mine[0]["max_bytes"] == q.max_bytes
    assert mine[0]["mode"] == "0600"
    text = ok("ls")
    assert re.search(rf"^\s+{q.key:#010x}\s+{q.id}\s+1\s+5\s", text, re.M)


def _in_mount_namespace(script):
    """Run a shell *script* in a new mount namespace, or skip the test."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed")
    proc = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script],
        capture_output=True,
        timeout=30,
        cwd=CWD,
        env=ENV,
    )
    if proc.returncode == 97:
        pytest.skip("cannot make a mount namespace here (needs CAP_SYS_ADMIN)")
    return proc


def test_ls_says_how_to_mount_the_mqueue_file_system():
    # Unmount every mqueue file system in a private mount namespace.
    python = " ".join(COMMAND)
    proc = _in_mount_namespace(
        "mount --make-rprivate / 2>/dev/null || exit 97; "
        "for m in $(awk '$3 == \"mqueue\" {print $2}' /proc/self/mounts); do "
        'umount -l "$m" || exit 97; done; '
        f"{python} ls && {python} ls --json"
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "mount -t mqueue none /dev/mqueue" in out
    listing = json.loads(out.splitlines()[-1])
    assert listing["posix"]["mounted"] is False
    assert "mount -t mqueue" in listing["posix"]["hint"]


def test_ls_lists_posix_queues_where_mqueue_is_mounted(make_queue, tmp_path):
    q = make(make_queue, "posix")
    q.put(b"abc")
    q.put(b"de")
    python = " ".join(COMMAND)
    proc = _in_mount_namespace(
        "mount --make-rprivate / 2>/dev/null || exit 97; "
        f"mount -t mqueue none {tmp_path} || exit 97; "
        f"{python} ls --json && {python} ls && {python} info {q.name} --json"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    listing = json.loads(lines[0])
    assert listing["posix"]["mounted"] is True
    mine = [r for r in listing["posix"]["queues"] if r["name"] == q.name]
    assert len(mine) == 1
    assert mine[0]["messages"] == 2
    assert mine[0]["max_messages"] == q.maxsize
    assert mine[0]["max_message_size"] == q.maxmsgsize
    assert mine[0]["bytes"] > 0
    assert mine[0]["mode"] == "0600"
    assert any(line.split()[:2] == [q.name, "2"] for line in lines)
    assert json.loads(lines[-1])["bytes"] == mine[0]["bytes"]


def test_rm_removes_every_queue_named(make_queue):
    p = make(make_queue, "posix")
    s = make(make_queue, "sysv")
    t = make(make_queue, "sysv")
    out = ok("rm", "-v", p.name, hex(s.key), f"id:{t.id}")
    assert out.splitlines() == [
        f"removed {p.name}",
        f"removed {s.key:#010x}",
        f"removed id:{t.id}",
    ]
    assert not posix_exists(p.name)
    assert not sysv_exists(s.id)
    assert not sysv_exists(t.id)


def test_rm_goes_on_past_a_missing_queue(make_queue):
    q = make(make_queue, "posix")
    missing = unique_name("cli")
    proc = ipcq_run("rm", missing, q.name)
    assert proc.returncode == 1
    assert proc.stderr.decode() == f"ipcq rm: {missing}: no such queue\n"
    assert not posix_exists(q.name)
    # -f: a missing queue is no error.
    assert ok("rm", "-f", missing) == ""


# -- errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, status, words",
    [
        (["info", "/ipcq-cli-no-such-queue"], 1, "does not exist"),
        (["get", "/ipcq-cli-no-such-queue"], 1, "does not exist"),
        (["rm", "/ipcq-cli-no-such-queue"], 1, "no such queue"),
        (["info", "0xnothex"], 2, "invalid queue"),
        (["info", "jobs"], 2, "/NAME"),
        (["info", "0"], 2, "IPC_PRIVATE"),
        (["info", "0x1ffffffff"], 2, "32-bit"),
        (["info", "id:x"], 2, "invalid System V id"),
        (["info", "/a/b"], 2, "invalid POSIX queue name"),
        (["get", "/ipcq-cli-x", "--format", "xml"], 2, "invalid choice"),
        (["get", "/ipcq-cli-x", "--timeout", "-1"], 2, "invalid timeout"),
        (["get", "/ipcq-cli-x", "--count", "0"], 2, "invalid count"),
        (["ls", "--bogus"], 2, "unrecognized arguments"),
        (["frobnicate"], 2, "invalid choice"),
    ],
)
def test_errors_are_one_line(args, status, words):
    err = fails(*args, status=status)
    assert words in err


def test_wrong_kind_of_option_is_a_usage_error(make_queue, kind):
    q = make(make_queue, kind)
    option = "--priority" if kind == "sysv" else "--type"
    err = fails("put", address(q), "x", option, 1, status=2)
    assert option in err
    assert q.empty()


def test_invalid_json_input_says_which_line(make_queue, kind):
    q = make(make_queue, kind, serializer="json")
    err = fails("put", address(q), "--format", "json", input=b"[1]\n{oops\n")
    assert "line 2 is not valid JSON" in err
    assert "(1 message sent before)" in err
    assert q.get_nowait() == [1]


def test_bad_priority_is_reported(make_queue):
    q = make(make_queue, "posix")
    err = fails("put", q.name, "x", "--priority", 40000)
    assert "priority" in err


# -- watch -------------------------------------------------------------------


class Watcher:
    """``ipcq watch`` running in the background, read line by line."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            COMMAND + ["watch", *[str(a) for a in args]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=CWD,
            env=ENV,
        )
        self.buffer = b""

    def line(self, timeout=10):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0, "watch printed nothing in time"
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                assert chunk, "watch exited early: " + self.proc.stderr.read().decode()
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def stop(self, sig=signal.SIGINT):
        """Send *sig* (unless None) and wait; return (status, stderr)."""
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.communicate()
        return self.proc.returncode, err.decode()


def test_watch_prints_json_lines_until_ctrl_c(make_queue, kind):
    q = make(make_queue, kind, serializer="msgpack")
    q.put({"n": 1})
    watcher = Watcher(address(q), "--format", "msgpack")
    try:
        first = watcher.line()
        # A message sent while watch waits.
        if kind == "posix":
            q.put(["later"], priority=3)
        else:
            q.put(["later"], msg_type=3)
        second = watcher.line()
    finally:
        status, err = watcher.stop()
    assert first["message"] == {"n": 1}
    assert second["message"] == ["later"]
    assert second["priority" if kind == "posix" else "type"] == 3
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", second["time"])
    assert status in (0, 130)
    assert err == ""
    assert q.empty()


def test_watch_reports_undecodable_messages_and_goes_on(make_queue, kind):
    q = make(make_queue, kind)
    q.put(b"\xc1")  # never valid msgpack
    q.put(b"\x93\x01\x02\x03")  # [1, 2, 3]
    watcher = Watcher(address(q), "--format", "msgpack", "--count", 2)
    try:
        bad = watcher.line()
        good = watcher.line()
    finally:
        # --count 2: watch stops by itself.
        status, err = watcher.stop(sig=None)
    assert bad["error"] == "cannot decode as msgpack"
    assert bad["message_base64"] == "wQ=="
    assert good["message"] == [1, 2, 3]
    assert status == 0 and err == ""


# -- demo and bench ----------------------------------------------------------


def _demo_queues(out):
    """The POSIX names and System V ids the demo printed."""
    names = re.findall(r"queue (/ipcq-demo-\S+)", out)
    ids = [int(i) for i in re.findall(r"\(id (\d+)\)", out)]
    assert names and ids
    tag = names[0].rsplit("-", 1)[0]
    return names, ids, tag


def test_demo_runs_and_removes_its_queues():
    start = time.monotonic()
    out = ok("demo", "--messages", 300)
    elapsed = time.monotonic() - start
    assert "Every message arrived exactly once" in out
    assert "MISMATCH" not in out
    for serializer in ("pickle", "msgpack", "json", "raw"):
        assert re.search(rf"^\s+POSIX\s+{serializer}\s+600\s+600\s+ok", out, re.M)
        assert re.search(rf"^\s+System V\s+{serializer}\s+600\s+600\s+ok", out, re.M)
    assert re.search(r"received: 'urgent' \(9\)", out)
    names, ids, tag = _demo_queues(out)
    for name in names + [f"{tag}-{s}" for s in ("pickle", "raw")]:
        assert not posix_exists(name)
    assert not any(sysv_exists(i) for i in ids)
    assert elapsed < 30


def test_demo_cleans_up_after_ctrl_c():
    proc = subprocess.Popen(
        COMMAND + ["demo", "--messages", "5000000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=CWD,
        env=ENV,
    )
    out = b""
    try:
        deadline = time.monotonic() + 20
        while b"3. Processes" not in out:
            assert time.monotonic() < deadline, out
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                assert chunk, out
                out += chunk
        # The producers and consumers are running now.
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    out = (out + rest).decode()
    assert proc.returncode == 130
    assert b"Traceback" not in err, err.decode()
    assert "interrupted" in out
    assert "Removed the demo's" in out
    names, ids, tag = _demo_queues(out)
    for name in names + [f"{tag}-pickle"]:
        assert not posix_exists(name)
    assert not any(sysv_exists(i) for i in ids)


needs_cc = pytest.mark.skipif(
    shutil.which(os.environ.get("CC", "cc")) is None,
    reason="the benchmark's C floor needs a C compiler",
)


@needs_cc
def test_bench_runs_with_a_progress_bar_on_a_terminal():
    # Standard error is a terminal, where the suite draws its bar;
    # standard output, a pipe, gets the report.
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            COMMAND + ["bench", "--quick", "--only", "ipcq", "--memory", "0"],
            stdout=subprocess.PIPE,
            stderr=slave,
            stdin=subprocess.DEVNULL,
            cwd=CWD,
            env=ENV,
        )
    finally:
        os.close(slave)
    try:
        screen = b""
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            screen += chunk
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, screen[-500:]
    assert re.search(rb"\[#+\.*\]\s+\d+%", screen), screen[-300:]
    assert b"100%" in screen
    report = out.decode()
    assert "C posix" in report and "ipcq posix" in report
    # --only ipcq: no peer library ran.
    assert "posix_ipc " not in report


def test_bench_errors_are_reported():
    proc = ipcq_run("bench", "--rounds", "0", "--quick")
    assert proc.returncode == 1
    assert proc.stderr.count(b"\n") == 1
    assert b"rounds" in proc.stderr


# -- the installed script ----------------------------------------------------

SCRIPT = os.path.join(os.path.dirname(sys.executable), "ipcq")


@pytest.mark.skipif(
    not os.access(SCRIPT, os.X_OK),
    reason="the ipcq console script is not installed next to this Python",
)
def test_console_script(make_queue):
    q = make(make_queue, "sysv")

    def script(*args):
        return subprocess.run(
            [SCRIPT, *args], capture_output=True, timeout=30, cwd=CWD, env=ENV
        )

    version = script("--version")
    assert version.returncode == 0
    assert version.stdout.decode().strip() == f"ipcq {ipcq.__version__}"
    assert script("put", hex(q.key), "via script").returncode == 0
    got = script("get", hex(q.key))
    assert got.stdout == b"via script\n"
    missing = script("info", "/ipcq-cli-no-such-queue")
    assert missing.returncode == 1
    assert missing.stderr.count(b"\n") == 1
