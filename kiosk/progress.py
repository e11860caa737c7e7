"""A dependency-free progress bar for long loops (evaluate, bench, the trainer's cache).

It writes to stderr only when stderr is a terminal, so logs and CI output stay clean.

>>> list(progress([1, 2, 3], label="demo"))
[1, 2, 3]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence, Sized
from typing import TypeVar

T = TypeVar("T")


def progress(items: Sequence[T] | Iterable[T], *, label: str, total: int | None = None) -> Iterable[T]:
    """A progress bar on stderr when it is a terminal; silent otherwise.

    ``total`` is needed only for an iterator, which has no length.
    """
    total = len(items) if total is None and isinstance(items, Sized) else total
    tty = sys.stderr.isatty()
    started = time.monotonic()
    for i, item in enumerate(items, 1):
        yield item
        if tty and total and (i == total or i % 10 == 0):
            rate = i / max(time.monotonic() - started, 1e-6)
            bar = "#" * int(30 * i / total)
            print(
                f"\r{label} [{bar:<30}] {i}/{total} {rate:.0f}/s",
                end="\n" if i == total else "",
                file=sys.stderr,
                flush=True,
            )
