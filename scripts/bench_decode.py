#!/usr/bin/env python3
"""Benchmark the photo decoder on hostile-but-valid big files: peak memory and time per decode.

Each case runs in a fresh Python process: it imports the loader, notes its peak
RSS (``VmHWM``, which starts afresh at exec, unlike ``ru_maxrss``, which starts
at the forking parent's size), decodes once, and reports the growth of the peak
and the wall time. Linux only (``/proc``). The files are built here, row by row,
as small as the ones an attacker would send:

- ``png16-rgba-48mp``: 8000 x 6000, 16-bit RGBA, ~0.4 MB (once 1.8 GB and 7 s;
  now refused on its header: its 384 MB of samples exceed the 300 MB budget);
- ``png8-rgba-48mp``: 8000 x 6000, 8-bit RGBA, ~0.2 MB (decoded, reduced to 12 MP);
- ``jpeg-48mp``: 8000 x 6000 JPEG (decoded at 1/2 scale by libjpeg).

Not a unit test (the numbers depend on the machine; the unit test only bounds
the peak). Run it on the Pi to size ``MemoryMax=`` in systemd/melanoma-kiosk.service.

    scripts/bench_decode.py            # a table
    scripts/bench_decode.py --json
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

_CHILD = """
import sys, time
from kiosk.reasons import ImageError
from kiosk.vision.loader import load_image
def peak_kb():  # VmHWM: this process's own peak; ru_maxrss would start at the forking parent's size
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
data = open(sys.argv[1], "rb").read()
before = peak_kb()
started = time.perf_counter()
try:
    shape = "x".join(map(str, load_image(data).shape[:2]))
except ImageError as exc:
    shape = "refused: " + exc.code
ms = (time.perf_counter() - started) * 1000
grown = (peak_kb() - before) / 1024
print(shape, round(ms), round(grown))
"""


def _png(width: int, height: int, depth: int) -> bytes:
    row = np.zeros((width, 4), ">u2" if depth == 16 else "u1")
    top = 2**depth - 1
    row[:, 0] = np.arange(width) * top // width
    row[:, 3] = top * 3 // 5  # half transparent: the alpha path runs
    packer = zlib.compressobj(9)
    idat = packer.compress(b"\x00" + row.tobytes())
    same = b"\x02" + bytes(row.nbytes)  # filter "Up": each further row repeats the one above
    idat += b"".join(packer.compress(same) for _ in range(height - 1)) + packer.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _jpeg(width: int, height: int) -> bytes:
    from kiosk.vision.loader import encode_jpeg

    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = (np.arange(width) * 255 // width).astype(np.uint8)[None, :]
    image[..., 2] = 90
    return encode_jpeg(image, quality=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per case")
    args = parser.parse_args(argv)
    cases = {
        "png16-rgba-48mp": lambda: _png(8000, 6000, 16),
        "png8-rgba-48mp": lambda: _png(8000, 6000, 8),
        "jpeg-48mp": lambda: _jpeg(8000, 6000),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in cases.items():
            path = Path(tmp) / name
            path.write_bytes(make())
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=600, check=True
            ).stdout.split()
            *shape, ms, grown = out
            row = {
                "case": name,
                "file_kb": round(path.stat().st_size / 1024),
                "result": " ".join(shape),
                "decode_ms": int(ms),
                "peak_growth_mb": int(grown),
            }
            print(
                json.dumps(row)
                if args.json
                else f"{name:16} {row['file_kb']:6} KB  {row['result']:38} {row['decode_ms']:6} ms  "
                f"peak +{row['peak_growth_mb']} MB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
