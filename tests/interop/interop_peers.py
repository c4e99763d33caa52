"""The C and Go peers: built once per test session, run per call.

``peer.c`` is compiled with the system's C compiler and ``peer.go`` with
``go build`` into a temporary directory that is removed when the session
ends.  A test that needs a peer whose toolchain is missing is skipped
with the reason; a peer that fails to build fails the test with the
compiler's output.  The command line of each peer is described at the
top of its source.
"""

import atexit
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile

import pytest
from conftest import unique_key, unique_name

from ipcq import posixmq, sysvmq
from ipcq._common import read_limit

HERE = os.path.dirname(os.path.abspath(__file__))

# Generous: a peer waits at most 5 s for a message, then exits.
RUN_TIMEOUT = 20
BUILD_TIMEOUT = 120

# The document both peers build by hand (C) or with encoding/json (Go).
DOC = {
    "id": 7,
    "name": "gr\u00fcn",
    "price": 2.5,
    "tags": ["a", "b"],
    "ok": True,
    "none": None,
    "neg": -3,
    "big": 300,
}

_build_dir = None
_built = {}


def _remove_stale_build_dirs():
    # A session that died without running atexit (SIGKILL, abort) leaves
    # its directory behind; the pid in the name tells whether it is gone.
    pattern = os.path.join(tempfile.gettempdir(), "ipcq-peers-*-*")
    for path in glob.glob(pattern):
        pid = os.path.basename(path).split("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass


def _scratch_dir():
    global _build_dir
    if _build_dir is None:
        _remove_stale_build_dirs()
        _build_dir = tempfile.mkdtemp(prefix=f"ipcq-peers-{os.getpid()}-")
        atexit.register(shutil.rmtree, _build_dir, True)
    return _build_dir


def _go_env(build_dir):
    env = dict(os.environ, CGO_ENABLED="0")
    home = env.get("HOME")
    home_ok = bool(home) and os.access(home, os.W_OK)
    # go needs a writable build cache and GOPATH; without a usable home,
    # both go in the session's temporary directory.
    if "GOCACHE" not in env and not home_ok:
        env["GOCACHE"] = os.path.join(build_dir, "gocache")
    if "GOPATH" not in env and not home_ok:
        env["GOPATH"] = os.path.join(build_dir, "gopath")
    return env


def _compile(language):
    build_dir = _scratch_dir()
    out = os.path.join(build_dir, f"{language}-peer")
    if language == "c":
        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            return None, "no C compiler (cc or gcc) is installed"
        source = os.path.join(HERE, "peer.c")
        cmd = [cc, "-std=c11", "-O1", "-Wall", "-o", out, source, "-lrt"]
        env = None
    else:
        go = shutil.which("go")
        if go is None:
            return None, (
                "the go toolchain is not installed (Debian: apt-get install "
                "golang-go), so the Go peer cannot be built"
            )
        cmd = [go, "build", "-o", out, os.path.join(HERE, "peer.go")]
        env = _go_env(build_dir)
    try:
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=env,
            cwd=build_dir,
            timeout=BUILD_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return False, f"building the {language} peer took over {BUILD_TIMEOUT} s"
    if result.returncode != 0:
        return False, f"building the {language} peer failed:\n{result.stderr}"
    return out, None


def peer(language):
    """Return the :class:`Peer` for *language* ('c' or 'go'), built once.

    Skips the calling test if the toolchain is missing; fails it if the
    build fails.
    """
    if language not in _built:
        _built[language] = _compile(language)
    path, problem = _built[language]
    if path is None:
        pytest.skip(problem)
    if path is False:
        pytest.fail(problem)
    return Peer(language, path)


class PeerError(AssertionError):
    """A peer exited with a failure status."""


class Peer:
    """Runs one peer program; every method is one process."""

    def __init__(self, language, path):
        self.language = language
        self.path = path

    def __repr__(self):
        return f"<{self.language} peer>"

    def run(self, *args):
        """Run the peer with *args*; return its output lines."""
        cmd = [self.path, *(str(a) for a in args)]
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
        if result.returncode != 0:
            raise PeerError(
                f"{self.language} peer {' '.join(cmd[1:3])} failed "
                f"({result.returncode}): {result.stderr.strip()}"
            )
        return result.stdout.splitlines()

    def send(self, kind, target, messages):
        """Send ``(tag, data)`` pairs; *data* is bytes or a peer token.

        *target* is a POSIX queue name or a System V key; *tag* is the
        priority or the message type.
        """
        items = []
        for tag, data in messages:
            text = data.hex() if isinstance(data, (bytes, bytearray)) else data
            items.append(f"{tag}:{text}")
        self.run(kind, "send", target, *items)

    def recv(self, kind, target, count, fmt="hex", msg_type=0):
        """Receive *count* messages; return ``(tag, text)`` pairs."""
        if kind == "posix":
            lines = self.run(kind, "recv", target, count, fmt)
        else:
            lines = self.run(kind, "recv", target, count, msg_type, fmt)
        pairs = []
        for line in lines:
            tag, _, text = line.partition(" ")
            pairs.append((int(tag), text))
        assert len(pairs) == count, lines
        return pairs

    def recv_bytes(self, kind, target, count, msg_type=0):
        """Receive *count* messages; return ``(tag, bytes)`` pairs."""
        pairs = self.recv(kind, target, count, "hex", msg_type)
        return [(tag, bytes.fromhex(text)) for tag, text in pairs]

    def fields(self, text):
        """Parse ``name=value`` words, as the reading formats print them."""
        return dict(word.split("=", 1) for word in text.split())


class Scratch:
    """Queue names and keys for one test, all removed at the end.

    Covers the queues a peer creates as well as those ipcq creates, and
    queues ipcq's System V close() already removed.
    """

    def __init__(self):
        self._names = []
        self._keys = []

    def name(self):
        """A fresh POSIX queue name."""
        name = unique_name("interop")
        self._names.append(name)
        return name

    def key(self):
        """A fresh System V key."""
        key = unique_key()
        self._keys.append(key)
        return key

    def target(self, kind):
        """A fresh name (POSIX) or key (System V)."""
        return self.name() if kind == "posix" else self.key()

    def remove(self):
        for name in self._names:
            with contextlib.suppress(FileNotFoundError):
                posixmq.unlink(name)
        for key in self._keys:
            with contextlib.suppress(FileNotFoundError):
                sysvmq.Queue(key, create=False, serializer="raw").close()


@contextlib.contextmanager
def scratch():
    """A :class:`Scratch` whose queues are removed on exit."""
    s = Scratch()
    try:
        yield s
    finally:
        s.remove()


def open_queue(kind, target, serializer="raw", **kwargs):
    """Open (or create) a queue of *kind* with small POSIX defaults."""
    if kind == "posix":
        kwargs.setdefault("maxsize", 5)
        kwargs.setdefault("maxmsgsize", 256)
        return posixmq.Queue(target, serializer=serializer, **kwargs)
    return sysvmq.Queue(target, serializer=serializer, **kwargs)


def finish(q):
    """Close a queue handle (System V: also removes the queue)."""
    if not q.closed:
        q.close()


def posix_msgsize_max():
    """The largest POSIX message size, capped at 8192 to save quota."""
    return min(read_limit("/proc/sys/fs/mqueue/msgsize_max") or 8192, 8192)


def sysv_msgmax():
    """The kernel's largest System V message (msgmax)."""
    return read_limit("/proc/sys/kernel/msgmax") or 8192
