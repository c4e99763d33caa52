"""``python -m ipcq.bench``: see :mod:`ipcq.bench`."""

import sys

from ipcq.bench import main

sys.exit(main())
