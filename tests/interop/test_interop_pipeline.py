"""The example pipeline (examples/pipeline/run.py) runs as documented."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from ipcq import posixmq, sysvmq

RUN = os.path.join(
    os.path.dirname(__file__), "..", "..", "examples", "pipeline", "run.py"
)


@pytest.mark.parametrize("consumer", ["default", "python"])
def test_pipeline_moves_every_reading_and_removes_its_queues(consumer):
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler (cc or gcc) for the pipeline's producer")
    args = [sys.executable, RUN, "--count", "7"]
    if consumer == "python":
        args.append("--python-consumer")

    result = subprocess.run(args, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("[C producer]      sensor") == 7
    assert out.count("[Python stage]    sensor") == 7
    samples = re.findall(r"\] +sample sensor=(\d+) celsius=([\d.]+)", out)
    assert [int(s) for s, _ in samples] == [100, 101, 102, 100, 101, 102, 100]
    # 1850 + i * 731 % 1500 hundredths of a degree, as the producer sends.
    assert [c for _, c in samples] == [
        f"{(1850 + i * 731 % 1500) / 100:.2f}" for i in range(7)
    ]
    alerts = re.findall(r"\] +ALERT  sensor=\d+", out)
    assert len(alerts) == 3
    assert re.search(r"\] +done   readings=7 alerts=3 ", out)
    if consumer == "python" or not shutil.which("go"):
        assert "[Python consumer]" in out
    else:
        assert "[Go consumer]" in out

    removed = re.search(r"removed POSIX queue (\S+) and System V queue (\d+)", out)
    assert removed, out
    with pytest.raises(FileNotFoundError):
        posixmq.Queue(removed[1], create=False)
    with pytest.raises(FileNotFoundError):
        sysvmq.Queue(int(removed[2]), create=False)
