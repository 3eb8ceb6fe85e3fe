"""``python -m postroom.cli``: the same as the ``postroom`` command (tests and scripts that have no console script)."""

from __future__ import annotations

import sys

from postroom.cli import main

sys.exit(main())
