"""The RHU console at scale: import N generated screenings into PostgreSQL, then time what the doctor does.

``python -m kiosk.rhu.bench [-n 100000] [--stations 100] [--database URL] [--json]``

Without ``--database`` a throwaway PostgreSQL is started on a Unix socket
(:mod:`kiosk.rhu.pgtemp`, fsync off: a bulk load, not a durability test). The
screenings are :mod:`kiosk.rhu.sample`'s (about one in five referred, 48 px
photos of ~0.7 KB), one export folder per station, imported through the real
importer (manifest check, upsert, photos to files). Then, each timed as a
median over repeats: the first page (100) of open referrals for all stations
and for one station, an exact slip-code search and a 4-digit prefix search, and
the follow-through figures. With ``--imported-stations K`` only K stations go through the importer and
the rest are SQL copies of them (new station and slip codes), so a loaded machine still reaches the full
table size; the output says how many rows were imported and how many cloned. One in ten referrals gets an
outcome first, so the open-list filter has something to filter. Prints a table (or JSON).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .db import Database
from .figures import follow_through
from .importer import import_export
from .pgtemp import TempPostgres
from .photos import PhotoStore
from .queries import find_by_code, referrals
from .sample import write_sample_export

__all__ = ["main", "run"]


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


_CLONE = """
INSERT INTO screenings (key, station_code, screening_id, code, created_at, status, risk, probability, threshold,
    features_json, body_site, age_band, sex, referred, due_date, facility, photo_sha256, resources_json, imported_at)
SELECT 'PH-BEN-' || lpad(g::text, 4, '0') || '/' || s.screening_id, 'PH-BEN-' || lpad(g::text, 4, '0'),
    s.screening_id, lpad((floor(random() * 1000000000))::bigint::text, 9, '0'), s.created_at, s.status, s.risk,
    s.probability, s.threshold, s.features_json, s.body_site, s.age_band, s.sex, s.referred, s.due_date, s.facility,
    s.photo_sha256, s.resources_json, s.imported_at
FROM screenings s, generate_series(%s::int, %s::int) g
WHERE s.station_code = 'PH-BEN-' || lpad(((g - 1) %% %s::int + 1)::text, 4, '0')
"""


def run(
    db: Database, work: Path, *, count: int, stations: int, imported_stations: int | None = None, seed: int = 1
) -> dict[str, Any]:
    """Import ``imported_stations`` stations' exports for real; clone them (PostgreSQL) up to ``stations``."""
    per_station = count // stations
    imported_stations = stations if imported_stations is None else min(imported_stations, stations)
    photos = PhotoStore(work / "photos")
    result: dict[str, Any] = {"screenings": per_station * stations, "stations": stations, "engine": db.kind}
    result["imported_through_the_importer"] = per_station * imported_stations
    generate_s = import_s = 0.0
    for i in range(imported_stations):
        code = f"PH-BEN-{i + 1:04d}"
        start = time.perf_counter()
        folder = write_sample_export(work / "inbox", station_code=code, count=per_station, seed=seed, photo_size=48)
        generate_s += time.perf_counter() - start
        start = time.perf_counter()
        import_export(db, photos, folder)
        import_s += time.perf_counter() - start
        if i == 0:
            result["export_bytes_per_station"] = _dir_bytes(folder)
        shutil.rmtree(folder)  # the photos are in the store now; keep the disk small
    result["generate_s"] = round(generate_s, 1)
    result["import_s"] = round(import_s, 1)
    result["import_per_s"] = round(result["imported_through_the_importer"] / import_s)
    if imported_stations < stations:
        if db.kind != "postgresql":
            raise SystemExit("cloning stations needs PostgreSQL (generate_series)")
        # The other stations: SQL copies of the imported rows under new station codes and random slip codes
        # (same row sizes and value mix), so the queries run on the full table size. Photos are shared.
        start = time.perf_counter()
        with db.transaction() as cur:
            cur.raw.execute(_CLONE, (imported_stations + 1, stations, imported_stations))
        result["cloned_rows"] = per_station * (stations - imported_stations)
        result["clone_s"] = round(time.perf_counter() - start, 1)
    # The same export again (a stick imported twice): every row upserted, nothing new.
    folder = write_sample_export(work / "inbox", station_code="PH-BEN-0001", count=per_station, seed=seed)
    start = time.perf_counter()
    again = import_export(db, photos, folder)
    result["reimport_one_station_s"] = round(time.perf_counter() - start, 2)
    result["reimport_new"] = again.new
    keys = [r["key"] for r in db.query("SELECT key FROM screenings WHERE referred = 1 ORDER BY key")]
    result["referrals"] = len(keys)
    rng = random.Random(seed)
    now = datetime(2026, 6, 1, tzinfo=UTC).isoformat()
    with db.transaction() as cur:
        cur.executemany(
            "INSERT INTO outcomes (id, screening_key, outcome, seen_on, recorded_at, recorded_by)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(f"{k}/{now}", k, rng.choice(("benign", "benign", "melanoma", "not_seen")), "2026-01-20", now, "bench")
             for k in rng.sample(keys, len(keys) // 10)],
        )  # fmt: skip
    if db.kind == "postgresql":
        with db.transaction() as cur:
            cur.execute("ANALYZE")
        result["database_bytes"] = int(db.scalar("SELECT pg_database_size(current_database())"))
    result["photo_store_bytes"] = _dir_bytes(photos.root)
    codes = [r["code"] for r in db.query("SELECT code FROM screenings ORDER BY key")]
    samples = [codes[rng.randrange(len(codes))] for _ in range(200)]
    it = iter(samples * 10)
    result["ms"] = {
        "referral_list_all_stations_first_100": _median_ms(lambda: referrals(db, limit=100), 30),
        "referral_list_one_station": _median_ms(lambda: referrals(db, station="PH-BEN-0050", limit=100), 30),
        "referral_list_page_10": _median_ms(lambda: referrals(db, limit=100, offset=900), 30),
        "code_search_exact": _median_ms(lambda: find_by_code(db, next(it)), 200),
        "code_search_prefix_4_digits": _median_ms(lambda: find_by_code(db, next(it)[:4]), 200),
        "follow_through_figures_all": _median_ms(lambda: follow_through(db), 3),
        "follow_through_figures_one_station": _median_ms(lambda: follow_through(db, station="PH-BEN-0050"), 10),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiosk.rhu.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=100_000)
    parser.add_argument("--stations", type=int, default=100)
    parser.add_argument("--imported-stations", type=int, help="import only this many stations for real, clone the rest")
    parser.add_argument("--database", help="postgresql://... or sqlite:///PATH (default: a throwaway PostgreSQL)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # clean up the server and files
    work = Path(tempfile.mkdtemp(prefix="rhu-bench-"))
    server = None
    try:
        url = args.database
        if url is None:
            server = TempPostgres()
            url = server.start()
        with Database.open(url) as db:
            result = run(db, work, count=args.count, stations=args.stations, imported_stations=args.imported_stations)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for key, value in result.items():
            if key != "ms":
                print(f"{key:32} {value}")
        for key, value in result["ms"].items():
            print(f"{key:40} {value:>9.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
