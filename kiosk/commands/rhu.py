"""``kiosk rhu``: the rural health unit's console (serve, import, create-user, figures).

``kiosk rhu serve`` runs the doctor's web page (waitress; 127.0.0.1:8090 by
default, or one LAN address of this machine, never every address) and imports
every export that appears under ``--inbox`` (the stations' Syncthing folders,
or a copied stick) once a minute. ``kiosk rhu import DIR`` imports once.
The database is ``--database`` or ``$KIOSK_RHU_DATABASE`` (a libpq URL for
PostgreSQL; default SQLite in the data folder).
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from ..reasons import KioskError

NAME = "rhu"
HELP = "the rural health unit's console: import kiosks' exports, the doctor's page, outcomes back"
DEFAULT_PORT = 8090
IMPORT_EVERY_SECONDS = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("KIOSK_RHU_DATA", "rhu-data"),
        help="photos, outbound outcomes and the SQLite file (default ./rhu-data or $KIOSK_RHU_DATA)",
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("KIOSK_RHU_DATABASE"),
        help="postgresql://... or sqlite:///PATH (default: SQLite in --data-dir; $KIOSK_RHU_DATABASE)",
    )
    sub = parser.add_subparsers(dest="rhu_command", required=True, metavar="SUBCOMMAND")
    p = sub.add_parser("serve", help="the doctor's web page, importing new exports from --inbox")
    p.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (default) or one LAN address of this machine")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--inbox", help="folder holding the stations' exports (Syncthing folders or a copied stick)")
    p.add_argument("--outbound", help="where outcomes go, one folder per station (default DATA_DIR/outbound)")
    p.add_argument("--facility", default="Rural Health Unit", help="this RHU's name (in outcomes and on the page)")
    p.add_argument("--facility-code", default="RHU", help="this RHU's short code, e.g. RHU-PALO (outcomes' source)")
    p = sub.add_parser("import", help="import every export under DIR once (idempotent)")
    p.add_argument("directory", metavar="DIR")
    p = sub.add_parser("create-user", help="add a staff account (asks for the password twice)")
    p.add_argument("username")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p = sub.add_parser("figures", help="print the follow-through figures as CSV")
    p.add_argument("--station")


def _fail(detail: str) -> KioskError:
    return KioskError("rhu_failed", detail=detail)


def check_listen_address(host: str) -> None:
    """Loopback or a private LAN address only: the console holds health records."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise _fail(f"--host must be an IP address (127.0.0.1 or a LAN address), got {host!r}") from None
    if address.is_unspecified:
        raise _fail("--host must be one address, not every address (0.0.0.0 or ::)")
    if not (address.is_loopback or address.is_private or address.is_link_local):
        raise _fail(f"--host {host} is not a loopback or LAN address; the console is never served to the internet")


def run(args: argparse.Namespace) -> int:
    from ..rhu.db import Database, DatabaseError

    data_dir = Path(args.data_dir).expanduser()
    url = args.database or f"sqlite:///{data_dir / 'rhu.sqlite3'}"
    if args.rhu_command == "serve":
        check_listen_address(args.host)  # before anything is opened
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        db = Database.open(url)
    except (OSError, DatabaseError) as exc:
        raise _fail(str(exc).splitlines()[0]) from None
    try:
        if args.rhu_command == "import":
            return _import(db, data_dir, Path(args.directory))
        if args.rhu_command == "create-user":
            return _create_user(db, args)
        if args.rhu_command == "figures":
            from ..rhu.figures import follow_through, to_csv

            sys.stdout.write(to_csv(follow_through(db, station=args.station)))
            return 0
        return _serve(db, data_dir, args)
    finally:
        db.close()


def _import(db: object, data_dir: Path, directory: Path) -> int:
    from ..rhu.db import Database
    from ..rhu.importer import ExportError, find_exports, import_export
    from ..rhu.photos import PhotoStore

    assert isinstance(db, Database)
    if not directory.is_dir():
        raise KioskError("file_not_found", path=str(directory))
    photos = PhotoStore(data_dir / "photos")
    failed = 0
    for folder in find_exports(directory):
        try:
            summary = import_export(db, photos, folder)
        except ExportError as exc:
            failed += 1
            print(f"kiosk: error: {exc}", file=sys.stderr)
            continue
        state = "already imported" if summary.skipped else f"{summary.new} new"
        print(f"{folder}: {summary.screenings} screenings, {state}")
    return 2 if failed else 0


def _create_user(db: object, args: argparse.Namespace) -> int:
    from ..rhu.accounts import AccountError, create_user
    from ..rhu.db import Database

    assert isinstance(db, Database)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise _fail("the two passwords differ; nothing was changed")
    try:
        create_user(db, args.username, password)
    except AccountError as exc:
        raise _fail(str(exc)) from None
    print(f"user {args.username} created")
    return 0


def _serve(db: object, data_dir: Path, args: argparse.Namespace) -> int:
    import waitress

    from ..rhu.db import Database
    from ..rhu.importer import ExportError, find_exports, import_export
    from ..rhu.outcomes import write_pending
    from ..rhu.photos import PhotoStore
    from ..rhu.web import create_app

    assert isinstance(db, Database)
    if not 0 <= args.port <= 65535:
        raise _fail(f"--port must be 0 to 65535, got {args.port}")
    outbound = Path(args.outbound) if args.outbound else data_dir / "outbound"
    write_pending(
        db, outbound, facility=args.facility, facility_code=args.facility_code
    )  # outcomes saved just before a crash
    app = create_app(
        db=db,
        data_dir=data_dir,
        facility=args.facility,
        facility_code=args.facility_code,
        outbound=outbound,
        host=args.host,
    )
    stop = threading.Event()

    def import_loop() -> None:
        photos = PhotoStore(data_dir / "photos")
        while not stop.is_set():
            for folder in find_exports(Path(args.inbox)) if Path(args.inbox).is_dir() else []:
                try:
                    summary = import_export(db, photos, folder)
                    if not summary.skipped:
                        print(f"imported {folder}: {summary.new} new of {summary.screenings}", flush=True)
                except ExportError as exc:  # a folder still syncing: tried again next round
                    print(f"not yet imported: {exc}", flush=True)
                except Exception as exc:  # noqa: BLE001 - one bad folder must not stop the console
                    print(f"import failed for {folder}: {exc}", file=sys.stderr, flush=True)
            stop.wait(IMPORT_EVERY_SECONDS)

    if args.inbox:
        threading.Thread(target=import_loop, name="rhu-import", daemon=True).start()
    server = waitress.create_server(app, host=args.host, port=args.port, threads=4)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    print(f"RHU console on http://{args.host}:{server.effective_port}/", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.close()
    return 0
