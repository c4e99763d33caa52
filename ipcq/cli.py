"""The ``ipcq`` command: list, inspect, feed, read and remove queues.

A QUEUE argument is a POSIX queue name (``/jobs``), a System V key in
decimal or hexadecimal (``1234``, ``0x4d2``; a negative decimal key is
read as /proc/sysvipc/msg prints it) or a System V identifier
(``id:65536``).  Run ``ipcq COMMAND --help`` for the options of each
command.

Errors are one line on standard error: status 1 for a failure (a queue
that does not exist, an empty queue at the end of a timeout), 2 for a
command line that cannot be understood, 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import grp
import importlib
import os
import pwd
import queue
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import orjson

import ipcq
from ipcq import DecodeError, QueueError, posixmq, sysvmq

__all__ = ["main"]

PROG = "ipcq"
FORMATS = ("raw", "json", "msgpack", "pickle")
SYSV_PROC = "/proc/sysvipc/msg"
MOUNTS = "/proc/self/mounts"
MQUEUE_DIR = "/dev/mqueue"
MOUNT_HINT = "mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue"
KEY_MAX = 0xFFFFFFFF


class CliError(Exception):
    """A failure to report as one line, with an exit status."""

    def __init__(self, message: str, status: int = 1, prog: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors reported as one line (status 2)."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')", 2, self.prog)


# -- queue arguments ---------------------------------------------------------


class Target:
    """A queue named on the command line."""

    def __init__(
        self,
        kind: str,
        name: str | None = None,
        key: int | None = None,
        msqid: int | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.key = key
        self.msqid = msqid

    def __str__(self) -> str:
        if self.name is not None:
            return self.name
        if self.msqid is not None:
            return f"id:{self.msqid}"
        return f"{self.key:#010x}"


def parse_queue(text: str) -> Target:
    """Turn a QUEUE argument into a :class:`Target` (argparse type)."""
    if text.startswith("/"):
        if len(text) < 2 or "/" in text[1:] or "\0" in text:
            raise argparse.ArgumentTypeError(
                f"invalid POSIX queue name {text!r}: '/' then a name without "
                "other slashes"
            )
        return Target("posix", name=text)

    if text.startswith("id:"):
        try:
            msqid = int(text[3:], 10)
        except ValueError:
            msqid = -1
        if msqid < 0:
            raise argparse.ArgumentTypeError(
                f"invalid System V id {text!r}: 'id:' then a number such as id:65536"
            )
        return Target("sysv", msqid=msqid)

    try:
        if text.lower().startswith(("0x", "-0x")):
            key = int(text, 16)
        else:
            key = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid queue {text!r}: use /NAME for a POSIX queue, or a "
            "System V key (decimal or 0x hex) or id:N"
        ) from None
    if -(2**31) <= key < 0:
        # /proc/sysvipc/msg prints keys as signed 32-bit numbers.
        key &= KEY_MAX
    if not 0 <= key <= KEY_MAX:
        raise argparse.ArgumentTypeError(
            f"invalid System V key {text!r}: keys are 32-bit numbers"
        )
    if key == 0:
        raise argparse.ArgumentTypeError(
            "key 0 (IPC_PRIVATE) names no queue: a private queue is named "
            "by its id, id:N, which 'ipcq ls' shows"
        )
    return Target("sysv", key=key)


def parse_timeout(text: str) -> float:
    """A timeout in seconds: a number >= 0 (argparse type)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(
            f"invalid timeout {text!r}: a number of seconds >= 0"
        )
    return seconds


def parse_count(text: str) -> int:
    """A count of messages: an integer >= 1 (argparse type)."""
    try:
        count = int(text, 10)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: 1 or more")
    return count


