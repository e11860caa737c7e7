"""``python -m kiosk.updates COMMAND``: the update commands without the ``kiosk`` front end (deploy scripts)."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
