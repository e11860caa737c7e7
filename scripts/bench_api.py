#!/usr/bin/env python3
"""Benchmark the running kiosk through its HTTP API: capture-to-result latency and server memory.

Starts ``kiosk serve --camera synthetic`` in a subprocess (its own records
folder, GPIO off; ``--camera replay:DIR`` serves photos from a folder instead,
closer to a real camera: the synthetic one *draws* every still, which alone
briefly takes about 100 MB at 1280x960), then, on one keep-alive connection
like the page's:

1. **latency**: ``--count`` screenings through ``POST /api/screenings`` (the
   capture button's request: take a still, screen it, save it), timed from
   sending the request to the last byte of the result; median, p90, max.
2. **memory**: ``--memory-count`` more screenings, reading the server's
   ``VmRSS`` from ``/proc/PID/status`` before, every few requests, and after:
   the peak (also the kernel's own ``VmHWM``) and the growth (after - before).
   A steady kiosk must not grow with every patient.

The targets (issue: "capture to result within 150 ms, under 200 MB, no
leak") are reported, not enforced; ``--check`` makes a missed target exit 1.
Linux only (``/proc``). Not a unit test: timings depend on the machine.

    scripts/bench_api.py                       # the default model, 50 + 300 screenings
    scripts/bench_api.py --model models/x.tflite --count 100 --json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"median_ms": 150.0, "peak_rss_mb": 200.0, "rss_growth_mb": 10.0}
WARMUP = 5  # screenings before anything is measured (first-call allocations, caches, XNNPACK set-up)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_status(pid: int) -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` of ``pid`` in MB (MiB), from /proc."""
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024  # kB -> MB
    return values


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) by linear interpolation, as numpy's default."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Kiosk:
    """One ``kiosk serve`` subprocess and a keep-alive HTTP session with its cookie and CSRF token."""

    def __init__(
        self, *, model: str | None, camera: str, data_dir: Path, threads: int | None, startup_timeout: float
    ) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK_", "NOTIFY_", "WATCHDOG_"))}
        env["KIOSK_GPIO_ENABLED"] = "false"
        if os.environ.get("KIOSK_CONFIG"):
            env["KIOSK_CONFIG"] = os.environ["KIOSK_CONFIG"]
        cmd = [sys.executable, "-m", "kiosk"]
        if model:
            cmd += ["--model", model]
        if threads:
            cmd += ["--threads", str(threads)]
        cmd += [
            "serve",
            "--camera",
            camera,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(data_dir / "data"),
        ]
        self.log_path = data_dir / "serve.log"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.conn: http.client.HTTPConnection | None = None
        self.cookie = ""
        self.csrf = ""
        started = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"bench_api: kiosk serve exited with {self.proc.returncode}:\n{self.log_path.read_text()}"
                )
            try:
                status, _, _ = self.request("GET", "/healthz")
                if status == 200:
                    break
            except (OSError, http.client.HTTPException):
                self.conn = None
            if time.monotonic() - started > startup_timeout:
                self.stop()
                raise SystemExit(f"bench_api: kiosk serve did not answer /healthz within {startup_timeout:g} s")
            time.sleep(0.2)
        self.startup_s = time.monotonic() - started
        # The page's session: its cookie and the CSRF token from the meta tag, as the page's script sends them.
        status, headers, body = self.request("GET", "/")
        match = re.search(r'<meta name="csrf-token" content="([^"]+)">', body.decode("utf-8"))
        cookie = headers.get("Set-Cookie", "")
        if status != 200 or not match or not cookie:
            raise SystemExit("bench_api: the home page gave no session cookie or CSRF token")
        self.csrf = match.group(1)
        self.cookie = cookie.split(";", 1)[0]

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = {"Cookie": self.cookie} if self.cookie else {}
        sent.update(headers or {})
        self.conn.request(method, path, headers=sent)
        response = self.conn.getresponse()
        body = response.read()
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return response.status, dict(response.getheaders()), body

    def screen(self) -> tuple[float, dict]:
        """One capture through the API; (milliseconds, the JSON result)."""
        started = time.perf_counter()
        status, _, body = self.request(
            "POST", "/api/screenings", {"X-CSRF-Token": self.csrf, "Accept": "application/json", "Content-Length": "0"}
        )
        elapsed = (time.perf_counter() - started) * 1000
        if status != 201:
            raise SystemExit(f"bench_api: POST /api/screenings answered {status}: {body[:300]!r}")
        return elapsed, json.loads(body)

    def stop(self) -> int | None:
        if self.conn is not None:
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def run(args: argparse.Namespace, data_dir: Path) -> dict:
    kiosk = Kiosk(
        model=args.model,
        camera=args.camera,
        data_dir=data_dir,
        threads=args.threads,
        startup_timeout=args.startup_timeout,
    )
    try:
        statuses: dict[str, int] = {}
        for _ in range(WARMUP):
            kiosk.screen()
        latencies = []
        for _ in range(args.count):
            ms, result = kiosk.screen()
            latencies.append(ms)
            statuses[result["status"]] = statuses.get(result["status"], 0) + 1
        server_ms = result.get("timings_ms", {}).get("total")

        before = proc_status(kiosk.proc.pid)["VmRSS"]
        peak = before
        samples = [round(before, 1)]
        for i in range(1, args.memory_count + 1):
            kiosk.screen()
            if i % args.sample_every == 0 or i == args.memory_count:
                rss = proc_status(kiosk.proc.pid)["VmRSS"]
                peak = max(peak, rss)
                samples.append(round(rss, 1))
        final = proc_status(kiosk.proc.pid)
        after = final["VmRSS"]
    finally:
        code = kiosk.stop()
    report = {
        "camera": args.camera,
        "startup_s": round(kiosk.startup_s, 2),
        "latency": {
            "count": len(latencies),
            "median_ms": round(statistics.median(latencies), 1),
            "p90_ms": round(percentile(latencies, 0.9), 1),
            "min_ms": round(min(latencies), 1),
            "max_ms": round(max(latencies), 1),
            "last_server_total_ms": server_ms,  # the screening alone, as the server timed it (no HTTP, capture, save)
            "statuses": statuses,
        },
        "memory": {
            "count": args.memory_count,
            "rss_before_mb": round(before, 1),
            "rss_after_mb": round(after, 1),
            "rss_peak_mb": round(max(peak, after), 1),
            "vm_hwm_mb": round(final["VmHWM"], 1),  # the kernel's high-water mark over the whole run, start-up included
            "rss_growth_mb": round(after - before, 1),
            "samples_mb": samples,
        },
        "targets": TARGETS,
        "server_exit_code": code,
    }
    report["met"] = {
        "median_ms": report["latency"]["median_ms"] <= TARGETS["median_ms"],
        "peak_rss_mb": report["memory"]["vm_hwm_mb"] <= TARGETS["peak_rss_mb"],
        "rss_growth_mb": report["memory"]["rss_growth_mb"] <= TARGETS["rss_growth_mb"],
    }
    return report


