"""Medians, ratios, targets, the printed table, the JSON and the chart."""

import itertools
import json
import math
import os
import statistics

from ipcq.bench._harness import BenchError

TITLES = {
    "pair": "put + get in one process: ns per pair",
    "batch": "batch calls: ns per message (C: the same calls one by one)",
    "get_into": "put + get_into in one process: ns per pair (C: put + get)",
    "stream": "one producer process -> one consumer process",
    "pingpong": "ping-pong between two processes: round-trip latency",
}
ORDER = ("pair", "batch", "get_into", "stream", "pingpong")

# RSS growth below this over the whole memory check counts as flat.
FLAT_KIB = 1024


def _percentile(sorted_values, fraction):
    # Nearest rank: the smallest value with at least *fraction* of the
    # values at or below it.
    index = max(0, math.ceil(fraction * len(sorted_values)) - 1)
    return sorted_values[index]


def summarize(cases):
    """One result per case: medians over the rounds, and the samples."""
    results = []
    for case in cases:
        c = case.contender
        result = {
            "test": case.test,
            "variant": case.variant,
            "key": c.key,
            "label": case.label,
            "kind": c.kind,
            "family": c.family,
            "serializer": case.serializer,
            "size": case.size,
            # The POSIX queue's mq_msgsize and mq_maxmsg, where one is used.
            "msgsize": case.spec.msgsize,
            "depth": case.spec.depth,
            "n": case.n,
            "nsamples": len(case.samples),
        }
        if case.test == "stream":
            for field in (
                "rate",
                "wall_ns",
                "cpu_ns",
                "cpu_ns_producer",
                "cpu_ns_consumer",
            ):
                result[field] = statistics.median(s[field] for s in case.samples)
            result["median"] = result["cpu_ns"]
            result["samples"] = [
                {k: round(v, 1) for k, v in s.items()} for s in case.samples
            ]
        elif case.test == "pingpong":
            pooled = sorted(
                itertools.chain.from_iterable(s["latencies"] for s in case.samples)
            )
            result["median"] = statistics.median(pooled)
            result["p99"] = _percentile(pooled, 0.99)
            result["samples"] = [
                {
                    "median": statistics.median(s["latencies"]),
                    "p99": _percentile(sorted(s["latencies"]), 0.99),
                }
                for s in case.samples
            ]
        else:
            values = [s["ns"] for s in case.samples]
            result["median"] = statistics.median(values)
            result["samples"] = [round(v, 1) for v in values]
        results.append(result)
    return results


def _find(results, test, variant, key, serializer=None):
    for r in results:
        if (
            r["test"] == test
            and r["variant"] == variant
            and r["key"] == key
            and (serializer is None or r["serializer"] == serializer)
        ):
            return r
    return None


def c_reference(results, result):
    """The C floor's result for the same test, variant and queue kind."""
    return _find(
        results, result["test"], result["variant"], f"c-{result['kind'] or 'posix'}"
    )


def ipcq_reference(results, result):
    """ipcq's result a peer's row is compared with, or None."""
    if result["family"] not in ("peer", "binding"):
        return None
    return _find(
        results,
        result["test"],
        result["variant"],
        f"ipcq-{result['kind'] or 'posix'}",
        result["serializer"],
    )


def _ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


# -- targets -------------------------------------------------------------------


def _target(name, value, op, bound, note=""):
    if value is None:
        met = None
    elif op == "<=":
        met = value <= bound
    else:
        met = value >= bound
    return {
        "name": name,
        "value": value,
        "op": op,
        "bound": bound,
        "met": met,
        "note": note,
    }


def _median(r):
    return None if r is None else r["median"]


