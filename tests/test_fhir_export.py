"""FHIR exports (kiosk/fhir/export.py) and outcome imports: incremental, atomic, verified, power-cut safe."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import kiosk.fhir.export as export_module
from kiosk.cli import main
from kiosk.fhir.export import MANIFEST, complete_exports, export_fhir, read_ndjson, verify_export
from kiosk.fhir.outcomes import import_outcomes, outcome_observation
from kiosk.reasons import KioskError
from kiosk.records import PatientInfo, RecordStore
from tests.fhir_data import CONTEXT, STATION, fill, jpeg, low, read_export, validate

ROOT = Path(__file__).resolve().parents[1]


def encounters(out: Path) -> list[str]:
    """The screening identifier of every Encounter in every complete batch (duplicates kept)."""
    return [
        e["identifier"][0]["value"]
        for folder in complete_exports(out)
        for e in read_ndjson(folder / "Encounter.ndjson")
    ]


def store_at(tmp_path: Path) -> RecordStore:
    return RecordStore(tmp_path / "data", station_code=STATION)


# --- layout, manifest, validation ----------------------------------------------------------


def test_export_is_bulk_data_ndjson_with_a_manifest_and_photos_beside_it(tmp_path: Path) -> None:
    pytest.importorskip("fhir.resources", reason="fhir.resources validates the export")
    with store_at(tmp_path) as store:
        ids = fill(store)
        summary = export_fhir(store, tmp_path / "out", context=CONTEXT)
        (folder,) = summary.folders
        assert folder.parent == tmp_path / "out" and folder.name == summary.batches[0]
        assert folder.name.startswith(f"{STATION}-") and folder.name.endswith("-0001")
        manifest = json.loads((folder / MANIFEST).read_text())
        assert manifest["extension"]["screenings"] == summary.screenings == 6
        assert summary.photos == 5  # "bare" has none
        for item in manifest["output"]:
            data = (folder / item["url"]).read_bytes()
            assert item["extension"] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            assert item["count"] == len(data.splitlines())
            assert item["url"] == f"{item['type']}.ndjson"
        assert {i["type"]: i["count"] for i in manifest["output"]} == {
            "Organization": 2,
            "Location": 1,
            "Device": 2,
            "Patient": 6,
            "Encounter": 6,
            "Media": 5,  # Device 2: the retake had no model
            "Observation": 23,
            "ServiceRequest": 2,
            "Provenance": 6,
        }
        for photo in manifest["extension"]["photos"]:  # byte for byte the kiosk's photo
            sid = Path(photo["url"]).stem
            original = store.get(sid).image_path.read_bytes()  # type: ignore[union-attr]
            assert (folder / photo["url"]).read_bytes() == original
            assert photo["sha256"] == hashlib.sha256(original).hexdigest()
        resources = read_export(folder)
        validate(resources)  # fhir.resources + every reference resolves within this export
        media = [r for r in resources if r["resourceType"] == "Media"]
        assert all((folder / m["content"]["url"]).is_file() for m in media)
        assert sorted(s.split("/")[1] for s in encounters(tmp_path / "out")) == sorted(ids.values())
        assert verify_export(folder).ok


def test_a_second_export_has_nothing_new_and_a_later_one_only_the_new_screenings(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with store_at(tmp_path) as store:
        fill(store)
        export_fhir(store, out, context=CONTEXT)
        again = export_fhir(store, out, context=CONTEXT)
        assert (again.batches, again.screenings) == ([], 0)
        new = [store.save(low(), image_jpeg=jpeg(40)), store.save(low())]
        later = export_fhir(store, out, context=CONTEXT)
        assert later.screenings == 2 and later.batches[0].endswith("-0002")
        assert [e.split("/")[1] for e in encounters(later.folders[0].parent) if e.split("/")[1] in new] == new
        assert len(encounters(out)) == len(set(encounters(out))) == 8  # every screening once
        assert store.unexported_count("outbox") == 0


def test_channels_each_get_every_screening_once(tmp_path: Path) -> None:
    with store_at(tmp_path) as store:
        fill(store)
        a = export_fhir(store, tmp_path / "outbox", context=CONTEXT, channel="outbox")
        b = export_fhir(store, tmp_path / "stick", context=CONTEXT, channel="usb")
        assert a.screenings == b.screenings == 6
        assert a.batches != b.batches  # batch numbers grow across channels: ids never clash
        assert store.unexported_count("usb") == store.unexported_count("outbox") == 0


def test_large_exports_are_split_into_batches(tmp_path: Path) -> None:
    with store_at(tmp_path) as store:
        fill(store, n=5)
        summary = export_fhir(store, tmp_path / "out", context=CONTEXT, limit=4)
        assert [len(read_ndjson(f / "Encounter.ndjson")) for f in summary.folders] == [4, 4, 3]
        assert len(set(encounters(tmp_path / "out"))) == 11


def test_same_screening_exported_again_is_byte_identical(tmp_path: Path) -> None:
    # Stable ids and sorted keys: the RHU's upsert sees the very same resources.
    with store_at(tmp_path) as store:
        fill(store)
        one = export_fhir(store, tmp_path / "a", context=CONTEXT, channel="a").folders[0]
        two = export_fhir(store, tmp_path / "b", context=CONTEXT, channel="b").folders[0]
        for name in ("Patient.ndjson", "Observation.ndjson", "Media.ndjson", "ServiceRequest.ndjson"):
            assert (one / name).read_bytes() == (two / name).read_bytes()


# --- atomic: half-written exports are detected and redone ------------------------------------------


def test_a_partial_folder_left_by_a_power_cut_is_redone_with_the_same_id(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    with store_at(tmp_path) as store:
        fill(store)
        real = export_module._write_durably
        calls = {"n": 0}

        def die_on_third(path: Path, chunks: object) -> None:
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(errno.EIO, "Input/output error")
            real(path, chunks)  # type: ignore[arg-type]

        monkeypatch.setattr(export_module, "_write_durably", die_on_third)
        with pytest.raises(KioskError) as failed:
            export_fhir(store, out, context=CONTEXT)
        assert failed.value.code == "export_failed"
        assert complete_exports(out) == [] and [p.name for p in out.iterdir()] == []  # the partial was removed
        (pending,) = store.export_batches()
        assert pending.finished_at is None
        # A power cut would have left the partial folder: plant one, with junk in it.
        junk = out / f".{pending.export_id}.partial"
        junk.mkdir()
        (junk / "Patient.ndjson").write_text('{"half": ')
        monkeypatch.setattr(export_module, "_write_durably", real)
        summary = export_fhir(store, out, context=CONTEXT)
        assert summary.batches == [pending.export_id] and summary.screenings == 6
        assert [p.name for p in out.iterdir()] == [pending.export_id]
        assert verify_export(out / pending.export_id).ok


def test_a_complete_folder_whose_batch_was_not_marked_is_kept_not_duplicated(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    with store_at(tmp_path) as store:
        fill(store)
        monkeypatch.setattr(store, "finish_export", lambda export_id: (_ for _ in ()).throw(OSError("cut")))
        with pytest.raises(OSError):
            export_fhir(store, out, context=CONTEXT)
        (folder,) = complete_exports(out)
        before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
        monkeypatch.undo()
        summary = export_fhir(store, out, context=CONTEXT)
        assert summary.batches == [folder.name] and summary.screenings == 6
        assert complete_exports(out) == [folder]
        assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before  # found, verified, not rewritten
        assert export_fhir(store, out, context=CONTEXT).batches == []


def test_a_damaged_copy_is_found_by_its_manifest_and_written_again(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    with store_at(tmp_path) as store:
        fill(store)
        monkeypatch.setattr(store, "finish_export", lambda export_id: (_ for _ in ()).throw(OSError("cut")))
        with pytest.raises(OSError):
            export_fhir(store, out, context=CONTEXT)
        (folder,) = complete_exports(out)
        photo = next((folder / "photos").iterdir())
        photo.write_bytes(photo.read_bytes()[:-10])  # a stick pulled too early
        assert not verify_export(folder).ok
        monkeypatch.undo()
        summary = export_fhir(store, out, context=CONTEXT)
        assert summary.batches == [folder.name]
        assert verify_export(folder).ok


def test_verify_finds_a_changed_byte_a_missing_file_and_a_missing_manifest(tmp_path: Path) -> None:
    with store_at(tmp_path) as store:
        fill(store)
        (folder,) = export_fhir(store, tmp_path / "out", context=CONTEXT).folders
    data = bytearray((folder / "Observation.ndjson").read_bytes())
    data[100] ^= 1
    (folder / "Observation.ndjson").write_bytes(bytes(data))
    assert verify_export(folder).problem == "Observation.ndjson: sha256 differs from the manifest"
    (folder / "Observation.ndjson").unlink()
    assert "Observation.ndjson" in (verify_export(folder).problem or "")
    (folder / MANIFEST).unlink()
    assert verify_export(folder).problem == "no export.json (an incomplete export)"


@pytest.mark.parametrize(("err", "code"), [(errno.ENOSPC, "export_no_space"), (errno.EROFS, "export_read_only")])
def test_a_full_or_read_only_target_is_one_line_and_loses_nothing(tmp_path: Path, monkeypatch, err, code) -> None:
    out = tmp_path / "out"
    with store_at(tmp_path) as store:
        fill(store)

        def refuse(path: Path, chunks: object) -> None:
            raise OSError(err, os.strerror(err))

        monkeypatch.setattr(export_module, "_write_durably", refuse)
        with pytest.raises(KioskError) as failed:
            export_fhir(store, out, context=CONTEXT)
        assert failed.value.code == code and "\n" not in str(failed.value)
        assert list(out.iterdir()) == []  # the space comes back
        monkeypatch.undo()
        assert export_fhir(store, out, context=CONTEXT).screenings == 6


def test_a_second_export_while_one_runs_is_refused(tmp_path: Path) -> None:
    with store_at(tmp_path) as store:
        fill(store)
        with export_module._exclusive(store.data_dir / export_module.EXPORT_LOCK):
            with pytest.raises(KioskError) as busy:
                export_fhir(store, tmp_path / "out", context=CONTEXT)
        assert busy.value.code == "export_busy"
        assert export_fhir(store, tmp_path / "out", context=CONTEXT).screenings == 6


# --- kill -9 -------------------------------------------------------------------------------------


def _child(script: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait(condition, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.002)
    return False


def test_kill_9_during_exports_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with store_at(tmp_path) as store:
        for i in range(120):
            store.save(low(), image_jpeg=jpeg(i, size=(400, 300)), patient=PatientInfo(body_site="trunk-back"))
    script = f"""
        from pathlib import Path
        from kiosk.records import RecordStore
        from kiosk.fhir.export import export_fhir
        from tests.fhir_data import CONTEXT
        with RecordStore(Path({str(tmp_path / "data")!r}), station_code="PH-LEY-0001") as store:
            export_fhir(store, Path({str(out)!r}), context=CONTEXT, limit=10)
        print("done")
        """
    killed = 0
    for _ in range(4):  # kill mid-batch, each time a little further along
        child = _child(script)
        seen = len(complete_exports(out)) if out.exists() else 0
        mid_batch = _wait(
            lambda: (
                out.is_dir()
                and len(complete_exports(out)) > seen
                and any(p.name.endswith(".partial") for p in out.iterdir())
            ),
            timeout=30,
        )
        if child.poll() is None and mid_batch:
            os.kill(child.pid, signal.SIGKILL)
            killed += 1
        child.wait(timeout=60)
    assert killed >= 2, "the exports finished before they could be cut"
    with store_at(tmp_path) as store:
        export_fhir(store, out, context=CONTEXT, limit=10)  # after the power comes back
        assert all(b.finished_at is not None for b in store.export_batches())
        ids = {s.id for s in store.list(limit=200)}
    got = encounters(out)
    assert len(got) == len(set(got)) == 120  # nothing lost, nothing twice
    assert {g.split("/")[1] for g in got} == ids
    assert all(verify_export(f).ok for f in complete_exports(out))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no partial left behind


def test_kill_9_during_an_outcome_import_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    at = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)
    with store_at(tmp_path) as store:
        codes = []
        for _ in range(400):
            codes.append(store.get(store.save(low())).code)  # type: ignore[union-attr]
    inbox = tmp_path / "inbox" / "outcomes"
    inbox.mkdir(parents=True)
    lines = [
        json.dumps(
            outcome_observation(
                station_code=STATION,
                slip_code=c,
                outcome="benign",
                rhu_code="RHU-PALO",
                recorded_at=at + timedelta(minutes=i),
            )
        )
        for i, c in enumerate(codes)
    ]
    (inbox / "week-10.ndjson").write_text("\n".join(lines) + "\n")
    child = _child(f"""
        from pathlib import Path
        from kiosk.records import RecordStore
        from kiosk.fhir.outcomes import import_outcomes
        with RecordStore(Path({str(tmp_path / "data")!r})) as store:
            print(import_outcomes(store, Path({str(tmp_path / "inbox")!r}), station_code="PH-LEY-0001"))
        """)
    db = tmp_path / "data" / "records.sqlite3"

    def stored() -> int:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                return int(conn.execute("SELECT count(*) FROM outcomes").fetchone()[0])
        except sqlite3.Error:
            return 0

    assert _wait(lambda: stored() >= 20, timeout=60)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    cut_at = stored()
    assert 0 < cut_at < 400, cut_at
    with store_at(tmp_path) as store:
        again = import_outcomes(store, tmp_path / "inbox", station_code=STATION)
        assert (again.imported, again.already) == (400 - cut_at, cut_at)
        assert len(store.latest_outcomes()) == 400
        assert all(len(store.outcomes(s.id)) == 1 for s in store.list(limit=400))


# --- outcomes ------------------------------------------------------------------------------------------


def test_outcome_import_counts_every_kind_of_line_and_is_idempotent(tmp_path: Path) -> None:
    at = datetime(2026, 3, 9, 1, 20, tzinfo=UTC)
    with store_at(tmp_path) as store:
        ids = fill(store)
        referred = store.get(ids["refer"])
        assert referred is not None and referred.code
        good = outcome_observation(
            station_code=STATION,
            slip_code=referred.code,
            outcome="melanoma",
            recorded_at=at,
            rhu_code="RHU-PALO",
            seen_on=at.date(),
            note="biopsy",
        )
        later = outcome_observation(
            station_code=STATION,
            slip_code=referred.code,
            outcome="not_seen",
            recorded_at=at - timedelta(days=3),
            rhu_code="RHU-PALO",
        )
        other = outcome_observation(
            station_code="PH-LEY-0002", slip_code=referred.code, outcome="benign", recorded_at=at, rhu_code="RHU-PALO"
        )
        unknown = outcome_observation(
            station_code=STATION, slip_code="000000000", outcome="benign", recorded_at=at, rhu_code="RHU-PALO"
        )
        by_id = outcome_observation(
            station_code=STATION, slip_code="x", outcome="benign", recorded_at=at, rhu_code="RHU-PALO"
        )
        del by_id["subject"]
        by_id["focus"] = [
            {"identifier": {"system": "urn:melanoma-kiosk:screening", "value": f"{STATION}/{ids['low']}"}}
        ]
        no_rhu = dict(good, performer=[])
        bad_value = json.loads(json.dumps(good))
        bad_value["valueCodeableConcept"]["coding"][0]["code"] = "cancer"
        naive = dict(good, issued="2026-03-09T01:20:00")
        long_note = dict(good, note=[{"text": "x" * 501}])
        folder = tmp_path / "stick" / "outcomes"
        folder.mkdir(parents=True)
        (folder / "a.ndjson").write_text("\n".join(json.dumps(o) for o in (good, later, other, unknown, by_id)) + "\n")
        (folder / "b.ndjson").write_text(
            "\n".join(
                [
                    json.dumps(no_rhu),
                    json.dumps(bad_value),
                    json.dumps(naive),
                    json.dumps(long_note),
                    "not json",
                    '{"resourceType": "Patient"}',
                    "x" * 70_000,
                    "",
                ]
            )
            + "\n"
        )
        first = import_outcomes(store, tmp_path / "stick", station_code=STATION)
        assert first.params() == {"imported": 3, "already": 0, "other": 1, "unknown": 1, "invalid": 7}
        assert first.files == 2
        again = import_outcomes(store, tmp_path / "stick", station_code=STATION)
        assert again.params() == {"imported": 0, "already": 3, "other": 1, "unknown": 1, "invalid": 7}
        latest = store.latest_outcome(ids["refer"])
        assert latest is not None
        assert (latest.outcome, latest.source, latest.seen_on, latest.note) == (
            "melanoma",
            "rhu:RHU-PALO",
            at.date(),
            "biopsy",
        )
        assert [o.outcome for o in store.outcomes(ids["refer"])] == ["not_seen", "melanoma"]
        assert store.latest_outcome(ids["low"]).outcome == "benign"  # type: ignore[union-attr]


# --- the commands ----------------------------------------------------------------------------------------


def _config(tmp_path: Path, *, station: bool = True) -> Path:
    path = tmp_path / "kiosk.toml"
    text = f'[records]\ndata_dir = "{tmp_path / "data"}"\n'
    if station:
        text += '[station]\ncode = "PH-LEY-0001"\nname = "Barangay San Jose Health Station"\n'
    path.write_text(text)
    return path


def test_the_export_and_import_commands(tmp_path: Path, capsys) -> None:
    with store_at(tmp_path) as store:
        ids = fill(store)
        code = store.get(ids["refer"]).code  # type: ignore[union-attr]
    config = str(_config(tmp_path))
    assert main(["--config", config, "export", "fhir", "--out", str(tmp_path / "outbox")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("exported 6 screenings and 5 photos in 1 batch(es) (Organization 1, ")
    assert main(["--config", config, "export", "fhir", "--out", str(tmp_path / "outbox")]) == 0
    assert capsys.readouterr().out == "nothing new to export\n"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "o.ndjson").write_text(
        json.dumps(
            outcome_observation(
                station_code=STATION,
                slip_code=code,
                outcome="benign",
                recorded_at=datetime(2026, 3, 9, tzinfo=UTC),
                rhu_code="RHU-PALO",
            )
        )
        + "\n"
    )
    assert main(["--config", config, "import", "outcomes", str(inbox)]) == 0
    assert capsys.readouterr().out.startswith("Outcomes: 1 imported, 0 already here")


def test_the_commands_refuse_without_a_station_code_in_one_line(tmp_path: Path, capsys) -> None:
    config = str(_config(tmp_path, station=False))
    assert main(["--config", config, "export", "fhir", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err == "kiosk: error: Set this kiosk's station code ([station] code) before exporting records.\n"
    assert not (tmp_path / "o").exists()


def test_outcomes_in_the_consoles_per_station_folders_and_a_slip_that_contradicts_its_screening(tmp_path) -> None:
    at = datetime(2026, 3, 9, 1, 20, tzinfo=UTC)
    with store_at(tmp_path) as store:
        ids = fill(store)
        referred, other = store.get(ids["refer"]), store.get(ids["low"])
        assert referred is not None and other is not None and referred.code
        agrees = outcome_observation(
            station_code=STATION, slip_code=referred.code, outcome="benign", recorded_at=at, rhu_code="RHU-PALO"
        )
        agrees["focus"] = [
            {"identifier": {"system": "urn:melanoma-kiosk:screening", "value": f"{STATION}/{referred.id}"}}
        ]
        contradicts = json.loads(json.dumps(agrees))
        contradicts["focus"][0]["identifier"]["value"] = f"{STATION}/{other.id}"
        contradicts["issued"] = (at + timedelta(hours=1)).isoformat()
        folder = tmp_path / "outbound" / STATION / "outcomes"  # <outbound>/<station>/outcomes/, as the console writes
        folder.mkdir(parents=True)
        (folder / "a.ndjson").write_text(json.dumps(agrees) + "\n" + json.dumps(contradicts) + "\n")
        got = import_outcomes(store, tmp_path / "outbound", station_code=STATION)
        assert (got.imported, got.invalid, got.files) == (1, 1, 1)
        assert [o.outcome for o in store.outcomes(referred.id)] == ["benign"]
        assert store.outcomes(other.id) == []
