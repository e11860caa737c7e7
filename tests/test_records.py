"""Screening records: round trips, power-cut safety, retention, ids, threads, patient checks."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from kiosk.config import load_settings
from kiosk.records import (
    InvalidPatientInfo,
    PatientInfo,
    RecordStore,
    RecordStoreError,
    RepairSummary,
)
from kiosk.result import ScreeningResult

ID_RE = re.compile(r"\d{8}-\d{6}-[0-9a-z]{4}-[0-9a-f]{32}")
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"
T0 = datetime(2025, 3, 14, 9, 30, 15, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def ok_result(p: float = 0.73) -> ScreeningResult:
    return ScreeningResult(
        status="ok",
        malignant_probability=p,
        risk="refer" if p >= 0.5 else "low",
        threshold=0.5,
        features={"asymmetry": 0.41, "border_irregularity": 1.7, "colour_count": 4, "diameter_mm": 7.2},
        quality={"sharpness": 182.5, "brightness": 0.52},
        model_sha256="ab" * 32,
        timings_ms={"decode": 12.5, "infer": 340.0},
    )


def image_files(store: RecordStore) -> list[str]:
    return sorted(p.name for p in store.images_dir.iterdir())


# --- round trips ---------------------------------------------------------------


def test_save_and_get_round_trip(tmp_path: Path) -> None:
    with RecordStore(tmp_path / "data", clock=FakeClock()) as store:
        result = ok_result()
        patient = PatientInfo(age=54, sex="female", body_site="upper_limb")
        sid = store.save(result, image_jpeg=JPEG, patient=patient)
        assert ID_RE.fullmatch(sid)
        assert sid.startswith("20250314-093015-")
        got = store.get(sid)
        assert got is not None
        assert got.id == sid
        assert got.created_at == T0 and got.created_at.tzinfo is not None
        assert got.result == result
        assert got.patient == patient
        assert got.image_path == store.images_dir / f"{sid}.jpg"
        assert got.image_path.read_bytes() == JPEG
        assert got.to_dict()["result"]["reason_message"] is None
        assert (tmp_path / "data" / "records.sqlite3").is_file()


def test_retake_without_image_or_patient(tmp_path: Path) -> None:
    with RecordStore(tmp_path) as store:
        sid = store.save(ScreeningResult.retake("blurry", quality={"sharpness": 3.1}))
        got = store.get(sid)
        assert got is not None
        assert got.result == ScreeningResult.retake("blurry", quality={"sharpness": 3.1})
        assert got.patient is None and got.image_path is None
        assert image_files(store) == []


def test_numpy_values_are_stored_as_plain_numbers(tmp_path: Path) -> None:
    result = ScreeningResult(
        status="ok",
        malignant_probability=np.float32(0.25),  # type: ignore[arg-type]
        risk="low",
        threshold=np.float64(0.5),  # type: ignore[arg-type]
        features={"asymmetry": np.float32(0.5), "hist": np.arange(3), "n": np.int64(4)},
    )
    with RecordStore(tmp_path) as store:
        got = store.get(store.save(result))
    assert got is not None
    assert got.result.malignant_probability == pytest.approx(0.25)
    assert got.result.features == {"asymmetry": 0.5, "hist": [0, 1, 2], "n": 4}


def test_keep_images_off_stores_no_photo(tmp_path: Path) -> None:
    with RecordStore(tmp_path, keep_images=False) as store:
        got = store.get(store.save(ok_result(), image_jpeg=JPEG))
        assert got is not None and got.image_path is None
        assert image_files(store) == []


def test_empty_image_is_refused(tmp_path: Path) -> None:
    with RecordStore(tmp_path) as store:
        with pytest.raises(ValueError, match="empty"):
            store.save(ok_result(), image_jpeg=b"")
        assert store.count() == 0


def test_get_unknown_or_malformed_id(tmp_path: Path) -> None:
    with RecordStore(tmp_path) as store:
        store.save(ok_result())
        assert store.get("20990101-000000-0000") is None
        assert store.get("../../etc/passwd") is None
        assert store.get("") is None


def test_reopen_keeps_records(tmp_path: Path) -> None:
    with RecordStore(tmp_path) as store:
        sid = store.save(ok_result(), image_jpeg=JPEG)
    with RecordStore(tmp_path) as store:
        got = store.get(sid)
        assert got is not None and got.image_path is not None and got.image_path.read_bytes() == JPEG
        assert store.repair() == RepairSummary()  # nothing to clean after a clean close


def test_list_newest_first_with_paging_and_count(tmp_path: Path) -> None:
    clock = FakeClock()
    with RecordStore(tmp_path, clock=clock) as store:
        ids = []
        for i in range(7):
            clock.now = T0 + timedelta(minutes=i)
            ids.append(store.save(ok_result(i / 10)))
        assert store.count() == 7
        assert [s.id for s in store.list()] == ids[::-1]
        assert [s.id for s in store.list(limit=3)] == ids[6:3:-1]
        assert [s.id for s in store.list(limit=3, offset=3)] == ids[3:0:-1]
        assert store.list(offset=7) == []
        with pytest.raises(ValueError):
            store.list(limit=-1)


def test_from_settings(tmp_path: Path) -> None:
    settings = load_settings(
        env={
            "KIOSK_RECORDS_DATA_DIR": str(tmp_path / "r"),
            "KIOSK_RECORDS_RETENTION_DAYS": "30",
            "KIOSK_RECORDS_KEEP_IMAGES": "off",
        }
    )
    with RecordStore.from_settings(settings.records) as store:
        assert store.data_dir == tmp_path / "r"
        assert (store.retention_days, store.keep_images) == (30, False)


def test_new_data_dir_is_private(tmp_path: Path) -> None:
    with RecordStore(tmp_path / "new") as store:
        assert stat.S_IMODE(store.data_dir.stat().st_mode) & 0o077 == 0
        sid = store.save(ok_result(), image_jpeg=JPEG)
        image = store.get(sid).image_path  # type: ignore[union-attr]
        assert stat.S_IMODE(image.stat().st_mode) & 0o077 == 0  # type: ignore[union-attr]


# --- SQLite durability settings ---------------------------------------------


def test_wal_mode_schema_version_and_pragmas(tmp_path: Path) -> None:
    with RecordStore(tmp_path) as store:
        store.save(ok_result())
        conn = store._conn()
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    # Seen from an independent connection: WAL is a property of the file.
    other = sqlite3.connect(tmp_path / "records.sqlite3")
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("PRAGMA user_version").fetchone()[0] == 3  # schema 3: the export log (kiosk.fhir)
    finally:
        other.close()


def test_database_from_newer_kiosk_is_refused(tmp_path: Path) -> None:
    RecordStore(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "records.sqlite3")
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(RecordStoreError, match="newer kiosk"):
        RecordStore(tmp_path)


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    store.close()
    with pytest.raises(RecordStoreError, match="closed"):
        store.count()
    store.close()  # idempotent


# --- power cuts ----------------------------------------------------------------


def test_crash_during_image_rename_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = RecordStore(tmp_path)

    def power_cut(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError, match="Input/output"):
        store.save(ok_result(), image_jpeg=JPEG)
    monkeypatch.undo()
    assert store.count() == 0
    assert not any(ID_RE.fullmatch(Path(n).stem) for n in image_files(store))  # no half photo under a real name
    assert image_files(store) == []  # and the temp file was removed
    store.close()
    with RecordStore(tmp_path) as again:  # still opens, still works
        sid = again.save(ok_result(), image_jpeg=JPEG)
        assert again.count() == 1 and again.get(sid) is not None


def _run_child(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        import kiosk.records.store as records
        from kiosk.result import ScreeningResult
        store = records.RecordStore(Path({str(tmp_path)!r}))
        """
    ) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_power_cut_after_image_before_commit(tmp_path: Path) -> None:
    # A real process dies (no cleanup, no close) right after the photo is on disk.
    proc = _run_child(
        tmp_path,
        """
        original = records.atomic_write_bytes
        def write_then_die(path, data, **kwargs):
            original(path, data, **kwargs)
            os._exit(7)
        records.atomic_write_bytes = write_then_die
        store.save(ScreeningResult(status="ok", malignant_probability=0.9, risk="refer", threshold=0.5),
                   image_jpeg=b"\\xff\\xd8photo")
        """,
    )
    assert proc.returncode == 7, proc.stderr
    images = tmp_path / "images"
    assert [p.suffix for p in images.iterdir()] == [".jpg"]  # the orphan photo is there...
    with RecordStore(tmp_path) as store:
        assert store.count() == 0  # ...the row never committed...
        assert image_files(store) == []  # ...and repair() at open removed the photo


