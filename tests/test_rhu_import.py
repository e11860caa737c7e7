"""The RHU console's importer: idempotent, refuses damaged exports, survives kill -9; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiosk.rhu.db import Database
from kiosk.rhu.importer import ExportError, import_export, import_tree
from kiosk.rhu.photos import PhotoStore
from kiosk.rhu.sample import sample_screenings, write_sample_export
from tests.rhu_conftest import pg_url, rhu_db  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[1]


def _snapshot(db: Database) -> list[tuple[object, ...]]:
    return [tuple(r.values()) for r in db.query("SELECT * FROM screenings ORDER BY key")]


def test_import_maps_every_field(rhu_db: Database, tmp_path: Path) -> None:
    screenings = sample_screenings("PH-LEY-0001", 40, seed=5)
    export = write_sample_export(tmp_path, station_code="PH-LEY-0001", count=40, seed=5, screenings=screenings)
    summary = import_export(rhu_db, PhotoStore(tmp_path / "photos"), export)
    assert (summary.screenings, summary.new, summary.skipped) == (40, 40, False)
    referred = [s for s in screenings if s.risk == "refer"]
    assert rhu_db.scalar("SELECT count(*) FROM screenings WHERE referred = 1") == len(referred) == 8
    s = referred[0]
    row = rhu_db.query("SELECT * FROM screenings WHERE key = ?", [s.key])[0]
    assert row["code"] == s.code and row["station_code"] == "PH-LEY-0001" and row["screening_id"] == s.screening_id
    assert row["risk"] == "refer" and row["probability"] == pytest.approx(s.probability)
    assert (row["body_site"], row["age_band"], row["sex"]) == (s.body_site, s.age_band, s.sex)
    assert s.created_at.date().isoformat() == "2026-01-05" and row["due_date"] == "2026-01-19"  # 14 days
    assert row["facility"] == "Rural Health Unit"
    assert json.loads(row["features_json"])["colour-count"] == 1 + int(s.probability * 4)
    assert row["threshold"] == 0.5 and row["status"] == "ok"
    photo = PhotoStore(tmp_path / "photos").get(row["photo_sha256"])
    assert photo == (export / f"photos/{s.screening_id}.jpg").read_bytes()


def test_import_twice_creates_nothing_new(rhu_db: Database, tmp_path: Path) -> None:
    photos = PhotoStore(tmp_path / "photos")
    export = write_sample_export(tmp_path / "a", station_code="PH-LEY-0001", count=30, seed=1)
    other = write_sample_export(tmp_path / "a", station_code="PH-LEY-0002", count=20, seed=1)
    first = import_tree(rhu_db, photos, tmp_path / "a")
    before = _snapshot(rhu_db)
    files_before = sorted(p.name for p in photos.root.rglob("*.jpg"))
    again = import_tree(rhu_db, photos, tmp_path / "a")
    assert [(s.new, s.skipped) for s in first] == [(30, False), (20, False)]
    assert [(s.new, s.skipped) for s in again] == [(0, True), (0, True)]
    # The same resources in a new export (a stick written twice): upserted, still nothing new.
    (export / "export.json").write_text(
        (export / "export.json").read_text().replace('"request"', '"note": 1, "request"')
    )
    third = import_export(rhu_db, photos, export)
    assert (third.screenings, third.new, third.skipped) == (30, 0, False)
    assert _snapshot(rhu_db) == before and len(before) == 50
    assert sorted(p.name for p in photos.root.rglob("*.jpg")) == files_before
    assert other.exists()


def test_damaged_or_half_copied_export_is_refused_whole(rhu_db: Database, tmp_path: Path) -> None:
    photos = PhotoStore(tmp_path / "photos")
    export = write_sample_export(tmp_path, station_code="PH-LEY-0001", count=5, seed=2)
    obs = export / "Observation.ndjson"
    whole = obs.read_bytes()
    obs.write_bytes(whole[:-40])  # a copy cut short
    with pytest.raises(ExportError, match=r"Observation.ndjson .* does not match its sha256"):
        import_export(rhu_db, photos, export)
    obs.write_bytes(whole)
    (export / "Media.ndjson").unlink()
    with pytest.raises(ExportError, match="Media.ndjson is missing"):
        import_export(rhu_db, photos, export)
    (export / "export.json").unlink()
    with pytest.raises(ExportError, match="no export.json"):
        import_export(rhu_db, photos, export)
    assert rhu_db.scalar("SELECT count(*) FROM screenings") == 0


def test_kill_9_during_import_loses_and_duplicates_nothing(rhu_db: Database, tmp_path: Path) -> None:
    count = 2400
    export = write_sample_export(tmp_path / "stick", station_code="PH-LEY-0001", count=count, seed=9, photo_size=24)
    data_dir = tmp_path / "rhu"
    # The child imports in batches of 100 and is killed once the first batches are committed.
    script = (
        "import sys; from pathlib import Path; from kiosk.rhu.db import Database; "
        "from kiosk.rhu.importer import import_export; from kiosk.rhu.photos import PhotoStore; "
        "import_export(Database.open(sys.argv[1]), PhotoStore(Path(sys.argv[2])), Path(sys.argv[3]), batch=100)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", script, rhu_db.url, str(data_dir / "photos"), str(export)], env=env)
    deadline = time.monotonic() + 60
    seen = 0
    while time.monotonic() < deadline and child.poll() is None:
        seen = rhu_db.scalar("SELECT count(*) FROM screenings")
        if seen >= 200:
            break
        time.sleep(0.02)
    assert child.poll() is None, "the import finished before it could be cut short; make the export larger"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    partial = rhu_db.scalar("SELECT count(*) FROM screenings")
    assert 200 <= partial < count and partial % 100 == 0  # whole batches only
    assert rhu_db.scalar("SELECT count(*) FROM imports") == 0  # not marked as imported
    # Every committed row's photo is complete on disk.
    photos = PhotoStore(data_dir / "photos")
    for row in rhu_db.query("SELECT key, photo_sha256 FROM screenings"):
        assert photos.get(row["photo_sha256"]) == (export / f"photos/{row['key'].split('/')[1]}.jpg").read_bytes()
    summary = import_export(rhu_db, photos, export)
    assert (summary.screenings, summary.new) == (count, count - partial)
    assert rhu_db.scalar("SELECT count(*) FROM screenings") == count
    assert rhu_db.scalar("SELECT count(DISTINCT key) FROM screenings") == count
    assert not list(photos.root.glob("*/.*.tmp"))
    assert len(list(photos.root.rglob("*.jpg"))) == rhu_db.scalar("SELECT count(DISTINCT photo_sha256) FROM screenings")
