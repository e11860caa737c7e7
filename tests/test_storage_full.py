"""A full disk is never silent: records make room from old photos first, then the API, page and health say so.

The real-filesystem tests mount a small tmpfs (needs root and a mount(8) that
works in this environment; they skip otherwise). The others make the photo
write fail with ENOSPC where a real disk reports it (fsync of the photo),
so they run everywhere.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import kiosk.storage
from kiosk.daemon import Health
from kiosk.reasons import message
from kiosk.records import RecordStore, StorageFullError
from kiosk.records.store import _is_no_space
from kiosk.result import ScreeningResult
from kiosk.station import Station
from kiosk.web import create_app
from tests.web_conftest import FAST_RETRY, Rig, csrf_of, make_settings, rig  # noqa: F401 - fixtures

T0 = datetime(2026, 6, 1, 8, 0, 0, tzinfo=UTC)
RESULT = ScreeningResult(status="ok", malignant_probability=0.8, risk="refer", threshold=0.23)
FULL_MESSAGE = "Storage full, results are not being saved. Write this result down and tell the kiosk's keeper."


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def jpeg(size: int) -> bytes:
    return b"\xff\xd8" + os.urandom(size - 4) + b"\xff\xd9"  # random: tmpfs cannot compress it either


# --- a real full file system ----------------------------------------------------------------------


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10, check=False)


def fill(disk: Path, *, leave: int = 0) -> Path:
    """Take all the free space on ``disk`` but ``leave`` bytes; return the filler file."""
    filler = disk / "filler"
    with open(filler, "ab") as f:
        try:
            while True:
                room = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize - leave
                if room <= 0:
                    break
                f.write(b"\0" * min(room, 1 << 16))
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_real_full_disk_prunes_old_photos_first_then_refuses(small_disk: Path) -> None:
    clock = Clock(T0 - timedelta(days=200))  # older than the 180-day photo retention
    with RecordStore(small_disk / "data", clock=clock, min_free_bytes=64 * 1024) as store:
        old = store.save(RESULT, image_jpeg=jpeg(600_000))
        clock.now = T0
        filler = fill(small_disk)
        assert store.storage_full

        # No room for the new photo: the old photo goes (its record stays), then the save succeeds.
        new = store.save(RESULT, image_jpeg=jpeg(100_000))
        assert store.get(old).image_path is None and store.get(old).result == RESULT
        assert store.get(new).image_path is not None and store.get(new).image_path.stat().st_size == 100_000
        assert store.last_save_error is None

        # Full again, and nothing left past retention: refused, and nothing half-written stays.
        fill(small_disk)
        with pytest.raises(StorageFullError) as info:
            store.save(RESULT, image_jpeg=jpeg(100_000))
        assert info.value.code == "storage_full"
        assert store.count() == 2 and store.storage_full and store.last_save_error == "storage_full"
        assert sorted(p.name for p in store.images_dir.iterdir()) == [f"{new}.jpg"]  # no temp file, no orphan
        assert store.get(new).image_path.read_bytes()[:2] == b"\xff\xd8"  # the kept photo is intact

        # Space back: saving works again and the store no longer counts as full.
        filler.unlink()
        assert store.save(RESULT, image_jpeg=jpeg(100_000))
        assert not store.storage_full and store.count() == 3
    with RecordStore(small_disk / "data") as reopened:
        assert reopened.count() == 3 and reopened.repair().missing_images == 0


# --- a disk that reports ENOSPC at the photo's fsync ---------------------------------------------


class FullDisk:
    """Makes every photo write fail with ENOSPC while ``full`` (at os.fsync, where a real disk can)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = True
        self.failures = 0
        real = os.fsync

        def fsync(fd: int) -> None:
            if self.full:
                self.failures += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(fd)

        monkeypatch.setattr(kiosk.storage.os, "fsync", fsync)