def test_committed_rows_survive_abrupt_exit(tmp_path: Path) -> None:
    proc = _run_child(
        tmp_path,
        """
        for i in range(5):
            store.save(ScreeningResult.retake("blurry"), image_jpeg=b"\\xff\\xd8" + bytes([i]))
        os._exit(0)  # no close(), no checkpoint
        """,
    )
    assert proc.returncode == 0, proc.stderr
    with RecordStore(tmp_path) as store:
        assert store.count() == 5
        for s in store.list():
            assert s.image_path is not None and s.image_path.is_file()


def test_repair_removes_leftovers_and_keeps_other_files(tmp_path: Path) -> None:
    with RecordStore(tmp_path) as store:
        keep = store.save(ok_result(), image_jpeg=JPEG)
        gone = store.save(ok_result(), image_jpeg=JPEG)
    images = tmp_path / "images"
    (images / f".{keep}.jpg.abc123.tmp").write_bytes(JPEG[:100])  # half-written temp
    (images / "20250101-000000-0abc.jpg").write_bytes(JPEG)  # complete photo, no row
    (images / "README.txt").write_text("not ours")
    (images / f"{gone}.jpg").unlink()  # row whose photo vanished
    with RecordStore(tmp_path) as store:
        assert {p.name for p in images.iterdir()} == {"README.txt", f"{keep}.jpg"}
        assert store.get(gone).image_path is None  # type: ignore[union-attr]
        assert store.get(keep).image_path == images / f"{keep}.jpg"  # type: ignore[union-attr]
        assert store.count() == 2
        # Running it again finds nothing more to do.
        assert store.repair() == RepairSummary()


