"""Signed model updates: keys, signing, every refusal, install, rollback, power cuts, the deploy scripts.

Models are real int8 TFLite files from the session's tiny build; "model B" and
"model C" are the same network with a different description string, so they
are genuinely different files (different sha256) that load and run.
Everything works on copies in tmp_path; the shipped models/ is never touched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from kiosk import selftest, updates
from kiosk.manifest import read_manifest, write_manifest
from kiosk.model import Model
from kiosk.reasons import KioskError
from kiosk.updates import UpdateError
from tests.conftest import REPO_ROOT

pytest.importorskip("cryptography")

NAME = "melanoma_int8"


# --- helpers -----------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def write_variant(src: Path, folder: Path, tag: bytes, *, name: str = NAME) -> Path:
    """A copy of the tiny model whose description differs: a real, different model file."""
    data = src.read_bytes()
    assert data.count(b"MLIR Converted.") == 1 and len(tag) == 1
    data = data.replace(b"MLIR Converted.", b"MLIR Converte" + tag + b".")
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / f"{name}.tflite"
    model.write_bytes(data)
    manifest = read_manifest(src.with_suffix(".json"))
    write_manifest(model.with_suffix(".json"), dataclasses.replace(
        manifest, sha256=sha(data), extra={**manifest.extra, "name": f"tiny-{tag.decode()}"}))
    return model


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
    path.write_bytes(updates._tar(members))
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
    return updates.sign_model(source["b"], key=keys[0], out=tmp_path_factory.mktemp("stick") / "b.kioskupdate")


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


@pytest.mark.parametrize("content, fragment", [
    (None, "no such file"),
    (b"hello", "not a PEM private key"),
    ("public", "this is the public key"),
])
def test_signing_with_a_wrong_key_file(tmp_path, keys, source, content, fragment):
    key = tmp_path / "key.pem"
    if content == "public":
        key.write_bytes(keys[1].read_bytes())
    elif content is not None:
        key.write_bytes(content)
    with pytest.raises(UpdateError) as info:
        updates.sign_model(source["b"], key=key, out=tmp_path / "x.kioskupdate")
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
        updates.PACKAGE_FORMAT, "tflite-int8", "melanoma-kiosk-model/1")
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
    out = updates.sign_model(source["c"].parent, key=keys[0], out=tmp_path)
    assert out.parent == tmp_path and out.name.startswith("tiny-C-") and out.suffix == ".kioskupdate"


def test_sign_refuses_a_missing_model_or_a_mismatched_manifest(source, keys, tmp_path):
    with pytest.raises(KioskError) as info:
        updates.sign_model(tmp_path / "nope.tflite", key=keys[0], out=tmp_path / "x.kioskupdate")
    assert info.value.code == "model_missing" and "nope.tflite" in str(info.value)
    bad = write_variant(source["tiny"], tmp_path / "bad", b"X")
    bad.write_bytes(bad.read_bytes() + b"\0")  # model changed after its manifest was written
    with pytest.raises(KioskError) as info:
        updates.sign_model(bad, key=keys[0], out=tmp_path / "x.kioskupdate")
    assert info.value.code == "model_hash_mismatch"
    with pytest.raises(UpdateError) as info:
        updates.sign_model(source["c"], key=keys[0], out=tmp_path / "x.zip")
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
    assert updates.current_model_info(models).version == outcome.model.version
    assert (models / "MODEL_CARD.md").read_text() == "not ours to touch\n"
    [line] = log_lines(apply.log)
    assert (line["action"], line["outcome"], line["model_sha256"], line["previous_sha256"]) == (
        "install", "ok", b_sha, sha(a_bytes))
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
    package_c = updates.sign_model(source["c"], key=keys[0], out=tmp_path / "c.kioskupdate")
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
    assert updates.current_model_info(models).version is None
    package_c = updates.sign_model(source["c"], key=keys[0], out=tmp_path / "c.kioskupdate")
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


@pytest.mark.parametrize("change, fragment", [
    ({"arch": "tflite-float32"}, "tflite-float32"),
    ({"format": "melanoma-kiosk-update/2"}, "update/2"),
    ({"model_format": "melanoma-kiosk-model/2"}, "model/2"),
])
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
    for name, kind in (("../model.tflite", tarfile.REGTYPE), ("model.tflite", tarfile.SYMTYPE),
                       ("extra.sh", tarfile.REGTYPE)):
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
    with updates._locked(models):
        refused(apply, package_b, models, "update_busy")


def test_a_disk_error_while_saving_keeps_the_old_model(package_b, models, apply, monkeypatch):
    a_sha = active_sha(models)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(updates, "_write_new_file", full)
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
def test_power_cut_at_any_rename_of_an_install_leaves_a_whole_model(package_b, source, keys, tmp_path,
                                                                     monkeypatch, apply, managed):
    a_sha, b_sha, c_sha = (sha(source[k].read_bytes()) for k in "abc")
    package_c = updates.sign_model(source["c"], key=keys[0], out=tmp_path / "c.kioskupdate")
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
            leftovers = [p.name for p in (models / f"{NAME}.versions").iterdir()
                         if p.name.startswith(".") or p.name.endswith(".tmp-link")]
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


# --- finding updates on a stick ------------------------------------------------------


def test_find_updates_on_usb_mounts(tmp_path):
    media = tmp_path / "media"
    wanted = [media / "pi" / "STICK" / "model.kioskupdate", media / "pi" / "STICK" / "new" / "B.KIOSKUPDATE",
              media / "usb0" / "x.kioskupdate"]
    unwanted = [media / "pi" / "STICK" / "._model.kioskupdate", media / "pi" / "STICK" / ".Trash-1000" / "a.kioskupdate",
                media / "pi" / "STICK" / "a" / "b" / "c" / "deep.kioskupdate", media / "pi" / "STICK" / "notes.txt"]
    for path in wanted + unwanted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (media / "pi" / "loop").symlink_to(media)
    (media / "pi" / "link.kioskupdate").symlink_to(wanted[0])
    assert updates.find_updates([media, tmp_path / "mnt-missing"]) == sorted(wanted)


def test_inspect_and_paths_from_settings(package_b, keys, tmp_path):
    from kiosk.config import load_settings

    info = updates.inspect_update(package_b, public_key=keys[1])
    assert info.name == "tiny-B" and info.package_sha256 == sha(package_b.read_bytes())
    settings = load_settings(env={"KIOSK_MODEL_PATH": str(tmp_path / "m" / "screen.tflite"),
                                  "KIOSK_UPDATES_WATCH_DIRS": "/media:/mnt/usb",
                                  "KIOSK_RECORDS_DATA_DIR": str(tmp_path / "data")})
    paths = updates.UpdatePaths.from_settings(settings)
    assert (paths.models_dir, paths.name) == (tmp_path / "m", "screen")
    assert paths.watch_dirs == (Path("/media"), Path("/mnt/usb"))
    assert paths.log == tmp_path / "data" / "updates.jsonl"
    assert set(paths.rollback_kwargs()) <= set(paths.apply_kwargs())


# --- the deploy scripts ----------------------------------------------------------------


def script(name: str, *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([str(REPO_ROOT / "deploy" / name), *map(str, args)], check=False, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


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
    result = script("sign-model", source["b"], "--key", keys[0], "--out", "b.kioskupdate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tiny-B" in result.stdout
    apply(tmp_path / "b.kioskupdate", models)
    assert active_sha(models) == sha(source["b"].read_bytes())

    bad = write_variant(source["tiny"], tmp_path / "bad", b"X")
    manifest = json.loads(bad.with_suffix(".json").read_text())
    manifest["sha256"] = "0" * 64
    bad.with_suffix(".json").write_text(json.dumps(manifest))
    cases = [
        ((tmp_path / "missing.tflite", "--key", keys[0], "--out", "x.kioskupdate"), "missing.tflite"),
        ((bad, "--key", keys[0], "--out", "x.kioskupdate"), "does not match its manifest"),
        ((source["b"], "--key", keys[1], "--out", "x.kioskupdate"), "public key"),
        ((source["b"], "--key", tmp_path / "b.kioskupdate", "--out", "x.kioskupdate"), "private key"),
        ((source["b"], "--out", "x.kioskupdate"), "--key"),
    ]
    for args, fragment in cases:
        assert fragment in one_line_error(script("sign-model", *args, cwd=tmp_path), "sign-model")
    assert not (tmp_path / "x.kioskupdate").exists()
