"""``python -m ipcq``: the ``ipcq`` command (see :mod:`ipcq.cli`)."""

import sys

from ipcq.cli import main

sys.exit(main())