def test_repair_reports_what_it_did(tmp_path: Path) -> None:
    with RecordStore(tmp_path) as store:
        (store.images_dir / ".x.jpg.1.tmp").write_bytes(b"x")
        (store.images_dir / "20250101-000000-0abc.jpg").write_bytes(b"x")
        assert store.repair() == RepairSummary(temp_files=1, orphan_images=1, missing_images=0)


# --- retention -------------------------------------------------------------------


def test_purge_expired_with_injected_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    with RecordStore(tmp_path, retention_days=365, clock=clock) as store:
        ages = {"old": 400, "just_old": 366, "recent": 10, "today": 0}
        ids = {}
        for name, days in ages.items():
            clock.now = T0 - timedelta(days=days)
            ids[name] = store.save(ok_result(), image_jpeg=JPEG)
        assert store.purge_expired(now=T0) == 2
        assert store.get(ids["old"]) is None and store.get(ids["just_old"]) is None
        assert store.get(ids["recent"]) is not None and store.get(ids["today"]) is not None
        assert image_files(store) == sorted([f"{ids['recent']}.jpg", f"{ids['today']}.jpg"])
        assert store.purge_expired(now=T0) == 0
        # Without ``now`` the store's clock decides: "recent" is now 366 days old, "today" 356.
        clock.now = T0 + timedelta(days=356)
        assert store.purge_expired() == 1
        assert [s.id for s in store.list()] == [ids["today"]]


def test_purge_boundary_is_exactly_retention_days(tmp_path: Path) -> None:
    clock = FakeClock()
    with RecordStore(tmp_path, retention_days=30, clock=clock) as store:
        store.save(ok_result())
        assert store.purge_expired(now=T0 + timedelta(days=30)) == 0
        assert store.purge_expired(now=T0 + timedelta(days=30, microseconds=1)) == 1


def test_retention_zero_keeps_forever(tmp_path: Path) -> None:
    clock = FakeClock(T0 - timedelta(days=5000))
    with RecordStore(tmp_path, retention_days=0, clock=clock) as store:
        store.save(ok_result(), image_jpeg=JPEG)
        assert store.purge_expired(now=T0) == 0
        assert store.count() == 1 and len(image_files(store)) == 1