def parse_mode(text: str) -> int:
    """Permission bits in octal, such as 600 or 0o644 (argparse type)."""
    try:
        mode = int(text.lower().removeprefix("0o"), 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(
            f"invalid mode {text!r}: octal permission bits such as 600"
        )
    return mode


# -- reading the system's tables ---------------------------------------------


def mqueue_mount() -> str | None:
    """Where an mqueue file system is mounted (/dev/mqueue first), or None."""
    points = []
    try:
        with open(MOUNTS, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[2] == "mqueue":
                    # Mount points escape blanks and such as octal (\040).
                    points.append(
                        re.sub(
                            r"\\([0-7]{3})",
                            lambda m: chr(int(m.group(1), 8)),
                            fields[1],
                        )
                    )
    except OSError:
        return None
    if MQUEUE_DIR in points:
        return MQUEUE_DIR
    return points[0] if points else None


def sysv_rows() -> list[dict[str, int]]:
    """The rows of /proc/sysvipc/msg, keys unsigned and ``mode`` octal."""
    try:
        with open(SYSV_PROC, encoding="ascii") as f:
            header = f.readline().split()
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise CliError(
            f"{SYSV_PROC} is missing: this kernel has no System V IPC "
            "(CONFIG_SYSVIPC) or /proc is not mounted"
        ) from None
    rows = []
    for line in lines:
        values = line.split()
        if len(values) != len(header):
            continue
        row = {}
        for field, value in zip(header, values):
            row[field] = int(value, 8 if field == "perms" else 10)
        row["key"] &= KEY_MAX
        rows.append(row)
    return rows


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def when(timestamp: int) -> str | None:
    if not timestamp:
        return None
    return datetime.datetime.fromtimestamp(timestamp).isoformat(timespec="seconds")


# -- opening queues ----------------------------------------------------------


@contextlib.contextmanager
def opened(
    target: Target,
    serializer: str = "raw",
    *,
    read: bool = True,
    write: bool = True,
    create: bool = False,
    maxsize: int = 10,
    maxmsgsize: int = 1024,
    mode: int = 0o600,
) -> Iterator[Any]:
    """Open *target* for the duration of a block, never removing it.

    A System V queue handle is detached, not closed, at the end: its
    close() would remove the queue from the system.
    """
    if target.name is not None:
        q: Any = posixmq.Queue(
            target.name,
            maxsize,
            maxmsgsize,
            serializer,
            mode=mode,
            create=create,
            read=read,
            write=write,
        )
        try:
            yield q
        finally:
            q.close()
        return

    key = target.key
    if key is None:
        key = key_of_id(target)
    q = sysvmq.Queue(key, None, serializer, mode=mode, create=create)
    try:
        yield q
    finally:
        if not q.closed:
            q.detach()


def key_of_id(target: Target) -> int:
    """The key of the System V queue *target* names by id."""
    for row in sysv_rows():
        if row["msqid"] == target.msqid:
            if row["key"] == 0:
                raise CliError(
                    f"queue {target} is private (key 0): only the process "
                    "that made it and its children can send or receive; "
                    "'ipcq info' and 'ipcq rm' still work on it"
                )
            return row["key"]
    raise CliError(f"no queue has id {target.msqid}")


def check_kind_options(args: argparse.Namespace, target: Target) -> None:
    """Reject the options that belong to the other kind of queue."""
    if target.kind == "posix" and getattr(args, "type", None) is not None:
        raise CliError(
            f"--type applies to System V queues; {target} is a POSIX queue "
            "(use --priority)",
            status=2,
        )
    if target.kind == "sysv" and getattr(args, "priority", None) is not None:
        raise CliError(
            f"--priority applies to POSIX queues; {target} is a System V "
            "queue (use --type)",
            status=2,
        )


# -- output ------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    # What JSON cannot hold as such: bytes as text, sets as lists, the
    # rest as its repr().
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode("utf-8", "backslashreplace")
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    return repr(obj)


def to_json(obj: Any) -> bytes:
    """One line of JSON for *obj*, whatever it is."""
    try:
        return orjson.dumps(obj, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        # Keys JSON cannot express (tuples, say).
        return orjson.dumps(repr(obj))


def message_fields(item: Any, fmt: str) -> dict[str, Any]:
    """The message part of a JSON record: text, base64 or a value."""
    if fmt != "raw":
        return {"message": item}
    try:
        return {"message": item.decode("utf-8")}
    except UnicodeDecodeError:
        return {"message_base64": base64.b64encode(item).decode("ascii")}


def write_line(data: bytes) -> None:
    out = sys.stdout.buffer
    out.write(data)
    out.write(b"\n")
    out.flush()


def print_table(rows: list[list[str]], right: set[int]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        print("  " + "  ".join(cells).rstrip())


# -- ls ----------------------------------------------------------------------


def posix_listing() -> dict[str, Any]:
    """The POSIX queues of the mqueue file system, if one is mounted."""
    mount = mqueue_mount()
    if mount is None:
        return {
            "mounted": False,
            "path": None,
            "queues": None,
            "hint": f"no mqueue file system is mounted; as root: {MOUNT_HINT}",
        }
    queues = []
    for entry in sorted(os.listdir(mount)):
        path = os.path.join(mount, entry)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        record = {
            "name": "/" + entry,
            "messages": None,
            "bytes": mqueue_bytes(path),
            "max_messages": None,
            "max_message_size": None,
            "mode": f"{st.st_mode & 0o777:04o}",
            "uid": st.st_uid,
            "owner": user_name(st.st_uid),
            "gid": st.st_gid,
            "group": group_name(st.st_gid),
        }
        record.update(posix_attributes("/" + entry))
        queues.append(record)
    return {"mounted": True, "path": mount, "queues": queues, "hint": None}


def mqueue_bytes(path: str) -> int | None:
    """QSIZE from a file of the mqueue file system: bytes queued."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read()
    except OSError:
        return None
    for field in text.split():
        name, _, value = field.partition(":")
        if name == "QSIZE":
            return int(value)
    return None


def posix_attributes(name: str) -> dict[str, Any]:
    """Messages and limits of the POSIX queue *name* (empty if unreadable)."""
    for read, write in ((True, False), (False, True)):
        try:
            q = posixmq.Queue(
                name, serializer="raw", create=False, read=read, write=write
            )
        except PermissionError:
            continue
        except FileNotFoundError:
            return {}
        try:
            attr = q.qattr()
        finally:
            q.close()
        return {
            "messages": attr["size"],
            "max_messages": attr["max_size"],
            "max_message_size": attr["max_msgbytes"],
        }
    return {}


def sysv_record(row: dict[str, int]) -> dict[str, Any]:
    """A System V queue as ls and info show it."""
    record = {
        "key": row["key"],
        "key_hex": f"{row['key']:#010x}",
        "id": row["msqid"],
        "messages": row["qnum"],
        "bytes": row["cbytes"],
        "max_bytes": None,
        "mode": f"{row['perms'] & 0o777:04o}",
        "uid": row["uid"],
        "owner": user_name(row["uid"]),
        "gid": row["gid"],
        "group": group_name(row["gid"]),
        "creator_uid": row["cuid"],
        "last_send_pid": row["lspid"],
        "last_receive_pid": row["lrpid"],
        "last_send_time": when(row["stime"]),
        "last_receive_time": when(row["rtime"]),
        "last_change_time": when(row["ctime"]),
    }
    if row["key"] != 0:
        # msg_qbytes is not in /proc; the queue's own attributes have it.
        try:
            with opened(Target("sysv", key=row["key"])) as q:
                if q.id == row["msqid"]:
                    record["max_bytes"] = q.qattr()["max_bytes"]
        except (QueueError, OSError):
            pass
    return record


def cmd_ls(args: argparse.Namespace) -> int:
    posix = posix_listing()
    sysv = [sysv_record(row) for row in sysv_rows()]

    if args.json:
        write_line(to_json({"posix": posix, "sysv": sysv}))
        return 0

    if not posix["mounted"]:
        print("POSIX queues: cannot be listed, no mqueue file system is mounted.")
        print(f"  To mount one (as root): {MOUNT_HINT}")
        print("  A queue whose name is known still works: ipcq info /NAME")
    else:
        print(f"POSIX queues ({posix['path']}):")
        table = [["NAME", "MESSAGES", "MAX", "MSGSIZE", "BYTES", "MODE", "OWNER"]]
        for q in posix["queues"]:
            table.append(
                [
                    q["name"],
                    _cell(q["messages"]),
                    _cell(q["max_messages"]),
                    _cell(q["max_message_size"]),
                    _cell(q["bytes"]),
                    q["mode"],
                    q["owner"],
                ]
            )
        if len(table) == 1:
            print("  (none)")
        else:
            print_table(table, right={1, 2, 3, 4})

    print(f"System V queues ({SYSV_PROC}):")
    table = [["KEY", "ID", "MESSAGES", "BYTES", "MAXBYTES", "MODE", "OWNER"]]
    for q in sysv:
        table.append(
            [
                q["key_hex"],
                str(q["id"]),
                str(q["messages"]),
                str(q["bytes"]),
                _cell(q["max_bytes"]),
                q["mode"],
                q["owner"],
            ]
        )
    if len(table) == 1:
        print("  (none)")
    else:
        print_table(table, right={1, 2, 3, 4})
    return 0


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


# -- info --------------------------------------------------------------------


def posix_info(target: Target) -> dict[str, Any]:
    assert target.name is not None
    record: dict[str, Any] = {"queue": target.name, "kind": "posix"}
    attributes: dict[str, Any] = {}
    for read, write in ((True, False), (False, True)):
        try:
            q = posixmq.Queue(
                target.name, serializer="raw", create=False, read=read, write=write
            )
        except PermissionError:
            if write:
                raise
            continue
        try:
            attr = q.qattr()
            st = os.fstat(q.fileno())
        finally:
            q.close()
        attributes = {
            "messages": attr["size"],
            "max_messages": attr["max_size"],
            "max_message_size": attr["max_msgbytes"],
            "bytes": None,
            "mode": f"{st.st_mode & 0o777:04o}",
            "uid": st.st_uid,
            "owner": user_name(st.st_uid),
            "gid": st.st_gid,
            "group": group_name(st.st_gid),
        }
        break
    mount = mqueue_mount()
    if mount is not None:
        attributes["bytes"] = mqueue_bytes(os.path.join(mount, target.name[1:]))
    record.update(attributes)
    return record


def sysv_info(target: Target) -> dict[str, Any]:
    for row in sysv_rows():
        if (target.msqid is not None and row["msqid"] == target.msqid) or (
            target.key is not None and row["key"] == target.key
        ):
            return {"queue": str(target), "kind": "sysv", **sysv_record(row)}
    if target.msqid is not None:
        raise CliError(f"no queue has id {target.msqid}")
    raise CliError(f"no queue has key {target}")


def cmd_info(args: argparse.Namespace) -> int:
    target = args.queue
    record = posix_info(target) if target.kind == "posix" else sysv_info(target)
    if args.json:
        write_line(to_json(record))
        return 0
    labels = {
        "queue": "queue",
        "kind": "kind",
        "key_hex": "key",
        "id": "id",
        "messages": "messages",
        "max_messages": "max messages",
        "max_message_size": "max message size",
        "bytes": "bytes queued",
        "max_bytes": "max bytes",
        "mode": "mode",
        "owner": "owner",
        "group": "group",
        "last_send_pid": "last send pid",
        "last_send_time": "last send time",
        "last_receive_pid": "last receive pid",
        "last_receive_time": "last receive time",
        "last_change_time": "last change time",
    }
    width = max(len(label) for label in labels.values())
    for field, label in labels.items():
        if field in record:
            value = record[field]
            if field == "kind":
                value = "POSIX" if value == "posix" else "System V"
            elif value is None:
                value = "-"
            print(f"{label:<{width}}  {value}")
    return 0


# -- rm ----------------------------------------------------------------------


def remove(target: Target) -> None:
    if target.name is not None:
        posixmq.unlink(target.name)
    elif target.msqid is not None:
        sysvmq.remove(target.msqid)
    else:
        q = sysvmq.Queue(target.key, serializer="raw", create=False)
        q.close()


def cmd_rm(args: argparse.Namespace) -> int:
    status = 0
    for target in args.queues:
        try:
            remove(target)
        except FileNotFoundError:
            if not args.force:
                error(f"{PROG} rm: {target}: no such queue")
                status = 1
        except OSError as exc:
            error(f"{PROG} rm: {target}: {describe(exc)}")
            status = 1
        else:
            if args.verbose:
                print(f"removed {target}")
    return status


# -- put ---------------------------------------------------------------------


def messages_from(args: argparse.Namespace) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of each message: the argument or stdin lines."""
    if args.message is not None:
        yield 0, os.fsencode(args.message)
        return
    stdin = sys.stdin.buffer
    if sys.stdin.isatty():
        print(
            "reading messages from standard input, one per line; Ctrl-D to end",
            file=sys.stderr,
        )
    for number, line in enumerate(stdin, 1):
        if line.endswith(b"\n"):
            line = line[:-1]
        if args.format != "raw" and not line.strip():
            # JSON lines: blank lines separate nothing.
            continue
        yield number, line


def decode_input(data: bytes, fmt: str, where: str, sent: int) -> Any:
    if fmt == "raw":
        return data
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CliError(
            f"{where} is not valid JSON, which --format {fmt} takes: {exc} "
            f"({plural(sent, 'message')} sent before)"
        ) from None


def cmd_put(args: argparse.Namespace) -> int:
    target = args.queue
    check_kind_options(args, target)
    try:
        handle = opened(
            target,
            args.format,
            read=False,
            create=args.create,
            maxsize=args.maxsize,
            maxmsgsize=args.maxmsgsize,
            mode=args.mode,
        )
        q = handle.__enter__()
    except FileNotFoundError as exc:
        raise CliError(f"{describe(exc)} (--create makes it)") from None
    sent = 0
    try:
        for number, data in messages_from(args):
            where = "MESSAGE" if number == 0 else f"line {number}"
            item = decode_input(data, args.format, where, sent)
            try:
                if target.kind == "posix":
                    q.put(item, timeout=args.timeout, priority=args.priority or 0)
                else:
                    q.put(item, msg_type=args.type or 1, timeout=args.timeout)
            except queue.Full:
                raise CliError(
                    f"{target} is full: no room within {args.timeout:g} s "
                    f"({plural(sent, 'message')} sent)"
                ) from None
            except (QueueError, ValueError, TypeError) as exc:
                raise CliError(
                    f"{where}: {describe(exc)} ({plural(sent, 'message')} sent before)"
                ) from None
            sent += 1
    finally:
        handle.__exit__(None, None, None)
    if args.verbose:
        print(f"sent {plural(sent, 'message')} to {target}", file=sys.stderr)
    return 0


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


# -- get and watch -----------------------------------------------------------


def receive(q: Any, target: Target, args: argparse.Namespace) -> tuple[Any, int]:
    """(item, priority or type) of the next message, per --timeout."""
    timeout = args.timeout
    block = timeout is None or timeout > 0
    result: tuple[Any, int]
    if target.kind == "posix":
        result = q.get_with_priority(block, timeout)
    else:
        result = q.get_with_type(block, args.type or 0, timeout)
    return result


def record_of(
    target: Target, item: Any, tag: int, fmt: str, stamp: bool
) -> dict[str, Any]:
    record: dict[str, Any] = {}
    if stamp:
        now = datetime.datetime.now(datetime.timezone.utc)
        record["time"] = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record["queue"] = str(target)
    record["priority" if target.kind == "posix" else "type"] = tag
    record.update(message_fields(item, fmt))
    return record


def cmd_get(args: argparse.Namespace) -> int:
    target = args.queue
    check_kind_options(args, target)
    with opened(target, args.format, write=False) as q:
        for got in range(args.count):
            try:
                item, tag = receive(q, target, args)
            except queue.Empty:
                wanted = "" if args.count == 1 else f" (got {got} of {args.count})"
                raise CliError(
                    f"{target}: no message within {args.timeout:g} s{wanted}"
                ) from None
            except DecodeError as exc:
                raise CliError(undecodable(exc, args.format)) from None
            if args.json:
                write_line(to_json(record_of(target, item, tag, args.format, False)))
            elif args.format == "raw":
                write_line(item)
            else:
                write_line(to_json(item))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    target = args.queue
    check_kind_options(args, target)
    args.timeout = None
    seen = 0
    with opened(target, args.format, write=False) as q:
        while args.count is None or seen < args.count:
            try:
                item, tag = receive(q, target, args)
            except DecodeError as exc:
                # The message left the queue: show its bytes, go on.
                sent_as = exc.priority if target.kind == "posix" else exc.msg_type
                record = record_of(target, exc.payload, sent_as or 0, "raw", True)
                record["error"] = f"cannot decode as {args.format}"
                write_line(to_json(record))
            else:
                write_line(to_json(record_of(target, item, tag, args.format, True)))
            seen += 1
    return 0


def undecodable(exc: DecodeError, fmt: str) -> str:
    payload = exc.payload
    shown = repr(payload[:60]) + ("..." if len(payload) > 60 else "")
    return (
        f"a {len(payload)}-byte message is not {fmt} (it was taken from "
        f"the queue; its bytes: {shown})"
    )


# -- demo and bench ----------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from ipcq import _demo

    return _demo.run(
        messages=args.messages,
        producers=args.producers,
        consumers=args.consumers,
        out=sys.stdout,
    )


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        # Imported by name: the suite is a tool, not part of the typed API.
        bench = importlib.import_module("ipcq.bench")
    except ImportError as exc:
        raise CliError(f"the benchmark suite cannot be loaded: {exc}") from None
    # The suite parses its own options and draws its progress bar (on
    # standard error, when that is a terminal) through run()'s progress
    # callback.
    status = bench.main(list(args.bench_args))
    return status if isinstance(status, int) else 0


# -- the parser --------------------------------------------------------------

QUEUE_HELP = "/NAME (POSIX), a System V key (1234, 0x4d2) or id:N"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=("Look at and use the kernel's POSIX and System V message queues."),
        epilog=(
            "QUEUE is /NAME for a POSIX queue, a System V key (decimal or "
            "0x hex) or id:N for a System V queue by id.  'ipcq COMMAND "
            "--help' describes a command; 'ipcq demo' shows ipcq at work."
        ),
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {ipcq.__version__}"
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands"
    )
    commands.required = True

    p = commands.add_parser(
        "ls",
        help="list the queues on this system",
        description=(
            "List POSIX queues (from the mqueue file system, which must be "
            f"mounted: {MOUNT_HINT}) and System V queues (from {SYSV_PROC}), "
            "with their messages, sizes, mode and owner."
        ),
    )
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_ls)

    p = commands.add_parser(
        "info",
        help="show the attributes of one queue",
        description="Show the messages, limits, mode and owner of QUEUE.",
    )
    p.add_argument("queue", type=parse_queue, metavar="QUEUE", help=QUEUE_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_info)

    p = commands.add_parser(
        "rm",
        help="remove queues from the system",
        description=(
            "Remove each QUEUE from the system.  Messages in it are lost; "
            "processes that have a POSIX queue open keep it until they "
            "close it."
        ),
    )
    p.add_argument(
        "queues", type=parse_queue, nargs="+", metavar="QUEUE", help=QUEUE_HELP
    )
    p.add_argument("-f", "--force", action="store_true", help="ignore missing queues")
    p.add_argument("-v", "--verbose", action="store_true", help="say what was removed")
    p.set_defaults(func=cmd_rm)

    p = commands.add_parser(
        "put",
        help="send messages",
        description=(
            "Send MESSAGE to QUEUE, or each line of standard input as one "
            "message.  With --format raw (the default) the bytes are sent "
            "as they are; with json, msgpack or pickle each message is JSON "
            "text, sent encoded in that format.  The queue must exist "
            "unless --create is given."
        ),
    )
    p.add_argument("queue", type=parse_queue, metavar="QUEUE", help=QUEUE_HELP)
    p.add_argument(
        "message",
        nargs="?",
        metavar="MESSAGE",
        help="the message; without it, standard input, one message a line",
    )
    add_format(p)
    p.add_argument(
        "--priority",
        type=int,
        metavar="N",
        help="POSIX priority, 0 to 32767 (default 0; higher is received first)",
    )
    p.add_argument(
        "--type",
        type=int,
        metavar="N",
        help="System V message type, 1 or more (default 1)",
    )
    p.add_argument(
        "--timeout",
        type=parse_timeout,
        metavar="SECONDS",
        help="wait at most this long for room (default: as long as it takes)",
    )
    p.add_argument(
        "--create",
        action="store_true",
        help="create the queue if it does not exist",
    )
    p.add_argument(
        "--maxsize",
        type=int,
        default=10,
        metavar="N",
        help="with --create, a new POSIX queue's capacity in messages (10)",
    )
    p.add_argument(
        "--maxmsgsize",
        type=int,
        default=1024,
        metavar="BYTES",
        help="with --create, a new POSIX queue's largest message (1024)",
    )
    p.add_argument(
        "--mode",
        type=parse_mode,
        default=0o600,
        metavar="OCTAL",
        help="with --create, a new queue's permissions (600)",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="say how many were sent"
    )
    p.set_defaults(func=cmd_put)

    p = commands.add_parser(
        "get",
        help="receive messages",
        description=(
            "Take messages from QUEUE and print them one a line: raw bytes "
            "as they are, other formats as JSON.  POSIX queues give the "
            "highest priority first.  Waits for a message unless --timeout "
            "says otherwise; exits with status 1 if none came in time."
        ),
    )
    p.add_argument("queue", type=parse_queue, metavar="QUEUE", help=QUEUE_HELP)
    add_format(p)
    p.add_argument(
        "--type",
        type=int,
        metavar="N",
        help=(
            "System V: 0 the first message (default), N > 0 the first of "
            "type N, N < 0 the lowest type up to |N|"
        ),
    )
    p.add_argument(
        "--timeout",
        type=parse_timeout,
        metavar="SECONDS",
        help="wait at most this long for each message; 0: do not wait",
    )
    p.add_argument(
        "-n",
        "--count",
        type=parse_count,
        default=1,
        metavar="N",
        help="receive N messages (default 1)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print JSON records with the queue and priority or type",
    )
    p.set_defaults(func=cmd_get)

    p = commands.add_parser(
        "watch",
        help="print messages as they arrive",
        description=(
            "Take messages from QUEUE as they arrive and print each as one "
            "JSON line (time, queue, priority or type, message) until "
            "interrupted with Ctrl-C.  Kernel queues cannot be read "
            "without taking the message: watch is a consumer."
        ),
    )
    p.add_argument("queue", type=parse_queue, metavar="QUEUE", help=QUEUE_HELP)
    add_format(p)
    p.add_argument(
        "--type",
        type=int,
        metavar="N",
        help="System V: which messages to take, as for 'ipcq get --type'",
    )
    p.add_argument(
        "-n",
        "--count",
        type=parse_count,
        metavar="N",
        help="stop after N messages",
    )
    p.set_defaults(func=cmd_watch)

    p = commands.add_parser(
        "demo",
        help="a self-contained tour (needs no setup)",
        description=(
            "Create a few queues, show POSIX priorities and System V types, "
            "run producer and consumer processes with every serializer, "
            "print what was sent and received and how fast, and remove the "
            "queues (also on Ctrl-C)."
        ),
    )
    p.add_argument(
        "--messages",
        type=parse_count,
        default=10000,
        metavar="N",
        help="messages per producer in each run (default 10000)",
    )
    p.add_argument(
        "--producers",
        type=parse_count,
        default=2,
        metavar="N",
        help="producer processes (default 2)",
    )
    p.add_argument(
        "--consumers",
        type=parse_count,
        default=2,
        metavar="N",
        help="consumer processes (default 2)",
    )
    p.set_defaults(func=cmd_demo)

    # Every argument after 'bench' goes to the suite's own parser, --help
    # included (see main()).
    p = commands.add_parser(
        "bench",
        help="run the benchmark suite ('ipcq bench --help' for its options)",
        add_help=False,
    )
    p.set_defaults(func=cmd_bench)
    return parser


def add_format(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="raw",
        help="how messages are encoded (default raw)",
    )


# -- running -----------------------------------------------------------------


def describe(exc: BaseException) -> str:
    """An exception as the end of an error line."""
    if isinstance(exc, OSError) and exc.strerror:
        return str(exc.strerror)
    return str(exc) or type(exc).__name__


def error(message: str) -> None:
    print(message, file=sys.stderr)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    error(f"{PROG}: warning: {message}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ipcq`` command with *argv* (default: sys.argv[1:]).

    Returns the exit status; the console script passes it to sys.exit.
    """
    warnings.showwarning = _show_warning
    parser = build_parser()
    command = "ipcq"
    try:
        args, extra = parser.parse_known_args(argv)
        command = f"{PROG} {args.command}"
        if args.command == "bench":
            args.bench_args = extra
        elif args.command == "put" and args.message is None and len(extra) == 1:
            # argparse matches an optional positional right after QUEUE
            # only: "put /q --create MESSAGE" leaves MESSAGE over.
            args.message = extra.pop()
        if extra and args.command != "bench":
            raise CliError(
                f"unrecognized arguments: {' '.join(extra)} (see '{command} --help')",
                status=2,
            )
        status: int = args.func(args)
    except CliError as exc:
        print(f"{exc.prog or command}: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (ipcq watch /q | head): stop quietly.
        _silence_stdout()
        return 141
    except OSError as exc:
        print(f"{command}: {describe(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:
        if os.environ.get("IPCQ_DEBUG"):
            raise
        print(
            f"{command}: internal error: {type(exc).__name__}: {exc} "
            "(IPCQ_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1
    return status


def _silence_stdout() -> None:
    # Flushing a broken pipe again at exit would print an error.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
