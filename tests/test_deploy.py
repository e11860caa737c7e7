"""deploy/: the offline bundle, its install.sh, SD-card provisioning and the aarch64 check.

Fast tests build a bundle from small stand-in wheels (``--wheels-from``) around the real
kiosk wheel and the tiny test model; install.sh then runs for real (real venv, real pip,
offline) in a throwaway root with stand-ins for useradd/getent/systemctl on PATH.
Provisioning runs against look-alike Raspberry Pi OS images made here (MBR, FAT boot
partition, ext4 root). The slow tests download the real aarch64 wheels and run them under
qemu.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
BUILD = DEPLOY / "build-bundle"
PROVISION = DEPLOY / "provision-sd"
VERIFY = DEPLOY / "verify-aarch64"
FIRSTRUN_ARGS = (
    "systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target"
)
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx1C0FfJ3k2nq0YvQ2uC5n7aQJxv1z3sS9n3fS0h6dQ maintainer@town-office"
PASSPHRASE = "barangay-health-2580"
SSID = "RHU Wi-Fi"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(tag: str = "cp311") -> dict[str, str]:
    """NAME -> VERSION in the Pi's hashed lock locks/pi-TAG.txt."""
    out = {}
    for line in (REPO_ROOT / "locks" / f"pi-{tag}.txt").read_text().splitlines():
        if "==" in line and not line.startswith(("#", " ")):
            name, version = line.split(" ", 1)[0].split("==", 1)
            out[canonical(name)] = version.strip()
    return out


def runtime_deps() -> list[str]:
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [canonical(re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0]) for d in deps]


def fake_wheel(dest: Path, name: str, version: str) -> Path:
    """An installable, empty py3-none-any wheel standing in for NAME==VERSION."""
    dist = re.sub(r"[-.]+", "_", name)
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(text)}\n"
    wheel = dest / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
        z.writestr(f"{info}/RECORD", record + f"{info}/RECORD,,\n")
    return wheel


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 600)
    return subprocess.run([str(c) for c in cmd], check=False, **kwargs)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- bundles ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_models(tiny_model_path, tmp_path_factory) -> Path:
    """A models folder holding only the tiny test model and its manifest."""
    models = tmp_path_factory.mktemp("deploy-models")
    for suffix in (".tflite", ".json"):
        shutil.copy2(tiny_model_path.with_suffix(suffix), models / tiny_model_path.with_suffix(suffix).name)
    return models


@pytest.fixture(scope="session")
def stand_in_wheels(tmp_path_factory) -> Path:
    """DIR/cp311 and DIR/cp313 with a stand-in wheel for every runtime dependency at its pin, and
    DIR/locks/pi-cpXYZ.txt: locks in the format scripts/lock writes, with the stand-ins' hashes."""
    root = tmp_path_factory.mktemp("stand-in-wheels")
    (root / "locks").mkdir()
    for tag in ("cp311", "cp313"):
        (root / tag).mkdir()
        pinned = pins(tag)
        lines = ["# stand-in lock for the tests (scripts/lock writes the real ones)"]
        for name in runtime_deps():
            wheel = fake_wheel(root / tag, name, pinned[name])
            lines += [f"{name}=={pinned[name]} \\", f"    --hash=sha256:{sha256(wheel)}", "    # via melanoma-kiosk"]
        (root / "locks" / f"pi-{tag}.txt").write_text("\n".join(lines) + "\n")
    return root


UPDATE_KEY = (
    "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
    "-----END PUBLIC KEY-----\n"
)


