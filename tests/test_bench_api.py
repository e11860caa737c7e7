"""scripts/bench_api.py runs end to end (a smoke test: 5 screenings, no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the server's memory from /proc")


def test_bench_api_reports_latency_and_memory_as_json(tiny_model_path, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "bench_api.py"),
            "--model",
            str(tiny_model_path),
            "--count",
            "5",
            "--memory-count",
            "5",
            "--sample-every",
            "2",
            "--data-dir",
            str(tmp_path),
            "--json",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert set(report) >= {"camera", "startup_s", "latency", "memory", "targets", "met", "server_exit_code"}
    assert set(report["latency"]) >= {"count", "median_ms", "p90_ms", "max_ms", "statuses"}
    assert set(report["memory"]) >= {"rss_before_mb", "rss_after_mb", "rss_peak_mb", "vm_hwm_mb", "rss_growth_mb"}
    assert set(report["met"]) == set(report["targets"]) == {"median_ms", "peak_rss_mb", "rss_growth_mb"}
    assert report["latency"]["count"] == 5 and sum(report["latency"]["statuses"].values()) == 5
    assert 0 < report["latency"]["median_ms"] <= report["latency"]["p90_ms"] <= report["latency"]["max_ms"]
    assert report["memory"]["rss_before_mb"] > 10 and report["memory"]["vm_hwm_mb"] >= report["memory"]["rss_peak_mb"]
    assert report["server_exit_code"] == 0  # SIGTERM stops it cleanly
    assert (tmp_path / "data" / "records.sqlite3").exists()  # the screenings were saved where asked


def test_bench_api_refuses_a_zero_count():
    r = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "bench_api.py"), "--count", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "--count" in r.stderr
