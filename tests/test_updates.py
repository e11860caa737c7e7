"""Signed model updates: keys, signing, every refusal, versions, install, rollback, power cuts, the stick,
the service, the command line and the deploy scripts.

Models are real int8 TFLite files from the session's tiny build; "model B" and
"model C" are the same network with a different description string
(tests/updates_conftest.py), so they are genuinely different files (different
sha256) that load and run.
Everything works on copies in tmp_path; the shipped models/ is never touched.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from kiosk import selftest, updates
from kiosk.manifest import read_manifest
from kiosk.model import Model
from kiosk.reasons import KioskError
from kiosk.updates import UpdateError
from tests.conftest import REPO_ROOT
from tests.updates_conftest import NAME, sha, write_variant

pytest.importorskip("cryptography")

# --- helpers -----------------------------------------------------------------


def tree_digest(folder: Path) -> dict[str, str]:
    """Every entry under ``folder``: file bytes, link targets and directories, so any change shows."""
    out: dict[str, str] = {}
    if not folder.exists():
        return out
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root, name)
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = sha(path.read_bytes())
    return out


def members_of(package: Path) -> dict[str, bytes]:
    with tarfile.open(package) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]


def resign(members: dict[str, bytes], key_path: Path, **contents_changes) -> dict[str, bytes]:
    """Re-list and re-sign members, as a (careless or hostile) holder of a key would."""
    key = updates.load_private_key(key_path)
    contents = json.loads(members[updates.CONTENTS])
    contents["members"] = {n: {"sha256": sha(members[n]), "size": len(members[n])} for n in updates.SIGNED_MEMBERS}
    contents["key_id"] = updates.key_id(key.public_key())
    contents.update(contents_changes)
    body = (json.dumps(contents, indent=2, sort_keys=True) + "\n").encode()
    return {**members, updates.CONTENTS: body, updates.SIGNATURE: key.sign(updates.SIGNATURE_CONTEXT + body)}


def write_package(path: Path, members: dict[str, bytes]) -> Path:
    path.write_bytes(updates.package._tar(members))
    return path


def active_sha(models: Path) -> str:
    """What the kiosk would run: Model.load through the fixed path (verifies model + manifest agree)."""
    return Model.load(models / f"{NAME}.tflite").sha256


# --- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return updates.keygen(tmp_path_factory.mktemp("keys") / "team")


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory):
    return updates.keygen(tmp_path_factory.mktemp("keys") / "stranger")


@pytest.fixture(scope="module")
def source(tiny_model_path, tmp_path_factory):
    """Models A (in use), B and C (updates), and B signed into a package."""
    root = tmp_path_factory.mktemp("sources")
    a = write_variant(tiny_model_path, root / "a", b"A")
    b = write_variant(tiny_model_path, root / "b", b"B")
    c = write_variant(tiny_model_path, root / "c", b"C")
    return {"a": a, "b": b, "c": c, "tiny": tiny_model_path}


@pytest.fixture(scope="module")
def package_b(source, keys, tmp_path_factory):
    return updates.sign_model(
        source["b"], key=keys[0], out=tmp_path_factory.mktemp("stick") / "b.kioskupdate", version=1
    )


@pytest.fixture()
def models(tmp_path, source):
    """A kiosk models folder as shipped: plain melanoma_int8.tflite + .json (model A)."""
    folder = tmp_path / "models"
    folder.mkdir()
    for suffix in (".tflite", ".json"):
        (folder / f"{NAME}{suffix}").write_bytes(source["a"].with_suffix(suffix).read_bytes())
    (folder / "MODEL_CARD.md").write_text("not ours to touch\n")
    return folder


@pytest.fixture()
def apply(keys, tmp_path):
    log = tmp_path / "data" / "updates.jsonl"

    def run(package: Path, models: Path, **kwargs):
        kwargs.setdefault("public_key", keys[1])
        return updates.apply_update(package, models_dir=models, log=log, **kwargs)

    run.log = log  # type: ignore[attr-defined]
    return run


def log_lines(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


# --- keys ----------------------------------------------------------------------


def test_keygen_makes_a_private_pem_0600_and_a_public_key(tmp_path):
    private, public = updates.keygen(tmp_path / "k")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    key = updates.load_private_key(private)
    assert updates.key_id(key.public_key()) == updates.key_id(updates.load_public_key(public))


def test_keygen_refuses_to_overwrite(tmp_path):
    _, public = updates.keygen(tmp_path)
    before = tree_digest(tmp_path)
    public.unlink()  # even half a pair is kept
    with pytest.raises(UpdateError) as info:
        updates.keygen(tmp_path)
    assert info.value.code == "update_key_exists" and "update-key.pem" in str(info.value)
    assert tree_digest(tmp_path) == {k: v for k, v in before.items() if k != "update-key.pub"}


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "no such file"),
        (b"hello", "not a PEM private key"),
        ("public", "this is the public key"),
    ],
)
def test_signing_with_a_wrong_key_file(tmp_path, keys, source, content, fragment):
    key = tmp_path / "key.pem"
    if content == "public":
        key.write_bytes(keys[1].read_bytes())
    elif content is not None:
        key.write_bytes(content)
    with pytest.raises(UpdateError) as info:
        updates.sign_model(source["b"], key=key, out=tmp_path / "x.kioskupdate", version=1)
    assert info.value.code == "update_key_invalid" and fragment in str(info.value)
    assert not (tmp_path / "x.kioskupdate").exists()


def test_a_private_key_is_refused_as_the_kiosks_public_key(keys, package_b, models, apply):
    before = tree_digest(models)
    with pytest.raises(UpdateError) as info:
        apply(package_b, models, public_key=keys[0])
    assert info.value.code == "update_key_invalid" and "PRIVATE" in str(info.value)
    assert tree_digest(models) == before


# --- signing -------------------------------------------------------------------


def test_package_holds_exactly_the_signed_members(package_b, source, keys):
    members = members_of(package_b)
    assert list(members) == list(updates.MEMBERS)
    contents = json.loads(members["contents.json"])
    assert (contents["format"], contents["arch"], contents["model_format"]) == (
        updates.PACKAGE_FORMAT,
        "tflite-int8",
        "melanoma-kiosk-model/1",
    )
    assert members["model.tflite"] == source["b"].read_bytes()
    assert members["manifest.json"] == source["b"].with_suffix(".json").read_bytes()
    for name in updates.SIGNED_MEMBERS:
        assert contents["members"][name] == {"sha256": sha(members[name]), "size": len(members[name])}
    doc = json.loads(members["selftest.json"])
    assert doc["malignant_probabilities"] == selftest.expected_outputs(Model.load(source["b"]))
    assert len(doc["malignant_probabilities"]) == len(selftest.CASES) == 6
    public = updates.load_public_key(keys[1])
    public.verify(members["signature"], updates.SIGNATURE_CONTEXT + members["contents.json"])  # raises if bad


def test_sign_a_folder_names_the_output(source, keys, tmp_path):
    out = updates.sign_model(source["c"].parent, key=keys[0], out=tmp_path, version=2)
    assert out.parent == tmp_path and out.name.startswith("tiny-C-") and out.suffix == ".kioskupdate"


def test_sign_refuses_a_missing_model_or_a_mismatched_manifest(source, keys, tmp_path):
    with pytest.raises(KioskError) as info:
        updates.sign_model(tmp_path / "nope.tflite", key=keys[0], out=tmp_path / "x.kioskupdate", version=1)
    assert info.value.code == "model_missing" and "nope.tflite" in str(info.value)
    bad = write_variant(source["tiny"], tmp_path / "bad", b"X")
    bad.write_bytes(bad.read_bytes() + b"\0")  # model changed after its manifest was written
    with pytest.raises(KioskError) as info:
        updates.sign_model(bad, key=keys[0], out=tmp_path / "x.kioskupdate", version=1)
    assert info.value.code == "model_hash_mismatch"
    with pytest.raises(UpdateError) as info:
        updates.sign_model(source["c"], key=keys[0], out=tmp_path / "x.zip", version=1)
    assert info.value.code == "update_bad_output"
    assert not list(tmp_path.glob("*.kioskupdate"))


# --- install and rollback ---------------------------------------------------------


def test_apply_installs_keeps_previous_and_logs(package_b, source, models, apply):
    a_bytes = (models / f"{NAME}.tflite").read_bytes()
    outcome = apply(package_b, models)
    b_sha = read_manifest(source["b"].with_suffix(".json")).sha256
    assert outcome.action == "installed" and outcome.code == "update_installed"
    assert outcome.model.sha256 == b_sha == active_sha(models)
    assert "tiny-B" in outcome.message and outcome.selftest is not None and outcome.selftest.passed
    assert (models / f"{NAME}.tflite").read_bytes() == source["b"].read_bytes()
    previous = updates.previous_model_info(models)
    assert previous is not None and previous.sha256 == sha(a_bytes)
    assert updates.current_model_info(models).slot == outcome.model.slot
    assert outcome.model.version == 1 and updates.previous_model_info(models).version is None  # A: shipped, unversioned
    assert (models / "MODEL_CARD.md").read_text() == "not ours to touch\n"
    [line] = log_lines(apply.log)
    assert (line["action"], line["outcome"], line["model_sha256"], line["previous_sha256"]) == (
        "install",
        "ok",
        b_sha,
        sha(a_bytes),
    )
    assert json.loads(json.dumps(outcome.to_dict()))["model"]["sha256"] == b_sha  # the page can send it as is


def test_rollback_restores_the_old_bytes_and_a_second_tap_undoes_it(package_b, source, models, apply):
    a_bytes = (models / f"{NAME}.tflite").read_bytes()
    a_manifest = (models / f"{NAME}.json").read_bytes()
    apply(package_b, models)
    outcome = updates.rollback(models_dir=models, log=apply.log)
    assert outcome.action == "rolled_back" and outcome.code == "update_rolled_back"
    assert (models / f"{NAME}.tflite").read_bytes() == a_bytes
    assert (models / f"{NAME}.json").read_bytes() == a_manifest
    assert active_sha(models) == sha(a_bytes)
    assert updates.previous_model_info(models).sha256 == sha(source["b"].read_bytes())
    updates.rollback(models_dir=models, log=apply.log)
    assert active_sha(models) == sha(source["b"].read_bytes())
    assert [line["action"] for line in log_lines(apply.log)] == ["install", "rollback", "rollback"]


def test_rollback_without_a_previous_model_is_refused(models, tmp_path):
    before = tree_digest(models)
    with pytest.raises(UpdateError) as info:
        updates.rollback(models_dir=models, log=tmp_path / "log.jsonl")
    assert info.value.code == "update_no_previous"
    assert tree_digest(models) == before
    assert log_lines(tmp_path / "log.jsonl")[0]["reason"] == "update_no_previous"


def test_rollback_refuses_a_damaged_previous_model(package_b, models, apply):
    apply(package_b, models)
    previous = updates.previous_model_info(models)
    previous.path.write_bytes(previous.path.read_bytes()[:-10])
    before = tree_digest(models)
    with pytest.raises(UpdateError) as info:
        updates.rollback(models_dir=models)
    assert info.value.code == "update_previous_unusable"
    assert tree_digest(models) == before


def test_third_update_prunes_to_keep_previous(package_b, source, keys, models, apply, tmp_path):
    apply(package_b, models)
    package_c = updates.sign_model(source["c"], key=keys[0], out=tmp_path / "c.kioskupdate", version=2)
    apply(package_c, models, keep_previous=1)
    versions = sorted(p.name for p in (models / f"{NAME}.versions").iterdir() if p.name[0].isdigit())
    assert len(versions) == 2  # C in use, B for rollback; A is gone
    assert active_sha(models) == sha(source["c"].read_bytes())
    assert updates.previous_model_info(models).sha256 == sha(source["b"].read_bytes())


def test_the_same_model_twice_is_refused(package_b, models, apply):
    apply(package_b, models)
    before = tree_digest(models)
    with pytest.raises(UpdateError) as info:
        apply(package_b, models)
    assert info.value.code == "update_already_installed"
    assert tree_digest(models) == before


def test_first_install_into_an_empty_folder(package_b, source, tmp_path, apply):
    models = tmp_path / "fresh"
    apply(package_b, models)
    assert active_sha(models) == sha(source["b"].read_bytes())
    assert updates.previous_model_info(models) is None


def test_a_build_that_rewrites_the_plain_files_is_adopted(package_b, source, keys, models, apply, tmp_path):
    """deploy/build-model writes plain files over the links; the next update keeps that model as previous."""
    apply(package_b, models)
    for suffix in (".tflite", ".json"):  # what training.convert.write_outputs does (atomic replace)
        target = models / f"{NAME}{suffix}"
        data = source["a"].with_suffix(suffix).read_bytes()
        tmp = target.with_name(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    assert updates.current_model_info(models).sha256 == sha(source["a"].read_bytes())
    assert updates.current_model_info(models).slot is None
    package_c = updates.sign_model(source["c"], key=keys[0], out=tmp_path / "c.kioskupdate", version=2)
    apply(package_c, models)
    assert active_sha(models) == sha(source["c"].read_bytes())
    assert updates.previous_model_info(models).sha256 == sha(source["a"].read_bytes())


# --- every refusal leaves the models folder byte-identical ------------------------------


def refused(apply, package: Path, models: Path, code: str, **kwargs) -> UpdateError:
    before = tree_digest(models)
    with pytest.raises(UpdateError) as info:
        apply(package, models, **kwargs)
    err = info.value
    assert err.code == code, str(err)
    assert "\n" not in str(err) and len(str(err).replace(str(package), "")) < 160
    assert tree_digest(models) == before
    Model.load(models / f"{NAME}.tflite")  # and the kiosk's model still loads
    line = log_lines(apply.log)[-1]
    assert (line["action"], line["outcome"], line["reason"]) == ("install", "refused", code)
    return err


def test_refuses_a_file_that_is_not_a_package(models, apply, tmp_path):
    jpeg = tmp_path / "photo.kioskupdate"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0" + bytes(4000))
    refused(apply, jpeg, models, "update_not_a_package")
    empty = tmp_path / "empty.kioskupdate"
    empty.write_bytes(b"")
    refused(apply, empty, models, "update_not_a_package")
    refused(apply, tmp_path, models, "update_not_a_package")  # a folder
    refused(apply, tmp_path / "gone.kioskupdate", models, "file_not_found")


@pytest.mark.parametrize("where", ["model", "end"])
def test_refuses_a_truncated_package(package_b, models, apply, tmp_path, where):
    data = package_b.read_bytes()
    with tarfile.open(package_b) as tar:
        offsets = {m.name: (m.offset_data, m.size) for m in tar}
    start, size = offsets["model.tflite" if where == "model" else "selftest.json"]
    cut = start + size // 2
    short = tmp_path / "short.kioskupdate"
    short.write_bytes(data[:cut])
    assert len(data) - cut > 1024
    refused(apply, short, models, "update_damaged")


def test_refuses_an_unsigned_package(package_b, models, apply, tmp_path):
    members = members_of(package_b)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in updates.SIGNED_MEMBERS:
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
    unsigned = tmp_path / "unsigned.kioskupdate"
    unsigned.write_bytes(buffer.getvalue())
    refused(apply, unsigned, models, "update_unsigned")


@pytest.mark.parametrize("member", ["model.tflite", "manifest.json", "selftest.json", "contents.json", "signature"])
def test_refuses_a_tampered_package(package_b, models, apply, tmp_path, member):
    members = members_of(package_b)
    data = bytearray(members[member])
    if member == "manifest.json":  # a lower threshold: fewer referrals
        doc = json.loads(data)
        doc["threshold"] = 0.01
        data = bytearray(json.dumps(doc).encode())
    elif member == "selftest.json":  # expectations to match a different model
        doc = json.loads(data)
        doc["malignant_probabilities"][0] = 0.5
        data = bytearray(json.dumps(doc).encode())
    else:
        data[len(data) // 2] ^= 0x01
    assert bytes(data) != members[member]
    tampered = write_package(tmp_path / "tampered.kioskupdate", {**members, member: bytes(data)})
    err = refused(apply, tampered, models, "update_bad_signature")
    assert "not installed" in str(err)


def test_refuses_a_package_signed_with_another_key(package_b, other_keys, models, apply, tmp_path):
    members = resign(members_of(package_b), other_keys[0])
    stranger = write_package(tmp_path / "stranger.kioskupdate", members)
    err = refused(apply, stranger, models, "update_other_key")
    assert updates.key_id(updates.load_public_key(other_keys[1])) in str(err)


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"arch": "tflite-float32"}, "tflite-float32"),
        ({"format": "melanoma-kiosk-update/2"}, "update/2"),
        ({"model_format": "melanoma-kiosk-model/2"}, "model/2"),
    ],
)
def test_refuses_a_package_for_another_kiosk(package_b, keys, models, apply, tmp_path, change, fragment):
    members = resign(members_of(package_b), keys[0], **change)
    other = write_package(tmp_path / "other.kioskupdate", members)
    err = refused(apply, other, models, "update_incompatible")
    assert fragment in str(err)


def test_refuses_a_model_that_fails_its_self_test(package_b, keys, models, apply, tmp_path):
    members = members_of(package_b)
    doc = json.loads(members["selftest.json"])
    doc["malignant_probabilities"][2] = min(1.0, doc["malignant_probabilities"][2] + 0.05)
    members = resign({**members, "selftest.json": json.dumps(doc).encode()}, keys[0])
    wrong = write_package(tmp_path / "wrong.kioskupdate", members)
    err = refused(apply, wrong, models, "update_selftest_failed")
    assert "image 3" in str(err) and "current model is kept" in str(err)


def test_refuses_a_model_that_does_not_load(package_b, keys, models, apply, tmp_path):
    members = members_of(package_b)
    garbage = b"TFL3" + bytes(range(256)) * 8
    manifest = json.loads(members["manifest.json"])
    manifest["sha256"] = sha(garbage)
    members = {**members, "model.tflite": garbage, "manifest.json": json.dumps(manifest).encode()}
    broken = write_package(tmp_path / "broken.kioskupdate", resign(members, keys[0], model_sha256=sha(garbage)))
    err = refused(apply, broken, models, "update_model_unusable")
    assert "model.tflite" in str(err) and "tmp" not in str(err)


def test_refuses_members_with_paths_links_or_extras(package_b, models, apply, tmp_path):
    members = members_of(package_b)
    for name, kind in (
        ("../model.tflite", tarfile.REGTYPE),
        ("model.tflite", tarfile.SYMTYPE),
        ("extra.sh", tarfile.REGTYPE),
    ):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for member, data in members.items():
                if member != "model.tflite":
                    info = tarfile.TarInfo(member)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
            else:
                info.size = len(members["model.tflite"])
            tar.addfile(info, io.BytesIO(members["model.tflite"]) if kind == tarfile.REGTYPE else None)
        evil = tmp_path / "evil.kioskupdate"
        evil.write_bytes(buffer.getvalue())
        refused(apply, evil, models, "update_not_a_package")
    assert not (tmp_path.parent / "model.tflite").exists()


def test_refuses_a_package_over_the_size_limit(models, apply, tmp_path):
    huge = tmp_path / "huge.kioskupdate"
    with open(huge, "wb") as fh:
        fh.truncate(updates.MAX_PACKAGE_BYTES + 1)  # sparse: no real disk used
    err = refused(apply, huge, models, "update_too_large")
    assert "MB" in str(err)


def test_refuses_when_the_kiosk_has_no_public_key(package_b, models, apply, tmp_path):
    err = refused(apply, package_b, models, "update_key_missing", public_key=tmp_path / "none.pub")
    assert "none.pub" in str(err)


def test_a_second_update_at_the_same_time_is_refused(package_b, models, apply):
    with updates.store._locked(models):
        refused(apply, package_b, models, "update_busy")


def test_a_disk_error_while_saving_keeps_the_old_model(package_b, models, apply, monkeypatch):
    a_sha = active_sha(models)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(updates.store, "write_new_file", full)
    with pytest.raises(UpdateError) as info:
        apply(package_b, models)
    assert info.value.code == "update_install_failed" and "No space left" in str(info.value)
    monkeypatch.undo()
    assert active_sha(models) == a_sha
    assert not [p for p in (models / f"{NAME}.versions").iterdir() if p.name.startswith(".staging")]


# --- power cuts ----------------------------------------------------------------------


class PowerCut(BaseException):
    """Not an Exception: no cleanup handler runs, as after a real cut."""


def cut_every_step(monkeypatch, setup, action, check) -> int:
    """Cut the power just before, then just after, rename 1, 2, ... of ``action``.

    Each try starts from a fresh folder made by ``setup``; ``check(models, label)``
    inspects what the cut left. Stops when an action finishes before its step-th
    rename, and returns how many renames the action has.
    """
    real = os.replace
    step = 0
    while True:
        step += 1
        for after in (False, True):
            models = setup(f"{step}-{after}")
            calls = [0]

            def replace(src, dst, calls=calls, step=step, after=after, **kwargs):
                calls[0] += 1
                if calls[0] == step:
                    if after:
                        real(src, dst, **kwargs)
                    raise PowerCut
                return real(src, dst, **kwargs)

            monkeypatch.setattr(os, "replace", replace)
            try:
                action(models)
            except PowerCut:
                monkeypatch.undo()
                check(models, f"{'after' if after else 'before'} rename {step}")
                continue
            monkeypatch.undo()
            return step - 1


def fresh_models(folder: Path, source) -> Path:
    folder.mkdir(parents=True)
    for suffix in (".tflite", ".json"):
        (folder / f"{NAME}{suffix}").write_bytes(source["a"].with_suffix(suffix).read_bytes())
    return folder


@pytest.mark.parametrize("managed", [False, True], ids=["shipped-plain-files", "managed-folder"])
def test_power_cut_at_any_rename_of_an_install_leaves_a_whole_model(
    package_b, source, keys, tmp_path, monkeypatch, apply, managed
):
    a_sha, b_sha, c_sha = (sha(source[k].read_bytes()) for k in "abc")
    package_c = updates.sign_model(source["c"], key=keys[0], out=tmp_path / "c.kioskupdate", version=2)
    old, new, package = (b_sha, c_sha, package_c) if managed else (a_sha, b_sha, package_b)
    seen = []

    def setup(step):
        models = fresh_models(tmp_path / f"models-{step}", source)
        if managed:
            apply(package_b, models)
        return models

    def check(models, step):
        got = active_sha(models)  # Model.load: model and manifest agree, and it runs
        assert got in (old, new), f"cut {step}"
        seen.append(got)
        try:  # the next try, with the power back, completes the update and tidies up
            apply(package, models)
        except UpdateError as exc:
            assert exc.code == "update_already_installed", f"cut {step}: {exc}"
        assert active_sha(models) == new
        assert updates.previous_model_info(models).sha256 == old, f"cut {step}"
        if got == old:
            leftovers = [
                p.name
                for p in (models / f"{NAME}.versions").iterdir()
                if p.name.startswith(".") or p.name.endswith(".tmp-link")
            ]
            assert leftovers == [], f"cut {step}"

    steps = cut_every_step(monkeypatch, setup, lambda models: apply(package, models), check)
    assert steps >= (3 if managed else 7)
    assert old in seen and new in seen  # cuts before and after the switch were both tried


def test_power_cut_at_any_rename_of_a_rollback_leaves_a_whole_model(package_b, source, tmp_path, monkeypatch, apply):
    a_sha, b_sha = sha(source["a"].read_bytes()), sha(source["b"].read_bytes())
    seen = []

    def setup(step):
        models = fresh_models(tmp_path / f"models-{step}", source)
        apply(package_b, models)
        return models

    def check(models, step):
        got = active_sha(models)
        assert got in (a_sha, b_sha), f"cut {step}"
        seen.append(got)
        if got == b_sha:  # not rolled back yet: the way back must still be there
            updates.rollback(models_dir=models)
            assert active_sha(models) == a_sha

    steps = cut_every_step(monkeypatch, setup, lambda models: updates.rollback(models_dir=models), check)
    assert steps >= 2 and a_sha in seen and b_sha in seen


# --- versions: an older package never replaces a newer model (issue 12, item 15) ------------


def test_an_older_or_equal_version_is_refused_unless_it_is_the_rollback(
    package_b, source, keys, models, apply, tmp_path
):
    b_sha, c_sha = sha(source["b"].read_bytes()), sha(source["c"].read_bytes())
    apply(package_b, models)  # version 1
    package_c = updates.sign_model(source["c"], key=keys[0], out=tmp_path / "c.kioskupdate", version=2)
    apply(package_c, models)
    err = refused(apply, package_b, models, "update_not_newer")  # the old signed package, carried again
    assert "version 1" in str(err) and "version 2" in str(err) and "rollback" in str(err)
    d = write_variant(source["tiny"], tmp_path / "d", b"D")
    same = updates.sign_model(d, key=keys[0], out=tmp_path / "d.kioskupdate", version=2)
    refused(apply, same, models, "update_not_newer")  # a different model with the same version
    assert active_sha(models) == c_sha
    updates.rollback(models_dir=models, log=apply.log)  # the explicit way back is still open
    assert active_sha(models) == b_sha
    apply(package_c, models)  # and forward again: 2 is newer than 1
    assert active_sha(models) == c_sha and updates.current_model_info(models).version == 2


def test_a_package_without_a_signed_version_is_refused(package_b, keys, models, apply, tmp_path):
    members = members_of(package_b)
    contents = json.loads(members[updates.CONTENTS])
    del contents["version"]
    body = (json.dumps(contents, indent=2, sort_keys=True) + "\n").encode()
    key = updates.load_private_key(keys[0])
    unversioned = write_package(
        tmp_path / "old.kioskupdate",
        {**members, updates.CONTENTS: body, updates.SIGNATURE: key.sign(updates.SIGNATURE_CONTEXT + body)},
    )
    refused(apply, unversioned, models, "update_no_version")
    for bad in (0, -1, True, "3"):
        with pytest.raises(UpdateError) as info:
            updates.sign_model(tmp_path / "none.tflite", key=keys[0], out=tmp_path, version=bad)
        assert info.value.code == "update_bad_version", bad


# --- finding updates on a stick ------------------------------------------------------


def test_find_updates_under_the_search_globs(tmp_path):
    media = tmp_path / "media"
    wanted = [
        media / "pi" / "STICK" / "model.kioskupdate",
        media / "pi" / "STICK" / "new" / "B.KIOSKUPDATE",
        media / "pi" / "STICK" / "a" / "b" / "two-deep.kioskupdate",
        media / "usb0" / "x.kioskupdate",
    ]
    stick = media / "pi" / "STICK"
    unwanted = [
        stick / "._model.kioskupdate",
        stick / ".Trash-1000" / "a.kioskupdate",
        media / "pi" / "STICK" / "a" / "b" / "c" / "deep.kioskupdate",
        media / "pi" / "STICK" / "notes.txt",
        media / "top.kioskupdate",
    ]  # not on a stick: /media itself is not a mount point
    for path in wanted + unwanted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (media / "pi" / "loop").symlink_to(media)
    (media / "pi" / "STICK" / "link.kioskupdate").symlink_to(wanted[0])
    globs = [f"{media}/*/*", f"{media}/usb*", str(tmp_path / "mnt-missing" / "*")]
    assert updates.find_updates(globs) == sorted(wanted)


def test_service_from_settings(tmp_path):
    from kiosk.config import load_settings

    settings = load_settings(
        env={
            "KIOSK_MODEL_PATH": str(tmp_path / "m" / "screen.tflite"),
            "KIOSK_UPDATES_SEARCH_PATHS": "/media/*/*:/mnt/usb",
            "KIOSK_RECORDS_DATA_DIR": str(tmp_path / "data"),
        }
    )
    service = updates.UpdateService.from_settings(settings)
    assert (service.models_dir, service.name) == (tmp_path / "m", "screen")
    assert service.search_paths == ("/media/*/*", "/mnt/usb")
    assert service.log == tmp_path / "data" / "updates.jsonl"
    assert not service.live
    with pytest.raises(KioskError) as info:
        load_settings(env={"KIOSK_UPDATES_SEARCH_PATHS": "media/*"})
    assert info.value.code == "config_invalid" and "updates.search_paths" in str(info.value)


# --- the service: what the settings page uses ---------------------------------------------


class Swaps:
    """Stands in for Station.swap_screener: records what the running kiosk would screen with."""

    def __init__(self) -> None:
        self.screeners: list = []

    def __call__(self, screener) -> None:
        self.screeners.append(screener)

    @property
    def shas(self) -> list[str]:
        return [s.model.sha256 for s in self.screeners]


@pytest.fixture()
def stick(tmp_path, package_b):
    """A folder standing in for /media/pi/STICK, holding update B."""
    folder = tmp_path / "media" / "pi" / "STICK"
    folder.mkdir(parents=True)
    (folder / "b.kioskupdate").write_bytes(package_b.read_bytes())
    return folder


@pytest.fixture()
def service(models, keys, stick, tmp_path):
    from kiosk.screening import Screener

    swaps = Swaps()
    service = updates.UpdateService(
        models_dir=models,
        public_key=keys[1],
        search_paths=[f"{stick.parent}/*"],
        log=tmp_path / "data" / "updates.jsonl",
        load_screener=lambda: Screener(Model.load(models / f"{NAME}.tflite")),
        swap=swaps,
    )
    service.swaps = swaps  # type: ignore[attr-defined]
    return service


def test_service_lists_the_stick_with_versions_figures_self_test_and_refusals(service, stick, source, keys, package_b):
    d = write_variant(source["tiny"], stick.parent / "src", b"D")
    updates.sign_model(d, key=keys[0], out=stick / "d.kioskupdate", version=3)
    shutil.rmtree(stick.parent / "src")
    (stick / "broken.kioskupdate").write_bytes(package_b.read_bytes()[:5000])
    offers = {o.path.name: o for o in service.offers()}
    assert sorted(offers) == ["b.kioskupdate", "broken.kioskupdate", "d.kioskupdate"]
    b = offers["b.kioskupdate"]
    assert b.installable and b.info.version == 1 and b.info.name == "tiny-B"
    assert b.info.model_sha256 == sha(source["b"].read_bytes()) and b.token == sha(package_b.read_bytes())
    manifest = read_manifest(source["b"].with_suffix(".json"))
    assert b.info.validation == updates.validation_figures(manifest.extra) and "auc" in b.info.validation
    assert b.info.created is not None and b.selftest.passed and b.selftest.max_difference <= 1 / 256
    assert offers["d.kioskupdate"].installable and offers["d.kioskupdate"].info.version == 3
    broken = offers["broken.kioskupdate"]
    assert (broken.installable, broken.refusal, broken.info) == (False, "update_damaged", None)
    service.apply(offers["d.kioskupdate"].token)
    after = {o.path.name: o for o in service.offers()}
    assert after["d.kioskupdate"].refusal == "update_already_installed"
    assert after["b.kioskupdate"].refusal == "update_not_newer"  # the page says so before anyone taps
    assert "version 1" in after["b.kioskupdate"].message and "version 3" in after["b.kioskupdate"].message


def test_service_apply_swaps_the_running_model_and_rollback_swaps_it_back(service, stick, source, models):
    a_sha, b_sha = active_sha(models), sha(source["b"].read_bytes())
    [offer] = service.offers()
    outcome = service.apply(offer.token)
    assert outcome.model.sha256 == b_sha == active_sha(models)
    assert service.swaps.shas == [b_sha]
    assert service.previous().sha256 == a_sha
    back = service.rollback()
    assert back.code == "update_rolled_back" and back.model.sha256 == a_sha == active_sha(models)
    assert service.swaps.shas == [b_sha, a_sha]
    with pytest.raises(UpdateError) as info:
        service.apply("0" * 64)  # a token for nothing on the stick
    assert info.value.code == "update_gone"
    assert service.swaps.shas == [b_sha, a_sha]


def test_service_refuses_a_file_changed_after_it_was_listed(service, stick, source, keys, models):
    [offer] = service.offers()
    before = tree_digest(models)
    d = write_variant(source["tiny"], stick.parent / "src", b"D")
    updates.sign_model(d, key=keys[0], out=stick / "b.kioskupdate", version=5)  # same name, other package
    with pytest.raises(UpdateError) as info:
        service.apply_file(offer.path, expect_sha256=offer.token)
    assert info.value.code == "update_changed"
    assert tree_digest(models) == before and service.swaps.shas == []


def test_service_puts_the_files_back_when_the_new_model_cannot_start(service, models):
    a_sha = active_sha(models)
    [offer] = service.offers()

    def broken():
        raise KioskError("model_corrupt", path="x")

    service._load_screener = broken
    with pytest.raises(UpdateError) as info:
        service.apply(offer.token)
    assert info.value.code == "update_not_started" and "model_corrupt" in str(info.value)
    assert active_sha(models) == a_sha and service.swaps.shas == []


def test_a_missing_key_is_not_remembered_once_it_is_installed(service, keys, tmp_path):
    service.public_key = tmp_path / "not-yet.pub"
    [offer] = service.offers()
    assert offer.refusal == "update_key_missing" and "not-yet.pub" in offer.message
    shutil.copy(keys[1], tmp_path / "not-yet.pub")  # the technician puts the team's key in place
    [offer] = service.offers()
    assert offer.installable and offer.info.version == 1


def test_kiosk_update_commands(package_b, source, keys, models, tmp_path, monkeypatch, capsys):
    from kiosk import cli

    monkeypatch.setenv("KIOSK_MODEL_PATH", str(models / f"{NAME}.tflite"))
    monkeypatch.setenv("KIOSK_UPDATES_PUBLIC_KEY", str(keys[1]))
    monkeypatch.setenv("KIOSK_UPDATES_SEARCH_PATHS", str(package_b.parent))
    monkeypatch.setenv("KIOSK_RECORDS_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["update", "list"]) == 0
    listed = capsys.readouterr().out
    assert "tiny-B version 1" in listed and "installable" in listed
    assert cli.main(["update", "apply", str(package_b)]) == 0
    out, err = capsys.readouterr()
    assert "tiny-B" in out and "systemctl restart melanoma-kiosk" in err
    assert active_sha(models) == sha(source["b"].read_bytes())
    assert cli.main(["update", "apply", str(package_b)]) == 2
    assert capsys.readouterr().err.startswith("kiosk update apply: error: This model is already the one in use")
    assert cli.main(["update", "rollback"]) == 0
    assert (
        json.loads(
            subprocess.run(  # the old spelling still works
                [sys.executable, "-m", "kiosk.updates", "status"],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            ).stdout
        )["previous"]["version"]
        == 1
    )


# --- the deploy scripts ----------------------------------------------------------------


def script(name: str, *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [str(REPO_ROOT / "deploy" / name), *map(str, args)],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(result: subprocess.CompletedProcess[str], prog: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    ours = [line for line in lines if line.startswith(f"{prog}: ")]
    assert len(ours) == 1 and ours[0].startswith(f"{prog}: error: "), result.stderr
    # The only other output allowed is the TFLite runtime's own notice when a model was opened.
    assert all(line.startswith("INFO: ") for line in lines if line not in ours), result.stderr
    return ours[0]


def test_deploy_keygen_script(tmp_path):
    result = script("keygen", "--out", "keys", cwd=tmp_path)  # relative to where it is run
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp_path / "keys" / "update-key.pem").stat().st_mode) == 0o600
    assert "key id" in result.stdout
    assert "already exists" in one_line_error(script("keygen", "--out", "keys", cwd=tmp_path), "keygen")
    assert "--out" in one_line_error(script("keygen", cwd=tmp_path), "keygen")


def test_deploy_sign_model_script(source, keys, models, tmp_path, apply):
    result = script(
        "sign-model", source["b"], "--key", keys[0], "--out", "b.kioskupdate", "--version", "7", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "tiny-B version 7" in result.stdout
    apply(tmp_path / "b.kioskupdate", models)
    assert active_sha(models) == sha(source["b"].read_bytes())

    bad = write_variant(source["tiny"], tmp_path / "bad", b"X")
    manifest = json.loads(bad.with_suffix(".json").read_text())
    manifest["sha256"] = "0" * 64
    bad.with_suffix(".json").write_text(json.dumps(manifest))
    cases = [
        ((tmp_path / "missing.tflite", "--key", keys[0], "--out", "x.kioskupdate", "--version", "1"), "missing.tflite"),
        ((bad, "--key", keys[0], "--out", "x.kioskupdate", "--version", "1"), "does not match its manifest"),
        ((source["b"], "--key", keys[1], "--out", "x.kioskupdate", "--version", "1"), "public key"),
        ((source["b"], "--key", tmp_path / "b.kioskupdate", "--out", "x.kioskupdate", "--version", "1"), "private key"),
        ((source["b"], "--out", "x.kioskupdate", "--version", "1"), "--key"),
        ((source["b"], "--key", keys[0], "--out", "x.kioskupdate"), "--version"),
        ((source["b"], "--key", keys[0], "--out", "x.kioskupdate", "--version", "0"), "--version"),
    ]
    for args, fragment in cases:
        assert fragment in one_line_error(script("sign-model", *args, cwd=tmp_path), "sign-model")
    assert not (tmp_path / "x.kioskupdate").exists()