@pytest.fixture(scope="session")
def bundle(tiny_models, stand_in_wheels, tmp_path_factory) -> Path:
    parent = tmp_path_factory.mktemp("bundle-parent")
    key = parent / "update-key.pub"
    key.write_text(UPDATE_KEY)
    out = parent / "bundle"
    proc = run(
        [
            sys.executable,
            BUILD,
            "--out",
            out,
            "--models",
            tiny_models,
            "--wheels-from",
            stand_in_wheels,
            "--locks",
            stand_in_wheels / "locks",
            "--update-key",
            key,
        ]
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return out


def test_bundle_contents(bundle, tiny_models):
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    for required in (
        "install.sh",
        "SHA256SUMS",
        "BUNDLE.txt",
        "locks/pi-cp311.txt",
        "locks/pi-cp313.txt",
        "config/kiosk.example.toml",
        "config/update-key.pub",
        "systemd/melanoma-kiosk.service",
        "systemd/melanoma-kiosk-browser.service",
        "systemd/melanoma-kiosk-syncthing.service",
        "systemd/melanoma-kiosk-sync.service",
        "systemd/melanoma-kiosk-sync.timer",
        "systemd/labwc-autostart",
        "models/tiny_int8.tflite",
        "models/tiny_int8.json",
    ):
        assert required in files
    assert (bundle / "models/tiny_int8.tflite").read_bytes() == (tiny_models / "tiny_int8.tflite").read_bytes()
    for tag in ("cp311", "cp313"):
        names = {canonical(w.name.split("-")[0]) for w in (bundle / "wheels" / tag).glob("*.whl")}
        assert set(runtime_deps()) | {"melanoma-kiosk"} <= names, tag
    script = (bundle / "install.sh").read_text()
    assert not re.search(r"@[A-Z_]+@", script), "template placeholders left"
    assert 'model_file="tiny_int8.tflite"' in script and 'pythons="cp311 cp313"' in script
    assert os.access(bundle / "install.sh", os.X_OK)
    assert "default model: models/tiny_int8.tflite" in (bundle / "BUNDLE.txt").read_text()


def test_sha256sums_cover_every_file(bundle):
    listed = [line.split("  ", 1)[1] for line in (bundle / "SHA256SUMS").read_text().splitlines()]
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert sorted(listed) == [f for f in files if f != "SHA256SUMS"]
    proc = run(["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"], cwd=bundle)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_build_refuses_existing_output_and_leaves_nothing_half_done(tiny_models, stand_in_wheels, tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = run([sys.executable, BUILD, "--out", out, "--models", tiny_models, "--wheels-from", stand_in_wheels])
    assert proc.returncode == 1 and "error:" in proc.stderr and "--force" in proc.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]

    # A wheelhouse that lacks a dependency: a clear error and no bundle, not even a partial one.
    broken = tmp_path / "wheels"
    shutil.copytree(stand_in_wheels, broken)
    for wheel in (broken / "cp313").glob("numpy-*.whl"):
        wheel.unlink()
    fresh = tmp_path / "fresh"
    proc = run([sys.executable, BUILD, "--out", fresh, "--models", tiny_models, "--wheels-from", broken])
    assert proc.returncode == 1 and "numpy" in proc.stderr and "3.13" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "wheels"]

    private = tmp_path / "update-key.pem"
    private.write_text("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n")
    proc = run(
        [
            sys.executable,
            BUILD,
            "--out",
            fresh,
            "--models",
            tiny_models,
            "--wheels-from",
            stand_in_wheels,
            "--update-key",
            private,
        ]
    )
    assert proc.returncode == 1 and "PRIVATE key" in proc.stderr
    private.unlink()

    empty = tmp_path / "no-models"
    empty.mkdir()
    proc = run([sys.executable, BUILD, "--out", fresh, "--models", empty, "--wheels-from", stand_in_wheels])
    assert proc.returncode == 1 and "no .tflite model" in proc.stderr


