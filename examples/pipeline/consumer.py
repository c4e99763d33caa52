"""Stage 3 of the pipeline in Python, for machines without Go.

    consumer.py SYSV_KEY

Does what consumer.go does: prints each sample and alert from the System
V queue until the summary arrives.
"""

import sys

from messages import Alert, Done, Sample, cooked_kinds

from ipcq import sysvmq
from ipcq.typed import TypedQueue


def main(key):
    q = sysvmq.Queue(key, serializer="raw", create=False)
    try:
        typed = TypedQueue(q, cooked_kinds())
        while True:
            item = typed.get(timeout=10)
            if isinstance(item, Sample):
                print(
                    f"[Python consumer] sample sensor={item.sensor} "
                    f"celsius={item.celsius:.2f}",
                    flush=True,
                )
            elif isinstance(item, Alert):
                print(
                    f"[Python consumer] ALERT  sensor={item.sensor} "
                    f"celsius={item.celsius:.2f}",
                    flush=True,
                )
            elif isinstance(item, Done):
                print(
                    f"[Python consumer] done   readings={item.readings} "
                    f"alerts={item.alerts} mean={item.mean_celsius:.2f}",
                    flush=True,
                )
                return
    finally:
        q.detach()


if __name__ == "__main__":
    main(int(sys.argv[1]))
