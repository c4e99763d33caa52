"""Stage 2 of the pipeline: Python between the C producer and the consumer.

    stage.py POSIX_QUEUE SYSV_KEY

Reads the C producer's typed messages (a C struct per reading) from the
POSIX queue, converts each reading to degrees Celsius, and sends a JSON
sample, plus an alert for a hot one, on the System V queue.  When the
producer's end marker arrives, it sends a summary and stops.
"""

import sys

from messages import ALERT_ABOVE, Alert, Done, End, Sample, cooked_kinds, raw_kinds

from ipcq import posixmq, sysvmq
from ipcq.typed import TypedQueue


def main(name, key):
    # Both queues exist already (run.py made them): open, never create.
    with posixmq.Queue(name, serializer="raw", create=False, write=False) as raw:
        cooked = sysvmq.Queue(key, serializer="raw", create=False)
        try:
            run(TypedQueue(raw, raw_kinds()), TypedQueue(cooked, cooked_kinds()))
        finally:
            # detach, not close: close() would remove the queue under the
            # consumer's feet.
            cooked.detach()


def run(source, sink):
    total = 0.0
    readings = alerts = 0
    while True:
        item = source.get(timeout=10)
        if isinstance(item, End):
            if item.count != readings:
                sys.exit(f"the producer sent {item.count} readings, got {readings}")
            break

        celsius = item.centi_celsius / 100
        sink.put(Sample(item.sensor, celsius, item.time))
        readings += 1
        total += celsius
        if celsius > ALERT_ABOVE:
            sink.put(Alert(item.sensor, celsius))
            alerts += 1
        print(
            f"[Python stage]    sensor {item.sensor}: {celsius:.2f} C"
            + (" -> alert" if celsius > ALERT_ABOVE else ""),
            flush=True,
        )

    mean = round(total / readings, 2) if readings else 0.0
    sink.put(Done(readings, alerts, mean))
    print(f"[Python stage]    {readings} readings, {alerts} alerts", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
