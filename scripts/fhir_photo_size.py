"""Photos in a FHIR export: inline (base64 in Media.content.data) or as files beside the NDJSON? Measure both.

    PYTHONPATH=. python scripts/fhir_photo_size.py [--dataset ../shared/data/melanoma10k/train] [-n 200]

Prints, per kind of photo, the mean JPEG size, the Media NDJSON line with the photo inline, and the
line with a file reference (plus the file itself). The numbers are in docs/FHIR.md, section 7.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

from kiosk.fhir.mapping import ExportContext, PhotoFile, StationInfo, screening_resources
from kiosk.records import PatientInfo, StoredScreening
from kiosk.result import ScreeningResult
from kiosk.synthetic import random_lesion
from kiosk.vision.loader import encode_jpeg

CTX = ExportContext(station=StationInfo(code="PH-LEY-0001"), kiosk_version="0.1.0")


def media_lines(jpeg: bytes, i: int) -> tuple[int, int]:
    """(inline line bytes, file-reference line bytes) of the Media resource for one photo."""
    sid = f"20260301-021500-{i:04d}-" + "0" * 32
    screening = StoredScreening(
        id=sid,
        created_at=datetime(2026, 3, 1, tzinfo=UTC),
        result=ScreeningResult(status="ok", malignant_probability=0.2, risk="low", threshold=0.5),
        patient=PatientInfo(body_site="left-forearm"),
        image_path=None,
        code="482193677",
    )
    photo = PhotoFile(
        url=f"photos/{sid}.jpg",
        size=len(jpeg),
        sha1_base64=base64.b64encode(hashlib.sha1(jpeg).digest()).decode(),  # noqa: S324 - R4's Attachment.hash
    )
    media = next(r for r in screening_resources(screening, CTX, photo=photo) if r["resourceType"] == "Media")
    by_file = len(json.dumps(media, separators=(",", ":"))) + 1
    inline = dict(media, content={k: v for k, v in media["content"].items() if k != "url"})
    inline["content"]["data"] = base64.b64encode(jpeg).decode()
    return len(json.dumps(inline, separators=(",", ":"))) + 1, by_file


def report(name: str, photos: list[bytes]) -> None:
    lines = [media_lines(p, i) for i, p in enumerate(photos)]
    jpeg = statistics.mean(len(p) for p in photos)
    inline = statistics.mean(a for a, _ in lines)
    by_file = statistics.mean(b for _, b in lines)
    print(
        f"{name}: {len(photos)} photos, JPEG mean {jpeg / 1024:.1f} KiB; inline Media line {inline / 1024:.1f} KiB "
        f"({inline / jpeg:.3f} x the JPEG); file reference: Media line {by_file:.0f} B + the JPEG "
        f"({(by_file + jpeg) / jpeg:.3f} x)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/data/melanoma10k/train"
    )
    parser.add_argument("-n", type=int, default=200)
    args = parser.parse_args()
    files = sorted(args.dataset.glob("*/*.jpg"))[: args.n]
    if files:
        report("dataset 300x300 dermoscopic JPEGs", [f.read_bytes() for f in files])
    else:
        print(f"no dataset at {args.dataset}; only synthetic stills", file=sys.stderr)
    stills = [encode_jpeg(random_lesion(seed, width=2028, height=1520), quality=90) for seed in range(5)]
    report("kiosk stills 2028x1520 q90 (drawn lesions, seeds 0-4)", stills)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