def targets(data):
    """Each performance target of ipcq, with the measured value."""
    results = data["results"]
    out = []

    def get(test, variant, key, serializer=None):
        return _median(_find(results, test, variant, key, serializer))

    raw64 = "raw 64 B"

    def variants(test):
        return sorted({r["variant"] for r in results if r["test"] == test})

    def floor_note(test, variant, kind, value, bound):
        # Where even the bare binding is above the bound, no binding that
        # releases the GIL while it waits could meet it on this machine.
        binding = _ratio(
            get(test, variant, f"binding-{kind}"), get(test, variant, f"c-{kind}")
        )
        if value is None or value <= bound or binding is None or binding <= bound:
            return ""
        return (
            f"unreachable here: the bare binding itself is {binding:.2f}x the C floor"
        )

    for kind in ("posix", "sysv"):
        ipcq = get("pair", raw64, f"ipcq-{kind}", "raw")
        c = get("pair", raw64, f"c-{kind}")
        value = _ratio(ipcq, c)
        out.append(
            _target(
                f"pair {raw64}, ipcq {kind}: within 1.2x of C",
                value,
                "<=",
                1.2,
                floor_note("pair", raw64, kind, value, 1.2),
            )
        )
    for kind, peer in (
        ("posix", "posix_ipc"),
        ("sysv", "sysv_ipc"),
        ("posix", "ipcqueue-posix"),
        ("sysv", "ipcqueue-sysv"),
    ):
        bound = 3.0 if peer.startswith("ipcqueue") else 1.8
        ipcq = get("pair", raw64, f"ipcq-{kind}", "raw")
        other = get("pair", raw64, peer, "raw")
        c = get("pair", raw64, f"c-{kind}")
        binding = get("pair", raw64, f"binding-{kind}")
        gain = _ratio(other, ipcq)
        note = ""
        missed = gain is not None and gain < bound
        # Even a binding that cost nothing would be the C floor, and one
        # that does nothing but the calls is the bare binding: no faster.
        for floor, what in ((binding, "the bare binding"), (c, "the C floor")):
            ceiling = _ratio(other, floor)
            if missed and ceiling is not None and ceiling < bound:
                note = f"unreachable here: {peer} itself is only {ceiling:.2f}x {what}"
                break
        out.append(
            _target(
                f"pair {raw64}, ipcq {kind}: >= {bound:g}x faster than {peer}",
                gain,
                ">=",
                bound,
                note,
            )
        )
    for name in data.get("objects", ()):
        for kind in ("posix", "sysv"):
            ipcq = get("pair", name, f"ipcq-{kind}", "pickle")
            other = get("pair", name, f"ipcqueue-{kind}", "pickle")
            out.append(
                _target(
                    f"pair {name} pickle, ipcq {kind}: >= 2.5x faster than "
                    f"ipcqueue {kind}",
                    _ratio(other, ipcq),
                    ">=",
                    2.5,
                )
            )
    for test, what in (
        ("stream", "CPU per message"),
        ("pingpong", "median round trip"),
    ):
        for variant in variants(test):
            for kind in ("posix", "sysv"):
                ipcq = get(test, variant, f"ipcq-{kind}")
                c = get(test, variant, f"c-{kind}")
                value = _ratio(ipcq, c)
                out.append(
                    _target(
                        f"{test} {variant}, ipcq {kind}: {what} within 1.2x of C",
                        value,
                        "<=",
                        1.2,
                        floor_note(test, variant, kind, value, 1.2),
                    )
                )
    # get_into() is there to spare an allocation, not a system call: its
    # pair is the put + get pair's, measured against the same C loop, and
    # has no bound of its own.
    for test in ("batch",):
        for variant in variants(test):
            for kind in ("posix", "sysv"):
                ipcq = get(test, variant, f"ipcq-{kind}")
                c = get(test, variant, f"c-{kind}")
                out.append(
                    _target(
                        f"{test} {variant}, ipcq {kind}: per message within "
                        "1.05x of the C loop",
                        _ratio(ipcq, c),
                        "<=",
                        1.05,
                    )
                )
    for m in data.get("memory", ()):
        out.append(
            _target(
                f"memory, ipcq {m['kind']}: RSS growth over "
                f"{m['messages']:,} put + get (KiB)",
                m["growth_kib"],
                "<=",
                FLAT_KIB,
            )
        )
    return out


# -- the printed report ------------------------------------------------------


def _fmt_ns(value):
    if value is None:
        return "-"
    return f"{value:,.0f}"


def _fmt_us(value):
    return "-" if value is None else f"{value / 1000:,.1f}"


def _fmt_ratio(value):
    return "" if value is None else f"{value:.2f}"


