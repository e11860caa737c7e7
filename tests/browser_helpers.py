"""Checks the browser tests share (tests/test_browser*.py): what is on screen, what fits, what has loaded.

Plain functions over a :class:`tests.test_browser.Screen`; importing this module needs neither
Chromium nor Playwright (the test modules that use it skip without them, through tests/test_browser.py).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.test_browser import Screen

#: A station as a health centre's card would name it (``[station]``), for the kiosk under test.
STATION = {"KIOSK_STATION_NAME": "Barangay San Jose Health Station", "KIOSK_STATION_CODE": "PH-LEY-0001"}
#: Every field of the slip the receiving doctor needs (issue 14).
SLIP_FIELDS = ("slip-station", "slip-body-site", "slip-see-by", "slip-code", "slip-photo", "slip-qr")

#: What a walk that taps on before a page has finished cuts off itself: the page's status poll, the live
#: preview, History's lazy thumbnails. Not the page's fault.
ABORTED_BY_US = r"/(api/state|stream\.mjpg|photos/[^/ ]+/thumb\.jpg)\S* \(net::ERR_ABORTED\)"

OVERFLOWING_LABELS = """() => Array.from(document.querySelectorAll('.btn, button, .choice span'))
    .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; })
    .filter(e => e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1)
    .map(e => ({label: e.innerText.trim(), scroll: e.scrollWidth, client: e.clientWidth}))"""


def inside_viewport(screen: Screen, testid: str) -> None:
    """The element is wholly on the first screen (no scrolling to see it)."""
    box = screen.testid(testid).bounding_box()
    size = screen.page.viewport_size
    assert box is not None, testid
    assert box["x"] >= 0 and box["y"] >= 0, (screen.name, testid, box)
    assert box["x"] + box["width"] <= size["width"] and box["y"] + box["height"] <= size["height"], (
        screen.name,
        testid,
        box,
    )


def assert_labels_fit(screen: Screen, label: str) -> None:
    """:meth:`Screen.assert_fits`, and no button's label is wider (or taller) than its button."""
    screen.assert_fits(label)
    overflowing = screen.page.evaluate(OVERFLOWING_LABELS)
    assert overflowing == [], f"{screen.name} {label}: labels wider than their buttons: {overflowing}"


def image_loaded(screen: Screen, selector: str) -> bool:
    """Every ``<img>`` matching ``selector`` has been fetched and decoded."""
    return screen.page.evaluate(
        "(s) => Array.from(document.querySelectorAll(s)).every(i => i.complete && i.naturalWidth > 0)", selector
    )


def forget_aborted_by_us(screen: Screen) -> None:
    """Drop the requests the walk's own navigation cut off (:data:`ABORTED_BY_US`) from ``screen.problems``."""
    screen.problems = [p for p in screen.problems if not re.search(ABORTED_BY_US, p)]
