"""build-bundle --deb: Debian's syncthing in the bundle, its sha256 recorded; install.sh installs it offline.

The .deb is a tiny one built here with dpkg-deb (its syncthing hands over to this machine's real one);
install.sh runs in tests/test_deploy.py's throwaway root with a stub dpkg that unpacks it there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kiosk.site import read_site_file
from tests.test_deploy import (  # noqa: F401 - tiny_models, stand_in_wheels and throwaway are fixtures
    BUILD,
    run,
    sha256,
    snapshot,
    stand_in_wheels,
    throwaway,
    tiny_models,
)
from tests.test_provision_sync import RUNUSER, needs_syncthing, site_file

needs_dpkg_deb = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")
DEB = "syncthing_1.19.2~ds1-1+b4_arm64.deb"  # Debian Bookworm's name for it
#: dpkg -i, for the throwaway root: logged, each package unpacked into KIOSK_ROOT (no maintainer scripts).
DPKG = """#!/bin/sh
echo "dpkg $*" >>"$CALLS"
[ "$1" = -i ] || exit 2
shift
for deb; do dpkg-deb -x "$deb" "$KIOSK_ROOT" || exit 1; done
"""


def fake_deb(folder: Path, *, name: str = DEB, says: str = "") -> Path:
    """A real .deb (dpkg-deb --build) whose /usr/bin/syncthing runs this machine's syncthing."""
    package, version, arch = name.removesuffix(".deb").split("_")
    tree = Path(tempfile.mkdtemp(prefix="deb-tree-", dir=folder))
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: Tests <t@example.org>\n"
        f"Description: stand-in for Debian's syncthing {says}\n"
    )
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/bin/syncthing").write_text(f'#!/bin/sh\n# {says}\nexec {shutil.which("syncthing")} "$@"\n')
    (tree / "usr/bin/syncthing").chmod(0o755)
    deb = folder / name
    proc = run(["dpkg-deb", "--root-owner-group", "--build", tree, deb])
    assert proc.returncode == 0, proc.stderr
    return deb


def build(out: Path, tiny_models: Path, wheels: Path, *debs: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, BUILD, "--out", out, "--models", tiny_models, "--wheels-from", wheels]
    args += ["--locks", wheels / "locks"]
    for deb in debs:
        args += ["--deb", deb]
    return run(args)


@pytest.fixture(scope="module")
def deb_bundle(tiny_models, stand_in_wheels, tmp_path_factory) -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    work = tmp_path_factory.mktemp("deb-bundle")
    deb = fake_deb(work)
    proc = build(work / "bundle", tiny_models, stand_in_wheels, deb)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert f"adding {DEB} (sha256 {sha256(deb)}" in proc.stdout
    return work / "bundle"


@needs_dpkg_deb
def test_the_bundle_carries_the_deb_and_records_its_sha256(deb_bundle):
    digest = sha256(deb_bundle / "debs" / DEB)
    assert (deb_bundle / "debs/SHA256SUMS").read_text() == f"{digest}  {DEB}\n"
    assert f"{digest}  {DEB}" in (deb_bundle / "BUNDLE.txt").read_text().splitlines()
    listed = (deb_bundle / "SHA256SUMS").read_text().splitlines()
    assert f"{digest}  debs/{DEB}" in listed and any(line.endswith("  debs/SHA256SUMS") for line in listed)


@needs_dpkg_deb
@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (DEB.replace("arm64", "amd64"), None, "not a Debian package name for the Pi"),
        (DEB, b"PK\x03\x04 a zip, not a deb", "not a .deb"),
        ("missing_1.0_arm64.deb", "absent", "does not exist"),
    ],
)
def test_a_bad_deb_is_refused_in_one_line_and_no_bundle_is_made(tiny_models, stand_in_wheels, tmp_path, name, content,
                                                                expected):  # fmt: skip
    deb = tmp_path / name
    if content is None:
        fake_deb(tmp_path, name=name)
    elif content != "absent":
        deb.write_bytes(content)
    proc = build(tmp_path / "bundle", tiny_models, stand_in_wheels, deb)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("build-bundle: error: --deb ") and expected in proc.stderr
    assert not (tmp_path / "bundle").exists()


