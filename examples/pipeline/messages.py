"""The message kinds of the pipeline, shared by its Python programs.

POSIX queue, from the C producer (struct layouts of producer.c):
  1 Reading  struct reading, 16 bytes
  2 End      uint32_t, the number of readings sent

System V queue, from the Python stage (JSON; the message type is the
kind, which the Go consumer switches on):
  1 Sample   {"sensor", "celsius", "time"}
  2 Alert    {"sensor", "celsius"}
  3 Done     {"readings", "alerts", "mean_celsius"}
"""

from dataclasses import dataclass

from ipcq.serializers import StructSerializer
from ipcq.typed import MessageKinds

#: Readings above this many degrees Celsius raise an alert.
ALERT_ABOVE = 30.0


@dataclass
class Reading:
    sensor: int
    centi_celsius: int
    time: float


@dataclass
class End:
    count: int


@dataclass
class Sample:
    sensor: int
    celsius: float
    time: float


@dataclass
class Alert:
    sensor: int
    celsius: float


@dataclass
class Done:
    readings: int
    alerts: int
    mean_celsius: float


def raw_kinds():
    """The kinds the C producer sends."""
    kinds = MessageKinds()
    kinds.register(1, Reading, StructSerializer("@Iid", Reading))
    kinds.register(2, End, StructSerializer("@I", End))
    return kinds


def cooked_kinds():
    """The kinds the Python stage sends on."""
    kinds = MessageKinds()
    kinds.register(1, Sample, "json")
    kinds.register(2, Alert, "json")
    kinds.register(3, Done, "json")
    return kinds
