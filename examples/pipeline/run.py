"""Run the three-stage pipeline: C producer, Python stage, Go consumer.

    python3 examples/pipeline/run.py [--count N] [--python-consumer]

1. producer.c sends C structs as typed messages on a POSIX queue;
2. stage.py decodes them with ipcq.typed and StructSerializer, converts
   them, and sends JSON on a System V queue, the kind as message type;
3. consumer.go (or consumer.py, without Go or with --python-consumer)
   decodes the JSON and prints it.

The script compiles the C and Go programs into a temporary directory,
makes both queues, runs the stages at once (each prints what passes
through it), then removes the queues and the directory.  It needs a C
compiler and ipcq (installed, or built in place with ``python3 setup.py
build_ext --inplace``); Go is optional.
"""

import argparse
import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def import_ipcq():
    """Import ipcq, installed or built in place in this checkout."""
    try:
        return importlib.import_module("ipcq")
    except ImportError:
        # After the installed packages, so that an installed ipcq wins.
        sys.path.append(ROOT)
    try:
        return importlib.import_module("ipcq")
    except ImportError as exc:
        sys.exit(
            f"cannot import ipcq ({exc}): install it (pip install .) or "
            "build it in place (python3 setup.py build_ext --inplace)"
        )


def build(workdir, python_consumer):
    """Compile the producer and, if wanted and possible, the Go consumer."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        sys.exit("a C compiler (cc or gcc) is needed for the producer")
    producer = os.path.join(workdir, "producer")
    print(f"building producer.c with {cc}")
    subprocess.run(
        [cc, "-O2", "-o", producer, os.path.join(HERE, "producer.c"), "-lrt"],
        check=True,
    )

    go = shutil.which("go")
    if python_consumer or go is None:
        if not python_consumer:
            print("go not found: the consumer is consumer.py")
        return producer, [sys.executable, os.path.join(HERE, "consumer.py")]

    consumer = os.path.join(workdir, "consumer")
    env = dict(os.environ, CGO_ENABLED="0")
    if not os.access(os.path.expanduser("~"), os.W_OK):
        env.setdefault("GOCACHE", os.path.join(workdir, "gocache"))
        env.setdefault("GOPATH", os.path.join(workdir, "gopath"))
    print("building consumer.go with go build")
    subprocess.run(
        [go, "build", "-o", consumer, os.path.join(HERE, "consumer.go")],
        check=True,
        env=env,
        cwd=workdir,
    )
    return producer, [consumer]


def free_sysv_queue(sysvmq):
    """A new System V queue with a key no other queue has."""
    while True:
        key = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        if key == 0:
            continue
        with contextlib.suppress(FileExistsError):
            return sysvmq.Queue(key, serializer="raw", exclusive=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8, help="readings to send")
    parser.add_argument(
        "--python-consumer",
        action="store_true",
        help="use consumer.py even if Go is installed",
    )
    args = parser.parse_args()

    ipcq = import_ipcq()
    from ipcq import posixmq, sysvmq

    # The Python stages import ipcq from where this script found it.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.path.dirname(os.path.dirname(ipcq.__file__))])
    )
    stage = [sys.executable, os.path.join(HERE, "stage.py")]

    with tempfile.TemporaryDirectory(prefix="ipcq-pipeline-") as workdir:
        producer, consumer = build(workdir, args.python_consumer)

        name = f"/ipcq-pipeline-{os.getpid()}"
        raw = posixmq.Queue(name, maxsize=10, maxmsgsize=64, serializer="raw")
        cooked = free_sysv_queue(sysvmq)
        print(f"queues: POSIX {name}, System V key {cooked.key}")
        print("-" * 60, flush=True)

        procs = []
        try:
            # Downstream first, so that every stage has a reader waiting.
            procs.append(subprocess.Popen([*consumer, str(cooked.key)], env=env))
            procs.append(subprocess.Popen([*stage, name, str(cooked.key)], env=env))
            procs.append(subprocess.Popen([producer, name, str(args.count)]))
            codes = [p.wait(timeout=60) for p in reversed(procs)]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            raw.close()
            posixmq.unlink(name)
            cooked.close()  # removes the System V queue
            print("-" * 60)
            print(f"removed POSIX queue {name} and System V queue {cooked.key}")

    if any(codes):
        sys.exit(f"a stage failed: exit codes {codes} (producer, stage, consumer)")


if __name__ == "__main__":
    main()