def sync_env(env: dict[str, str], root: Path, tmp_path: Path) -> dict[str, str]:
    """install.sh's environment for a first boot with a [sync] table: stub runuser and dpkg, no syncthing yet."""
    for name, text in (("runuser", RUNUSER), ("dpkg", DPKG)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    card = tmp_path / "melanoma-kiosk-sync.toml"
    card.write_text(read_site_file(site_file(tmp_path)).sync.to_toml())
    return dict(
        env,
        RUNUSER=str(tmp_path / "runuser"),
        DPKG=str(tmp_path / "dpkg"),
        KIOSK_SYNC_CONFIG=str(card),
        SYNCTHING=str(root / "usr/bin/syncthing"),  # where the .deb puts it: absent until dpkg -i
    )


@pytest.mark.slow
@needs_dpkg_deb
@needs_syncthing
def test_install_puts_the_bundles_syncthing_in_offline_then_configures_it(deb_bundle, throwaway, tmp_path):
    root, env, calls = throwaway
    env = sync_env(env, root, tmp_path)
    first = run(["bash", deb_bundle / "install.sh"], env=env)
    assert first.returncode == 0, first.stderr + first.stdout
    log = calls.read_text().splitlines()
    assert [c for c in log if c.startswith("dpkg")] == [f"dpkg -i {deb_bundle / 'debs' / DEB}"]
    assert f"installing {DEB} from the bundle (dpkg -i, offline)" in first.stdout
    assert "warning: syncthing is not installed" not in first.stdout
    # The step after it found syncthing and configured it: device id, units, timer.
    device_id = (root / "etc/melanoma-kiosk/syncthing-device-id").read_text().strip()
    assert f"Syncthing device id of this kiosk: {device_id}" in first.stdout
    assert "systemctl enable --now melanoma-kiosk-sync.timer" in log
    assert log.index(f"dpkg -i {deb_bundle / 'debs' / DEB}") < next(i for i, c in enumerate(log) if "runuser" in c)

    calls.write_text("")  # again (a repair, an update): syncthing is there, no second dpkg -i
    again = run(["bash", deb_bundle / "install.sh"], env=env)
    assert again.returncode == 0, again.stderr + again.stdout
    assert not [c for c in calls.read_text().splitlines() if c.startswith("dpkg")]


@pytest.mark.slow
@needs_dpkg_deb
@pytest.mark.parametrize("sums", ["kept", "redone"])
def test_a_deb_whose_hash_does_not_match_is_refused_and_nothing_installed(deb_bundle, throwaway, tmp_path, sums):
    """Another .deb under the same name: caught by SHA256SUMS, or, with SHA256SUMS redone, by debs/SHA256SUMS."""
    root, env, calls = throwaway
    bundle = tmp_path / "bundle"
    shutil.copytree(deb_bundle, bundle)
    (tmp_path / "other").mkdir()
    shutil.copy2(fake_deb(tmp_path / "other", says="not the one recorded"), bundle / "debs" / DEB)
    if sums == "redone":  # the bundle-wide list rewritten to match: only the .deb's own record disagrees
        lines = (bundle / "SHA256SUMS").read_text().splitlines()
        new = sha256(bundle / "debs" / DEB)
        (bundle / "SHA256SUMS").write_text(
            "".join(f"{new}  debs/{DEB}\n" if line.endswith(f"  debs/{DEB}") else line + "\n" for line in lines)
        )
    before = snapshot(root)
    proc = run(["bash", bundle / "install.sh"], env=sync_env(env, root, tmp_path))
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    expected = "bundle damaged" if sums == "kept" else "a .deb does not match the sha256 recorded in debs/SHA256SUMS"
    assert proc.stderr.startswith(f"install.sh: error: {expected}") and "nothing installed" in proc.stderr
    assert DEB in proc.stderr
    assert snapshot(root) == before and not calls.exists()  # not a file written, not a command run