def describe(report: dict) -> str:
    lat, mem, met = report["latency"], report["memory"], report["met"]

    def mark(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    return "\n".join(
        [
            f"kiosk serve (camera {report['camera']}) answered after {report['startup_s']} s",
            f"capture to result over POST /api/screenings, {lat['count']} screenings: median {lat['median_ms']} ms, "
            f"p90 {lat['p90_ms']} ms, max {lat['max_ms']} ms "
            f"(target median <= {report['targets']['median_ms']:g} ms: {mark(met['median_ms'])}); "
            f"results {lat['statuses']}",
            f"server memory over {mem['count']} more screenings: "
            f"RSS {mem['rss_before_mb']} -> {mem['rss_after_mb']} MB, "
            f"growth {mem['rss_growth_mb']} MB (target <= {report['targets']['rss_growth_mb']:g} MB: "
            f"{mark(met['rss_growth_mb'])}); peak RSS {mem['rss_peak_mb']} MB, high-water mark {mem['vm_hwm_mb']} MB "
            f"(target <= {report['targets']['peak_rss_mb']:g} MB: {mark(met['peak_rss_mb'])})",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model .tflite (default: the settings' model.path)")
    parser.add_argument("--camera", default="synthetic", help="camera spec for the server (default synthetic)")
    parser.add_argument("--threads", type=int, help="inference threads for the server (default from settings)")
    parser.add_argument("-n", "--count", type=int, default=50, help="screenings timed for latency (default 50)")
    parser.add_argument(
        "--memory-count", type=int, default=300, help="screenings run while memory is watched (default 300)"
    )
    parser.add_argument("--sample-every", type=int, default=10, help="read RSS every N screenings (default 10)")
    parser.add_argument("--data-dir", help="records folder parent, kept afterwards (default: a temporary one)")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to wait for /healthz")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.count < 1 or args.memory_count < 1 or args.sample_every < 1:
        parser.error("--count, --memory-count and --sample-every must be 1 or more")
    if not Path("/proc/self/status").exists():
        parser.error("needs Linux /proc to read the server's memory")
    if args.data_dir:
        folder = Path(args.data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        report = run(args, folder)
    else:
        with tempfile.TemporaryDirectory(prefix="kiosk-bench-api-") as tmp:
            report = run(args, Path(tmp))
    print(json.dumps(report) if args.json else describe(report))
    return 1 if args.check and not all(report["met"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