def test_no_space_is_recognised_from_the_os_and_from_sqlite() -> None:
    assert _is_no_space(OSError(errno.ENOSPC, "No space left on device"))
    assert _is_no_space(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert _is_no_space(sqlite3.OperationalError("database or disk is full"))
    assert not _is_no_space(OSError(errno.EIO, "Input/output error"))
    assert not _is_no_space(sqlite3.OperationalError("database is locked"))


def test_full_disk_save_prunes_only_photos_past_retention(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(T0 - timedelta(days=181))
    with RecordStore(tmp_path / "data", clock=clock, min_free_bytes=0) as store:
        old = store.save(RESULT, image_jpeg=jpeg(2000))
        clock.now = T0 - timedelta(days=10)
        recent = store.save(RESULT, image_jpeg=jpeg(2000))
        clock.now = T0
        disk = FullDisk(monkeypatch)
        with pytest.raises(StorageFullError):
            store.save(RESULT, image_jpeg=jpeg(2000))
        assert disk.failures == 2  # tried, made room, tried again
        assert store.get(old).image_path is None  # past the 180 days: pruned to make room
        assert store.get(recent).image_path.is_file()  # within retention: never pruned
        assert store.count() == 2 and store.storage_full
        assert [p.name for p in store.images_dir.iterdir() if p.name.startswith(".")] == []
        disk.full = False
        assert store.save(RESULT, image_jpeg=jpeg(2000)) and not store.storage_full


def test_photo_retention_zero_keeps_every_photo(tmp_path: Path) -> None:
    clock = Clock(T0 - timedelta(days=3000))
    with RecordStore(tmp_path / "data", clock=clock, retention_days=0, photo_retention_days=0) as store:
        sid = store.save(RESULT, image_jpeg=jpeg(500))
        clock.now = T0
        assert store.prune_photos() == 0 and store.get(sid).image_path.is_file()
    with pytest.raises(ValueError, match="photo_retention_days"):
        RecordStore(tmp_path / "other", photo_retention_days=-1)


# --- what the health worker and the supervisor see ------------------------------------------------


@pytest.fixture()
def kiosk_on_a_full_disk(screener, rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with (
        RecordStore(tmp_path / "data", min_free_bytes=0) as store,
        Station(
            screener=screener,
            camera_factory=rig.factory,
            records=store,
            stall_timeout=1.0,
            capture_timeout=5.0,
            **FAST_RETRY,
        ) as station,
    ):
        client = create_app(settings=make_settings(tmp_path), station=station, testing=True).test_client()
        yield client, station, store, FullDisk(monkeypatch)


def test_api_never_acknowledges_an_unsaved_screening_and_healthz_degrades(kiosk_on_a_full_disk) -> None:
    client, station, store, disk = kiosk_on_a_full_disk
    token = csrf_of(client)
    r = client.post("/api/screenings", headers={"X-CSRF-Token": token})
    body = r.get_json()
    assert r.status_code == 200 and "Location" not in r.headers  # not 201 Created: nothing was created
    assert body["saved"] is False and body["id"] is None
    assert body["save_error"] == "storage_full" and body["save_message"] == FULL_MESSAGE
    assert body["status"] in ("ok", "retake")  # the result itself is still shown
    assert store.count() == 0

    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.get_json() == {
        "status": "degraded",
        "reason": "storage_full",
        "message": FULL_MESSAGE,
        "camera": "ok",
        "storage": "full",
        "model_sha256": station.model_sha256,
    }

    # The result page says so, in the page's language.
    page = client.get("/screenings/last")
    assert page.status_code == 200
    assert 'data-testid="not-saved"' in page.get_data(as_text=True)
    assert "Write this result down" in page.get_data(as_text=True)

    # Space again: the next screening is saved, acknowledged, and health is back.
    disk.full = False
    r = client.post("/api/screenings", headers={"X-CSRF-Token": token})
    assert r.status_code == 201 and r.get_json()["saved"] is True and r.get_json()["id"]
    assert client.get("/healthz").status_code == 200
    page = client.get(f"/screenings/{r.get_json()['id']}")
    assert 'data-testid="not-saved"' not in page.get_data(as_text=True)


def test_watchdog_status_degrades_but_keeps_pinging(kiosk_on_a_full_disk) -> None:
    # Restarting cannot free a disk, and the results on screen are still valid: report, keep the watchdog fed.
    _client, station, _store, disk = kiosk_on_a_full_disk
    changes: list[tuple[str, ...]] = []
    health = Health(station, on_degraded=changes.append)
    assert health.healthy() and health.degraded() == () and changes == []
    station.capture_and_screen()
    assert health.degraded() == ("storage full, results are not being saved",)
    assert health.healthy()  # still pinged
    assert changes == [("storage full, results are not being saved",)]
    disk.full = False
    station.capture_and_screen()
    assert health.healthy() and changes[-1] == ()


def test_storage_full_message_is_one_translatable_line() -> None:
    text = message("storage_full")
    assert text == FULL_MESSAGE and "\n" not in text
    from babel.messages.pofile import read_po

    translations = Path(__file__).parent.parent / "kiosk" / "web" / "translations"
    for lang in ("fil", "war"):
        with open(translations / lang / "LC_MESSAGES" / "messages.po", "rb") as f:
            catalog = read_po(f)
        for code in ("storage_full", "not_saved"):
            entry = catalog.get(message(code))
            assert entry is not None and entry.string, (lang, code)  # a draft translation exists
