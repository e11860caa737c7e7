"""Helpers for the model-update tests (unit, web and browser): distinct real models and signed packages.

"Model B" and "model C" are the session's tiny int8 model with a different
description string, so they are genuinely different files (different sha256)
that load, run and self-test like the original.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from kiosk.manifest import read_manifest, write_manifest

NAME = "melanoma_int8"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_variant(src: Path, folder: Path, tag: bytes, *, name: str = NAME) -> Path:
    """A copy of the tiny model whose description differs: a real, different model file."""
    data = src.read_bytes()
    assert data.count(b"MLIR Converted.") == 1 and len(tag) == 1
    data = data.replace(b"MLIR Converted.", b"MLIR Converte" + tag + b".")
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / f"{name}.tflite"
    model.write_bytes(data)
    manifest = read_manifest(src.with_suffix(".json"))
    write_manifest(
        model.with_suffix(".json"),
        dataclasses.replace(manifest, sha256=sha(data), extra={**manifest.extra, "name": f"tiny-{tag.decode()}"}),
    )
    return model


def shipped_models(folder: Path, model: Path) -> Path:
    """A kiosk models folder as shipped: plain ``melanoma_int8.tflite`` + ``.json`` copied from ``model``."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".tflite", ".json"):
        (folder / f"{NAME}{suffix}").write_bytes(model.with_suffix(suffix).read_bytes())
    return folder
