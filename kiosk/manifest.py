"""The model manifest: the JSON file beside every ``.tflite`` that says how to use it.

``deploy/build-model`` writes it; :class:`kiosk.model.Model` reads it and refuses a
model whose bytes do not match ``sha256``. Required keys::

    {"format": "melanoma-kiosk-model/1", "labels": ["benign", "malignant"],
     "input": {"height": 160, "width": 160, "channels": 3, "dtype": "uint8",
               "channel_order": "RGB", "value_range": [0, 255]},
     "quantization": {"input": {"scale": 1.0, "zero_point": 0}, "output": {...}},
     "preprocessing_recipe": "crop-sog6-v1", "threshold": 0.31, "sha256": "..."}

Anything else (metrics, provenance, dates) is kept in ``extra``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .reasons import ModelError

FORMAT = "melanoma-kiosk-model/1"
_REQUIRED = ("format", "labels", "input", "preprocessing_recipe", "threshold", "sha256")


@dataclass(frozen=True, kw_only=True)
class ModelManifest:
    labels: tuple[str, ...]
    input_height: int
    input_width: int
    input_dtype: str  # "uint8", "int8" or "float32"
    preprocessing_recipe: str
    threshold: float  # malignant probability at or above which the result is "refer"
    sha256: str
    quantization: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def malignant_index(self) -> int:
        return self.labels.index("malignant")

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "format": FORMAT,
            "labels": list(self.labels),
            "input": {
                "height": self.input_height,
                "width": self.input_width,
                "channels": 3,
                "dtype": self.input_dtype,
                "channel_order": "RGB",
                "value_range": [0, 255],
            },
            "quantization": self.quantization,
            "preprocessing_recipe": self.preprocessing_recipe,
            "threshold": self.threshold,
            "sha256": self.sha256,
        }


def manifest_path_for(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def read_manifest(path: Path) -> ModelManifest:
    """Parse and validate a manifest; every problem is a ModelError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError("model_missing", path=str(path))

    def bad(detail: str) -> ModelError:
        return ModelError("manifest_invalid", path=str(path), detail=detail)

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise bad("not a JSON object")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise bad(f"missing keys: {', '.join(missing)}")
    if data["format"] != FORMAT:
        raise bad(f"format is {data['format']!r}, expected {FORMAT!r}")
    labels = data["labels"]
    if not (isinstance(labels, list) and "malignant" in labels and len(labels) >= 2):
        raise bad("labels must be a list containing 'malignant'")
    inp = data["input"]
    try:
        height, width, dtype = int(inp["height"]), int(inp["width"]), str(inp["dtype"])
    except (KeyError, TypeError, ValueError):
        raise bad("input needs height, width and dtype") from None
    if dtype not in ("uint8", "int8", "float32") or not (16 <= height <= 1024 and 16 <= width <= 1024):
        raise bad(f"unsupported input {height}x{width} {dtype}")
    threshold = data["threshold"]
    if not isinstance(threshold, (int, float)) or not 0.0 < float(threshold) < 1.0:
        raise bad("threshold must be a number between 0 and 1")
    sha = data["sha256"]
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise bad("sha256 must be 64 lower-case hex digits")
    known = set(_REQUIRED) | {"quantization"}
    return ModelManifest(
        labels=tuple(labels),
        input_height=height,
        input_width=width,
        input_dtype=dtype,
        preprocessing_recipe=str(data["preprocessing_recipe"]),
        threshold=float(threshold),
        sha256=sha,
        quantization=data.get("quantization") or {},
        extra={k: v for k, v in data.items() if k not in known},
    )


def write_manifest(path: Path, manifest: ModelManifest) -> None:
    from .storage import atomic_write_bytes

    atomic_write_bytes(Path(path), (json.dumps(manifest.to_dict(), indent=2) + "\n").encode())