def _table(headers, rows, align):
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]
    lines = []
    for row in [headers] + rows:
        cells = [
            str(x).ljust(w) if a == "<" else str(x).rjust(w)
            for x, w, a in zip(row, widths, align)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    lines.insert(1, "  " + "  ".join("-" * w for w in widths))
    return lines


HEADERS = {
    "stream": (
        [
            "variant",
            "contender",
            "msgs/s",
            "wall ns/msg",
            "CPU ns/msg",
            "CPU vs C",
            "ipcq gain (CPU)",
        ],
        "<<>>>>>",
    ),
    "pingpong": (
        [
            "variant",
            "contender",
            "median us",
            "p99 us",
            "vs C",
            "p99 vs C",
            "ipcq gain",
        ],
        "<<>>>>>",
    ),
}
DEFAULT_HEADERS = (["variant", "contender", "ns", "vs C", "ipcq gain"], "<<>>>")


def _row(results, r):
    c = c_reference(results, r)
    ipcq = ipcq_reference(results, r)
    if r["test"] == "stream":
        return [
            r["variant"],
            r["label"],
            f"{r['rate']:,.0f}",
            _fmt_ns(r["wall_ns"]),
            _fmt_ns(r["cpu_ns"]),
            _fmt_ratio(_ratio(r["cpu_ns"], _median(c))),
            _fmt_ratio(_ratio(r["cpu_ns"], _median(ipcq))),
        ]
    if r["test"] == "pingpong":
        return [
            r["variant"],
            r["label"],
            _fmt_us(r["median"]),
            _fmt_us(r["p99"]),
            _fmt_ratio(_ratio(r["median"], _median(c))),
            _fmt_ratio(_ratio(r["p99"], c and c["p99"])),
            _fmt_ratio(_ratio(r["median"], _median(ipcq))),
        ]
    return [
        r["variant"],
        r["label"],
        _fmt_ns(r["median"]),
        _fmt_ratio(_ratio(r["median"], _median(c))),
        _fmt_ratio(_ratio(r["median"], _median(ipcq))),
    ]


def sections(data):
    """``(test, title, headers, align, rows)`` for each test measured."""
    results = data["results"]
    out = []
    for test in ORDER:
        rows = [_row(results, r) for r in results if r["test"] == test]
        if rows:
            headers, align = HEADERS.get(test, DEFAULT_HEADERS)
            out.append((test, TITLES[test], headers, align, rows))
    return out


def _target_line(t):
    if t["met"] is None:
        state, value = "n/a", "-"
    else:
        state = "MET" if t["met"] else "MISS"
        value = (
            f"{t['value']:.2f}" if isinstance(t["value"], float) else str(t["value"])
        )
    return state, value


def _rounds_text(settings):
    rounds = settings["rounds"]
    repeats = settings.get("repeats", 1)
    if repeats == 1:
        return f"{rounds} rounds"
    return f"{rounds} rounds, {rounds * repeats} samples in one process"


def format_report(data):
    """The results as the text table the command prints."""
    m = data["machine"]
    lines = [
        "",
        f"ipcq benchmarks ({data['mode']} run, {data['elapsed_s']} s, "
        f"medians of {_rounds_text(data['settings'])})",
        f"machine: {m['cpu']}, {m['cores']} cores; {m['kernel']}; "
        f"{m['python']}; {m['compiler'] or 'cc'}",
        "'vs C': this / the C floor of the same queue kind (other transports: POSIX).",
        "'ipcq gain': this peer / ipcq of the same kind and serializer: "
        "how many times ipcq is faster.",
    ]
    for note in data["notes"]:
        lines.append(f"note: {note}")

    for _, title, headers, align, rows in sections(data):
        # The variant is printed once, on the first row of its group.
        shown = []
        previous = None
        for row in rows:
            shown.append([row[0] if row[0] != previous else ""] + row[1:])
            previous = row[0]
        lines += ["", title] + _table(headers, shown, align)

    if data.get("memory"):
        lines += [
            "",
            "memory: resident set size of the process (KiB) "
            "before, during and after put + get pairs",
        ]
        for mem in data["memory"]:
            lines.append(
                f"  ipcq {mem['kind']}: {mem['messages']:,} x "
                f"{mem['item']}: "
                + " ".join(str(k) for k in mem["rss_kib"])
                + f"  (growth {mem['growth_kib']} KiB)"
            )

    lines += ["", "targets"]
    for t in data["targets"]:
        state, value = _target_line(t)
        line = f"  {state:<4} {value:>7} {t['op']} {t['bound']:<5g} {t['name']}"
        if t["note"]:
            line += f" ({t['note']})"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _rst_table(headers, rows):
    """A reStructuredText simple table (no cell may be empty)."""
    # ".." is an empty comment, the way to leave a cell blank; an escaped
    # quote stays straight instead of becoming a typographic one.
    rows = [
        [".." if cell == "" else cell.replace("'", "\\'") for cell in row]
        for row in rows
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]
    rule = "  ".join("=" * w for w in widths)
    lines = [rule, "  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append(rule)
    for row in rows:
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
    lines.append(rule)
    return [line.rstrip() for line in lines]


def format_rst(data):
    """The tables and targets as reStructuredText, for the documentation."""
    lines = []
    for _, title, headers, _, rows in sections(data):
        lines += [f".. rubric:: {title}", ""]
        lines += _rst_table(headers, rows) + [""]
    if data.get("memory"):
        lines += [".. rubric:: memory: RSS (KiB) before, during and after", ""]
        rows = [
            [
                f"ipcq {m['kind']}",
                f"{m['messages']:,}",
                m["item"],
                " ".join(str(k) for k in m["rss_kib"]),
                str(m["growth_kib"]),
            ]
            for m in data["memory"]
        ]
        lines += _rst_table(
            ["queue", "messages", "item", "RSS (KiB)", "growth"], rows
        ) + [""]
    lines += [".. rubric:: targets", ""]
    rows = []
    for t in data["targets"]:
        state, value = _target_line(t)
        name = t["name"] + (f" ({t['note']})" if t["note"] else "")
        rows.append([state, value, f"{t['op']} {t['bound']:g}", name])
    lines += _rst_table(["", "value", "bound", "target"], rows)
    return "\n".join(lines) + "\n"


def write_text(text, path):
    """Write *text* to *path*, making its directory if needed."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    except OSError as exc:
        raise BenchError(f"cannot write {path}: {exc.strerror}") from None


def write_json(data, path):
    """Write the results to *path* as indented JSON."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        with open(path, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
    except OSError as exc:
        raise BenchError(f"cannot write {path}: {exc.strerror}") from None


# -- the chart -----------------------------------------------------------------


def check_png_support():
    """Raise BenchError if matplotlib is missing (checked before a run)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BenchError("--png needs matplotlib (pip install matplotlib)") from None


COLORS = {
    "c": "#555555",
    "binding": "#2ca02c",
    "ref": "#aaaaaa",
    "ipcq": "#1f77b4",
    "peer": "#ff7f0e",
}


def _hbars(ax, rows, value, title, xlabel, log=False, extra=None, clip=None):
    """Horizontal bars, one per row, top to bottom in the order given.

    With *clip*, bars longer than *clip* times the shortest stop at the
    edge, marked with their value, so that the short ones stay readable.
    """
    from matplotlib import ticker

    labels = [r["label"] for r in rows]
    values = [value(r) for r in rows]
    limit = None
    if clip and max(values) > clip * min(values):
        limit = clip * min(values)
        ax.set_xlim(0, limit * 1.15)
    shown = [v if limit is None else min(v, limit) for v in values]
    ys = list(range(len(rows)))[::-1]
    colors = [COLORS[r["family"]] for r in rows]
    ax.barh(ys, shown, color=colors, height=0.7)
    if extra is not None:
        ax.scatter(
            [extra(r) for r in rows],
            ys,
            marker="|",
            s=120,
            color="black",
            zorder=3,
            label="p99",
        )
        ax.legend(loc="lower right", fontsize=7)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=7)
    if log:
        ax.set_xscale("log")
        plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", which="major", alpha=0.3)
    for y, v, w in zip(ys, values, shown):
        text = f" {v:,.2f}" if v < 10 else f" {v:,.0f}"
        if w < v:
            text += " (cut)"
        ax.text(w, y, text, va="center", fontsize=6)


def draw_png(data, path):
    """Draw the chart of the main results to *path* (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    results = data["results"]

    def rows(test, variant, serializers=None):
        return [
            r
            for r in results
            if r["test"] == test
            and r["variant"] == variant
            and (serializers is None or r["serializer"] in serializers)
        ]

    def us(key):
        return lambda r: r[key] / 1000

    panels = []
    for variant in ("raw 64 B", "raw 8 KiB", "[1, 'A']", "small dict"):
        title = f"put + get, {variant}"
        if not variant.startswith("raw"):
            title += " (C: as many bytes)"
        panels.append(
            (
                rows("pair", variant),
                us("median"),
                title,
                "us per put + get",
                False,
                None,
            )
        )
    stream = "raw 64 B, two CPUs"
    panels += [
        (
            rows("stream", stream),
            us("cpu_ns"),
            f"stream, {stream}: CPU time of both processes",
            "us of CPU per message",
            False,
            None,
        ),
        (
            rows("stream", stream),
            lambda r: r["rate"] / 1000,
            f"stream, {stream}: throughput",
            "thousand messages per second",
            False,
            None,
        ),
    ]
    for place in ("one CPU", "two CPUs"):
        panels.append(
            (
                rows("pingpong", f"raw 64 B, {place}"),
                us("median"),
                f"ping-pong, raw 64 B, {place}: median (bar) and p99",
                "us per round trip (log scale)",
                True,
                us("p99"),
            )
        )
    panels = [p for p in panels if p[0]]
    if not panels:
        raise BenchError("no results to draw")
    columns = 2
    lines = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(13, 4.2 * lines))
    axes = list(getattr(axes, "flat", [axes]))
    for ax, (panel_rows, value, title, xlabel, log, extra) in zip(axes, panels):
        # The one-process pairs of the threaded transports take tens of
        # times longer than the rest: their bars are cut.
        clip = 10 if title.startswith("put + get") else None
        _hbars(ax, panel_rows, value, title, xlabel, log=log, extra=extra, clip=clip)
    for ax in axes[len(panels) :]:
        ax.axis("off")
    m = data["machine"]
    fig.suptitle(
        f"ipcq benchmarks: {m['cpu']}, {m['cores']} cores, {m['kernel']}, "
        f"{m['python']} (medians of {_rounds_text(data['settings'])})\n"
        "dark grey: C floor, green: bare binding, light grey: pickle alone, "
        "blue: ipcq, orange: peers",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    try:
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise BenchError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        plt.close(fig)