def _load_script(path: Path):
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader(path.name.replace("-", "_"), str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_missing_aarch64_wheel_is_named_with_version_and_platform():
    build = _load_script(BUILD)
    pip_output = (
        "ERROR: Cannot install ai-edge-litert because these package versions have conflicting dependencies.\n"
        "Additionally, some packages in these conflicts have no matching distributions available for "
        "your environment:\n    ai-edge-litert\n\nTo fix this you could try to:\n"
    )
    message = build._explain_pip_failure(pip_output, "3.13", {"ai-edge-litert": "2.3.0"})
    assert "ai-edge-litert==2.3.0" in message and "CPython 3.13" in message and "aarch64" in message
    # pip does not widen manylinux_2_28 to the manylinux_2_27 wheels LiteRT and numpy publish.
    assert "manylinux_2_27_aarch64" in build.platforms() and "manylinux_2_36_aarch64" in build.platforms()
    assert "manylinux_2_37_aarch64" not in build.platforms()


@pytest.mark.parametrize("tag", ["cp311", "cp313"])
def test_pi_locks_pin_every_runtime_dependency_with_hashes(tag):
    """scripts/lock's output: each package exactly once, at ==, with at least one sha256 under it."""
    lines = (REPO_ROOT / "locks" / f"pi-{tag}.txt").read_text().splitlines()
    names, hashes = [], {}
    for line in lines:
        if line and not line.startswith((" ", "#")):
            name = canonical(line.split("==", 1)[0])
            assert "==" in line and ";" not in line, line  # resolved for the Pi: no markers left
            names.append(name)
        elif line.strip().startswith("--hash=sha256:"):
            assert re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", line.strip()), line
            hashes[names[-1]] = hashes.get(names[-1], 0) + 1
    assert len(names) == len(set(names)) and set(runtime_deps()) <= set(names)
    assert set(hashes) == set(names), "a locked package without a hash"
    assert "tensorflow" not in names and "tensorflow-cpu" not in names and "pytest" not in names


def test_wheels_are_downloaded_with_require_hashes_against_that_pythons_lock(monkeypatch, tmp_path):
    build = _load_script(BUILD)
    calls = []

    def fake_run(cmd, *, what, show=()):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(build, "run", fake_run)
    for version in ("3.11", "3.13"):
        lock = build.lock_for(REPO_ROOT / "locks", version)
        build.download_wheels(["python3"], version, ["numpy>=1.26"], lock, tmp_path, build.read_pins(lock))
    for cmd, tag in zip(calls, ("cp311", "cp313"), strict=True):
        assert "--require-hashes" in cmd and "--no-deps" in cmd and "-c" not in cmd
        assert cmd[cmd.index("-r") + 1] == str(REPO_ROOT / "locks" / f"pi-{tag}.txt")
        assert cmd[cmd.index("--abi") + 1] == tag and "numpy>=1.26" not in cmd  # the lock is the whole list
    assert build.read_pins(REPO_ROOT / "locks" / "pi-cp311.txt") == pins("cp311")
    with pytest.raises(build.BuildError, match=r"no lock for Python 3\.12: .*pi-cp312\.txt is missing"):
        build.lock_for(REPO_ROOT / "locks", "3.12")


# --- install.sh in a throwaway root ---------------------------------------------------------

SHIMS = {
    "getent": """#!/bin/sh
# getent passwd|group NAME-or-ID, from the throwaway root
db="$KIOSK_ROOT/etc/$1"; [ -f "$db" ] || exit 2
awk -F: -v k="$2" '$1 == k || $3 == k { print; found = 1 } END { exit !found }' "$db" || exit 2
""",
    "useradd": """#!/bin/sh
echo "useradd $*" >>"$CALLS"
for name; do :; done
if grep -q "^$name:" "$KIOSK_ROOT/etc/passwd"; then echo "useradd: user '$name' already exists" >&2; exit 9; fi
echo "$name:x:999:999::/var/lib/melanoma-kiosk:/usr/sbin/nologin" >>"$KIOSK_ROOT/etc/passwd"
echo "$name:x:999:" >>"$KIOSK_ROOT/etc/group"
""",
    "usermod": '#!/bin/sh\necho "usermod $*" >>"$CALLS"\n',
    "chown": '#!/bin/sh\necho "chown $*" >>"$CALLS"\n',
    "systemctl": '#!/bin/sh\necho "systemctl $*" >>"$CALLS"\n[ "$1" = is-active ] && exit 3\nexit 0\n',
}


@pytest.fixture()
def throwaway(tmp_path):
    """(root, env, calls log): a root with a desktop user pi (uid 1000) and video/gpio groups."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "home/pi").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000::/home/pi:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\nvideo:x:44:\ngpio:x:997:\npi:x:1000:\n")
    shims = tmp_path / "shims"
    shims.mkdir()
    for name, text in SHIMS.items():
        (shims / name).write_text(text)
        (shims / name).chmod(0o755)
    calls = tmp_path / "calls.log"
    env = dict(
        os.environ,
        PATH=f"{shims}:{os.environ['PATH']}",
        KIOSK_ROOT=str(root),
        CALLS=str(calls),
        PYTHON3=sys.executable,
        PIP_NO_INDEX="1",
    )
    for var in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH"):
        env.pop(var, None)
    return root, env, calls


def snapshot(root: Path) -> dict[str, tuple]:
    """path -> (kind, mode, content hash / link target); compiled .pyc files by name only."""
    tree = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            tree[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            tree[rel] = ("dir", stat.S_IMODE(st.st_mode))
        elif path.suffix == ".pyc":  # embeds the source's mtime, which a reinstall renews
            tree[rel] = ("pyc", stat.S_IMODE(st.st_mode))
        else:
            tree[rel] = ("file", stat.S_IMODE(st.st_mode), sha256(path))
    return tree


@pytest.mark.slow
def test_install_twice_gives_the_same_tree(bundle, throwaway):
    root, env, calls = throwaway
    first = run(["bash", bundle / "install.sh"], env=env)
    assert first.returncode == 0, first.stderr + first.stdout
    assert first.stderr == ""
    after_first = snapshot(root)
    second = run(["bash", bundle / "install.sh"], env=env)
    assert second.returncode == 0, second.stderr + second.stdout
    assert second.stderr == ""
    assert snapshot(root) == after_first

    log = calls.read_text().splitlines()
    useradd = (
        "useradd --system --user-group --home-dir /var/lib/melanoma-kiosk --no-create-home "
        "--shell /usr/sbin/nologin kiosk"
    )
    assert [c for c in log if c.startswith("useradd")] == [useradd]
    assert log.count("usermod --append --groups video,gpio kiosk") == 2
    assert log.count("systemctl enable --now melanoma-kiosk.service") == 2
    assert "systemctl daemon-reload" in log
    assert (root / "etc/passwd").read_text().count("\nkiosk:") == 1

    venv = root / "opt/melanoma-kiosk/venv"
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    freeze = run([venv / "bin/python", "-m", "pip", "list", "--format=freeze"]).stdout
    assert "melanoma-kiosk==0.1.0" in freeze
    assert f"numpy=={pins()['numpy']}" in freeze
    assert (root / "opt/melanoma-kiosk/models/tiny_int8.tflite").exists()
    assert (root / "etc/systemd/system/melanoma-kiosk.service").read_bytes() == (
        REPO_ROOT / "systemd/melanoma-kiosk.service"
    ).read_bytes()
    home = root / "home/pi/.config"
    assert (home / "labwc/autostart").read_bytes() == (REPO_ROOT / "systemd/labwc-autostart").read_bytes()
    wants = home / "systemd/user/graphical-session.target.wants/melanoma-kiosk-browser.service"
    assert os.readlink(wants) == "../melanoma-kiosk-browser.service"
    assert (root / "etc/polkit-1/rules.d/50-melanoma-kiosk.rules").exists()

    from kiosk.config import load_settings

    conf = root / "etc/melanoma-kiosk/kiosk.toml"
    assert load_settings(conf).model.path == Path("/opt/melanoma-kiosk/models/tiny_int8.tflite")
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640

    assert (root / "etc/melanoma-kiosk/update-key.pub").read_text() == UPDATE_KEY

    # A maintainer's settings, and a model a signed update installed, survive a reinstall.
    conf.write_text('[model]\npath = "/opt/melanoma-kiosk/models/tiny_int8.tflite"\nthreads = 4\n')
    models = root / "opt/melanoma-kiosk/models"
    version = models / "tiny_int8.versions/0002-aa11bb22cc33"
    version.mkdir(parents=True)
    (version / "tiny_int8.tflite").write_bytes(b"newer model")
    (models / "tiny_int8.versions/current").symlink_to("0002-aa11bb22cc33")
    (models / "tiny_int8.tflite").unlink()
    (models / "tiny_int8.tflite").symlink_to("tiny_int8.versions/current/tiny_int8.tflite")
    third = run(["bash", bundle / "install.sh"], env=env)
    assert third.returncode == 0, third.stderr
    assert "threads = 4" in conf.read_text()
    assert (models / "tiny_int8.tflite").is_symlink() and (models / "tiny_int8.tflite").read_bytes() == b"newer model"
    assert "keeping /opt/melanoma-kiosk/models/tiny_int8.tflite" in third.stdout


def test_install_refuses_a_tampered_bundle_and_changes_nothing(bundle, throwaway, tmp_path):
    root, env, calls = throwaway
    before = snapshot(root)
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    wheel = next((tampered / "wheels/cp311").glob("numpy-*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    proc = run(["bash", tampered / "install.sh"], env=env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("install.sh: error: bundle damaged") and "numpy" in proc.stderr
    assert snapshot(root) == before and not calls.exists()

    extra = tmp_path / "extra"
    shutil.copytree(bundle, extra)
    fake_wheel(extra / "wheels/cp311", "evil", "1.0")
    proc = run(["bash", extra / "install.sh"], env=env)
    assert proc.returncode == 1 and "does not list" in proc.stderr and "evil" in proc.stderr
    assert snapshot(root) == before and not calls.exists()


def test_install_names_the_python_it_cannot_serve(bundle, throwaway, tmp_path):
    root, env, calls = throwaway
    fake_python = tmp_path / "python3.12"
    fake_python.write_text("#!/bin/sh\necho 312\n")
    fake_python.chmod(0o755)
    proc = run(["bash", bundle / "install.sh"], env=dict(env, PYTHON3=str(fake_python)))
    assert proc.returncode == 1
    assert "Python 3.11, 3.13" in proc.stderr and "3.12" in proc.stderr
    assert not (root / "opt").exists() and not calls.exists()


# --- look-alike Raspberry Pi OS images --------------------------------------------------------

IMAGE_TOOLS = ("sfdisk", "mkfs.vfat", "mkfs.ext4", "mcopy", "mtype", "mdir", "minfo")
needs_image_tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in IMAGE_TOOLS),
    reason="needs mtools, dosfstools, e2fsprogs and fdisk "
    "(apt install mtools dosfstools e2fsprogs fdisk; .ci/run does)",
)

BOOKWORM_CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 "
    "fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot splash "
    "plymouth.ignore-udev\n"
)
TRIXIE_CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=a3c8f2e1-02 rootfstype=ext4 "
    "fsck.repair=yes rootwait quiet splash plymouth.ignore-udev cfg80211.ieee80211_regdom=GB\n"
)
MTOOLS_ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1", MTOOLSRC="/dev/null")


def make_pi_image(
    path: Path, flavour: str, *, boot_kib: int = 49152, root_kib: int = 8192, issue: str | None = None
) -> dict[str, tuple[int, int]]:
    """An MBR image laid out like Raspberry Pi OS: FAT boot (type 0c) + ext4 root (type 83).

    Returns {"boot": (offset, size), "root": (offset, size)} in bytes.
    """
    work = path.parent / f"{path.name}.parts"
    work.mkdir()
    files = {
        "cmdline.txt": BOOKWORM_CMDLINE if flavour == "bookworm" else TRIXIE_CMDLINE,
        "config.txt": "# For more options and information see\n# http://rptl.io/configtxt\ndtparam=audio=on\n"
        "camera_auto_detect=1\ndisplay_auto_detect=1\nauto_initramfs=1\ndtoverlay=vc4-kms-v3d\n"
        "arm_64bit=1\n",
        "issue.txt": issue
        if issue is not None
        else (
            f"Raspberry Pi reference {'2024-11-19' if flavour == 'bookworm' else '2025-11-24'}\n"
            "Generated using pi-gen, https://github.com/RPi-Distro/pi-gen, 6f2f5e6b, stage4\n"
        ),
        "start4.elf": "firmware stand-in\n",
    }
    if flavour == "trixie":
        files["user-data"] = "#cloud-config\n# The image's own, mostly comments.\n"
        files["meta-data"] = "dsmode: local\ninstance_id: rpios-image\n"
        files["network-config"] = "network:\n  version: 2\n"
    boot = work / "boot.fat"
    fat = ["-F", "32", "-s", "1"] if boot_kib >= 40000 else []
    subprocess.run(["mkfs.vfat", "-C", *fat, "-n", "bootfs", str(boot), str(boot_kib)], check=True, capture_output=True)
    for name, text in files.items():
        (work / name).write_text(text)
        subprocess.run(["mcopy", "-i", str(boot), str(work / name), f"::/{name}"], check=True, env=MTOOLS_ENV)
    rootdir = work / "rootfs"
    (rootdir / "etc").mkdir(parents=True)
    (rootdir / "etc/os-release").write_text(f'PRETTY_NAME="Debian GNU/Linux ({flavour})"\n')
    rootfs = work / "root.ext4"
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", str(rootdir), str(rootfs), f"{root_kib}K"],
        check=True,
        capture_output=True,
    )
    boot_start, root_start = 8192 * 512, 8192 * 512 + boot_kib * 1024
    with path.open("wb") as f:
        f.truncate(root_start + root_kib * 1024)
        f.seek(boot_start)
        f.write(boot.read_bytes())
        f.seek(root_start)
        f.write(rootfs.read_bytes())
    table = (
        f"label: dos\nlabel-id: 0x4e639091\nstart=8192, size={boot_kib * 2}, type=c\n"
        f"start={root_start // 512}, size={root_kib * 2}, type=83\n"
    )
    subprocess.run(
        ["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(path)],
        input=table,
        text=True,
        check=True,
        capture_output=True,
    )
    shutil.rmtree(work)
    return {"boot": (boot_start, boot_kib * 1024), "root": (root_start, root_kib * 1024)}


def region_hash(image: Path, offset: int, size: int) -> str:
    with image.open("rb") as f:
        f.seek(offset)
        return hashlib.sha256(f.read(size)).hexdigest()


def boot_file(image: Path, layout, name: str) -> str:
    return subprocess.run(
        ["mtype", "-i", f"{image}@@{layout['boot'][0]}", f"::/{name}"],
        capture_output=True,
        text=True,
        check=True,
        env=MTOOLS_ENV,
    ).stdout


def boot_names(image: Path, layout) -> set[str]:
    out = subprocess.run(
        ["mdir", "-b", "-i", f"{image}@@{layout['boot'][0]}", "::/"],
        capture_output=True,
        text=True,
        check=True,
        env=MTOOLS_ENV,
    ).stdout
    return {line.removeprefix("::/").rstrip("/") for line in out.split()}


@pytest.fixture()
def secrets(tmp_path):
    psk = tmp_path / "wifi.psk"
    psk.write_text(PASSPHRASE + "\n")
    key = tmp_path / "id_ed25519.pub"
    key.write_text(SSH_KEY + "\n")
    return {"psk": psk, "key": key}


def provision(image: Path, bundle: Path, *extra) -> subprocess.CompletedProcess:
    return run([sys.executable, PROVISION, image, "--bundle", bundle, *extra])


def assert_bundle_on_card(image: Path, layout, bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "read-back"
    out.mkdir()
    subprocess.run(
        ["mcopy", "-s", "-i", f"{image}@@{layout['boot'][0]}", "::/melanoma-kiosk", str(out)],
        check=True,
        env=MTOOLS_ENV,
    )
    proc = run(["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"], cwd=out / "melanoma-kiosk")
    assert proc.returncode == 0, proc.stdout
    assert (out / "melanoma-kiosk/SHA256SUMS").read_bytes() == (bundle / "SHA256SUMS").read_bytes()


def wpa_psk() -> str:
    return hashlib.pbkdf2_hmac("sha1", PASSPHRASE.encode(), SSID.encode(), 4096, 32).hex()


@needs_image_tools
def test_provision_bookworm_image(bundle, secrets, tmp_path):
    image = tmp_path / "2024-11-19-raspios-bookworm-arm64.img"
    layout = make_pi_image(image, "bookworm")
    root_before = region_hash(image, *layout["root"])
    mbr_before = region_hash(image, 0, layout["boot"][0])
    proc = provision(
        image,
        bundle,
        "--hostname",
        "kiosk-rhu-07",
        "--wifi-ssid",
        SSID,
        "--wifi-psk-file",
        secrets["psk"],
        "--ssh-key",
        secrets["key"],
    )
    assert proc.returncode == 0, proc.stderr
    assert "Bookworm" in proc.stdout

    cmdline = boot_file(image, layout, "cmdline.txt")
    assert cmdline.count("\n") == 1 and cmdline.endswith("\n")
    assert cmdline == BOOKWORM_CMDLINE.rstrip("\n") + " " + FIRSTRUN_ARGS + "\n"
    assert "root=PARTUUID=4e639091-02" in cmdline
    firstrun = boot_file(image, layout, "firstrun.sh")
    assert firstrun.startswith("#!/bin/bash\n")
    assert run(["bash", "-n", "-c", firstrun]).returncode == 0
    assert "kiosk-rhu-07" in firstrun and SSH_KEY in firstrun
    assert "'RHU Wi-Fi'" in firstrun and wpa_psk() in firstrun
    assert "usermod --lock pi" in firstrun and "systemctl enable ssh" in firstrun
    assert "PasswordAuthentication no" in firstrun
    assert 'bash "$BOOT/melanoma-kiosk/install.sh"' in firstrun and "KIOSK_START=0" in firstrun
    # It removes itself, and its own sed gives back the image's cmdline.txt.
    assert 'rm -f "$BOOT/firstrun.sh"' in firstrun
    sed = re.search(r"sed -i '([^']+)' \"\$BOOT/cmdline.txt\"", firstrun).group(1)
    restored = run(["sed", sed], input=cmdline).stdout
    assert restored == BOOKWORM_CMDLINE
    assert PASSPHRASE.encode() not in image.read_bytes()

    assert_bundle_on_card(image, layout, bundle, tmp_path)
    assert region_hash(image, *layout["root"]) == root_before
    assert region_hash(image, 0, layout["boot"][0]) == mbr_before

    # A second run refuses: the card is provisioned already.
    before = sha256(image)
    again = provision(image, bundle)
    assert again.returncode == 1 and "already provisioned" in again.stderr
    assert sha256(image) == before


@needs_image_tools
def test_provision_trixie_image(bundle, secrets, tmp_path):
    image = tmp_path / "2025-11-24-raspios-trixie-arm64.img"
    layout = make_pi_image(image, "trixie")
    root_before = region_hash(image, *layout["root"])
    proc = provision(
        image,
        bundle,
        "--hostname",
        "kiosk-rhu-08",
        "--user",
        "health",
        "--wifi-ssid",
        SSID,
        "--wifi-psk-file",
        secrets["psk"],
        "--wifi-country",
        "PH",
        "--ssh-key",
        secrets["key"],
    )
    assert proc.returncode == 0, proc.stderr
    assert "cloud-init" in proc.stdout

    assert boot_file(image, layout, "cmdline.txt") == TRIXIE_CMDLINE  # untouched: cloud-init needs no entry
    names = boot_names(image, layout)
    assert {"melanoma-kiosk", "melanoma-kiosk-firstboot.sh", "user-data", "meta-data", "network-config"} <= names
    assert "firstrun.sh" not in names
    user_data = boot_file(image, layout, "user-data")
    assert user_data.startswith("#cloud-config\n")
    network = boot_file(image, layout, "network-config")
    meta = boot_file(image, layout, "meta-data")
    try:  # PyYAML, when some test dependency brings it: a full parse; the checks below hold either way
        import yaml
    except ImportError:
        yaml = None
    if yaml:
        ud = yaml.safe_load(user_data)
        assert ud["hostname"] == "kiosk-rhu-08"
        assert ud["users"][0]["name"] == "health" and ud["users"][0]["lock_passwd"] is True
        assert ud["users"][0]["ssh_authorized_keys"] == [SSH_KEY]
        assert ud["ssh_pwauth"] is False
        assert ["bash", "/boot/firmware/melanoma-kiosk-firstboot.sh"] in ud["runcmd"]
        assert ud["power_state"]["mode"] == "reboot"
        net = yaml.safe_load(network)["network"]
        ap = net["wifis"]["wlan0"]
        assert ap["access-points"] == {SSID: {"password": wpa_psk()}} and ap["regulatory-domain"] == "PH"
        assert yaml.safe_load(meta)["instance-id"].startswith("melanoma-kiosk-")
    assert 'hostname: "kiosk-rhu-08"' in user_data and SSH_KEY in user_data and "lock_passwd: true" in user_data
    assert "melanoma-kiosk-firstboot.sh" in user_data and "mode: reboot" in user_data
    assert wpa_psk() in network and f'"{SSID}"' in network
    assert "instance-id: melanoma-kiosk-" in meta
    firstboot = boot_file(image, layout, "melanoma-kiosk-firstboot.sh")
    assert run(["bash", "-n", "-c", firstboot]).returncode == 0
    assert "KIOSK_DESKTOP_USER=health" in firstboot and 'rm -f "$BOOT/melanoma-kiosk-firstboot.sh"' in firstboot
    assert PASSPHRASE.encode() not in image.read_bytes()

    assert_bundle_on_card(image, layout, bundle, tmp_path)
    assert region_hash(image, *layout["root"]) == root_before


@needs_image_tools
def test_provision_without_ssh_key_keeps_the_pi_closed(bundle, tmp_path):
    bookworm = tmp_path / "bookworm.img"
    layout_b = make_pi_image(bookworm, "bookworm")
    assert provision(bookworm, bundle).returncode == 0
    firstrun = boot_file(bookworm, layout_b, "firstrun.sh")
    assert "usermod --lock pi" in firstrun and "systemctl enable ssh" not in firstrun
    assert "rm -f /etc/sudoers.d/010_pi-nopasswd" in firstrun and "authorized_keys" not in firstrun
    assert "set_wlan" not in firstrun and "set_hostname" not in firstrun

    trixie = tmp_path / "trixie.img"
    layout_t = make_pi_image(trixie, "trixie")
    assert provision(trixie, bundle).returncode == 0
    user_data = boot_file(trixie, layout_t, "user-data")
    assert "ssh_authorized_keys" not in user_data and "sudo" not in user_data and "lock_passwd: true" in user_data
    assert "ssh_pwauth: false" in user_data
    # Without Wi-Fi the image's own network-config stays.
    assert boot_file(trixie, layout_t, "network-config") == "network:\n  version: 2\n"


@needs_image_tools
@pytest.mark.parametrize(
    "case",
    ["random-bytes", "not-raspberry-pi-os", "boot-too-small", "bad-bundle-sums", "private-key", "short-passphrase"],
)
def test_provision_refuses_and_leaves_the_image_byte_identical(case, bundle, secrets, tmp_path):
    image = tmp_path / "target.img"
    args: list = []
    use_bundle = bundle
    if case == "random-bytes":
        image.write_bytes(os.urandom(3 << 20))
    elif case == "not-raspberry-pi-os":
        make_pi_image(image, "bookworm", issue="Some other distribution\n")
    elif case == "boot-too-small":
        size_kib = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) // 1024
        make_pi_image(image, "bookworm", boot_kib=max(256, size_kib // 2))
    else:
        make_pi_image(image, "trixie")
    if case == "bad-bundle-sums":
        use_bundle = tmp_path / "bad-bundle"
        shutil.copytree(bundle, use_bundle)
        (use_bundle / "systemd/melanoma-kiosk.service").write_text("[Service]\nExecStart=/bin/sh -c evil\n")
    elif case == "private-key":
        private = tmp_path / "id_ed25519"
        private.write_text(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
        )
        args = ["--ssh-key", private]
    elif case == "short-passphrase":
        short = tmp_path / "short.psk"
        short.write_text("1234567\n")
        args = ["--wifi-ssid", SSID, "--wifi-psk-file", short]
    before = sha256(image)
    proc = provision(image, use_bundle, *args)
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.startswith("provision-sd: error: ") and proc.stderr.count("\n") == 1
    expected = {
        "random-bytes": "not a Raspberry Pi OS image",
        "not-raspberry-pi-os": "not a Raspberry Pi OS image",
        "boot-too-small": "too small",
        "bad-bundle-sums": "does not match SHA256SUMS",
        "private-key": "PRIVATE key",
        "short-passphrase": "8 to 63",
    }[case]
    assert expected in proc.stderr
    assert sha256(image) == before


@needs_image_tools
@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (.ci/run installs it)")
def test_shell_scripts_pass_shellcheck(bundle, secrets, tmp_path):
    scripts = [bundle / "install.sh"]
    for flavour, hook in (("bookworm", "firstrun.sh"), ("trixie", "melanoma-kiosk-firstboot.sh")):
        image = tmp_path / f"{flavour}.img"
        layout = make_pi_image(image, flavour)
        proc = provision(
            image,
            bundle,
            "--hostname",
            "kiosk-1",
            "--wifi-ssid",
            SSID,
            "--wifi-psk-file",
            secrets["psk"],
            "--ssh-key",
            secrets["key"],
        )
        assert proc.returncode == 0, proc.stderr
        scripts.append(tmp_path / hook)
        scripts[-1].write_text(boot_file(image, layout, hook))
    proc = run(["shellcheck", "--shell=bash", *scripts])
    assert proc.returncode == 0, proc.stdout


# --- the real wheels, and the real wheels under qemu -------------------------------------------


@pytest.fixture(scope="module")
def real_bundle(tiny_models, tmp_path_factory):
    """A bundle with the real aarch64 wheels (cp311 + cp313) from the registry."""
    probe_dir = tmp_path_factory.mktemp("pip-probe")
    probe = run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            "manylinux2014_aarch64",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "-d",
            probe_dir,
            f"waitress=={pins()['waitress']}",
        ]
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"pip cannot reach the package registry: {last}")
    out = tmp_path_factory.mktemp("real-bundle") / "bundle"
    proc = run([sys.executable, BUILD, "--out", out, "--models", tiny_models], timeout=1800)
    assert proc.returncode == 0, proc.stderr + proc.stdout[-3000:]
    return out


@pytest.mark.slow
def test_real_build_has_aarch64_wheels_for_both_pythons(real_bundle):
    pinned = pins()
    for tag in ("cp311", "cp313"):
        wheels = {canonical(w.name.split("-")[0]): w.name for w in (real_bundle / "wheels" / tag).glob("*.whl")}
        for name in runtime_deps():
            assert name in wheels, f"{tag}: no wheel for {name}"
            assert wheels[name].split("-")[1] == pinned[name]
        for filename in wheels.values():
            abi_tag, platform_tag = filename[:-4].split("-")[-2:]
            assert platform_tag == "any" or "aarch64" in platform_tag, filename
            assert abi_tag in ("none", "abi3", tag), filename
        for heavy in ("ai-edge-litert", "numpy", "opencv-python-headless"):
            assert "aarch64" in wheels[heavy], wheels[heavy]
    proc = run(["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"], cwd=real_bundle)
    assert proc.returncode == 0


@pytest.mark.slow
def test_verify_aarch64_matches_x86_under_qemu(real_bundle):
    proc = run([sys.executable, VERIFY, real_bundle, "--images", "4"], timeout=1200)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        for cause in ("qemu-aarch64-static not found", "apt-get", "dpkg-deb", "unshare", "mount"):
            if cause in output and "MISMATCH" not in output:
                pytest.skip(f"qemu/arm64 packages unavailable here: {output.strip().splitlines()[-1]}")
    assert proc.returncode == 0, output
    assert "cortex-a72 (Raspberry Pi 4): MATCH" in output and "cortex-a76 (Raspberry Pi 5): MATCH" in output
