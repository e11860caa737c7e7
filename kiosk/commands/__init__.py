"""More ``kiosk`` sub-commands, one module each, found by :func:`discover`.

A module here defines ``NAME`` (the sub-command), ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``, and raises
:class:`kiosk.reasons.KioskError` for a one-line error. Adding a command is
adding a file: ``kiosk/cli.py`` need not change.

>>> [c.NAME for c in discover()] == sorted(c.NAME for c in discover())
True
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from typing import Protocol, cast

__all__ = ["Command", "discover"]


class Command(Protocol):
    NAME: str
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def discover() -> list[Command]:
    """Every command module in this package, sorted by name."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            found.append(cast(Command, module))
    return sorted(found, key=lambda c: c.NAME)