def test_naive_clock_is_taken_as_utc(tmp_path: Path) -> None:
    with RecordStore(tmp_path, clock=lambda: datetime(2025, 1, 2, 3, 4, 5)) as store:
        got = store.get(store.save(ok_result()))
        assert got is not None and got.created_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "30"])
def test_bad_retention_days(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="retention_days"):
        RecordStore(tmp_path, retention_days=bad)  # type: ignore[arg-type]


# --- ids ---------------------------------------------------------------------------


def test_ids_unique_and_sortable_in_one_second(tmp_path: Path) -> None:
    with RecordStore(tmp_path, clock=FakeClock()) as store:
        ids = [store.save(ScreeningResult.retake("blurry")) for _ in range(300)]
    assert len(set(ids)) == 300
    assert ids == sorted(ids)
    assert all(ID_RE.fullmatch(i) and i.startswith("20250314-093015-") for i in ids)


def test_ids_sortable_across_seconds_and_real_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    with RecordStore(tmp_path, clock=clock) as store:
        ids = []
        for i in range(200):
            clock.now = T0 + timedelta(milliseconds=137 * i)
            ids.append(store.save(ScreeningResult.retake("blurry")))
    with RecordStore(tmp_path) as store:  # the real clock (later than T0)
        ids += [store.save(ScreeningResult.retake("too_dark")) for _ in range(50)]
        assert [s.id for s in store.list(limit=1000)] == ids[::-1]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)


# --- threads -----------------------------------------------------------------------


def test_concurrent_saves_from_threads(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    saved: dict[str, bytes] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(5)

    def saver(n: int) -> None:
        try:
            start.wait()
            for i in range(15):
                photo = JPEG + bytes([n, i])
                sid = store.save(ok_result(), image_jpeg=photo, patient=PatientInfo(age=20 + n))
                with lock:
                    saved[sid] = photo
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            start.wait()
            for _ in range(30):
                for s in store.list(limit=10):
                    assert s.image_path is not None and s.image_path.is_file()
                store.count()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=saver, args=(n,)) for n in range(4)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(saved) == 60 and store.count() == 60
    for sid, photo in saved.items():
        got = store.get(sid)
        assert got is not None and got.image_path is not None
        assert got.image_path.read_bytes() == photo
    store.close()


# --- patient information -----------------------------------------------------------


def test_patient_round_trip_and_partial(tmp_path: Path) -> None:
    with RecordStore(tmp_path) as store:
        sid = store.save(ok_result(), patient=PatientInfo(body_site="palm_sole"))
        got = store.get(sid)
        assert got is not None and got.patient == PatientInfo(body_site="palm_sole")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"age": -1}, "age must be a whole number from 0 to 120; got -1"),
        ({"age": 121}, "age must be a whole number from 0 to 120; got 121"),
        ({"age": 40.5}, "age must be a whole number from 0 to 120; got 40.5"),
        ({"age": True}, "age must be a whole number from 0 to 120; got True"),
        ({"age": "40"}, "age must be a whole number from 0 to 120; got '40'"),
        ({"sex": "f"}, "sex must be one of female, male, other; got 'f'"),
        (
            {"body_site": "arm"},
            "body_site must be a body-map region or one of head_neck, trunk, upper_limb, lower_limb, palm_sole, "
            "nail, genital, other; got 'arm'",
        ),
    ],
)
def test_patient_validation_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidPatientInfo) as info:
        PatientInfo(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_patient_from_form_values() -> None:
    assert PatientInfo.from_dict({"age": " 61 ", "sex": "male", "body_site": ""}) == PatientInfo(age=61, sex="male")
    assert PatientInfo.from_dict({}) == PatientInfo()
    with pytest.raises(InvalidPatientInfo, match="age"):
        PatientInfo.from_dict({"age": "sixty"})
    with pytest.raises(InvalidPatientInfo, match="age"):
        PatientInfo.from_dict({"age": "500"})


def test_patient_names_are_refused() -> None:
    with pytest.raises(InvalidPatientInfo, match="unknown patient field 'name'"):
        PatientInfo.from_dict({"name": "Juan dela Cruz", "age": 40})


def test_no_name_column_in_schema(tmp_path: Path) -> None:
    with RecordStore(tmp_path) as store:
        columns = [row[1] for row in store._conn().execute("PRAGMA table_info(screenings)")]
    assert not any("name" in c for c in columns)
