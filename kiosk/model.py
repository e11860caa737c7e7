"""The int8 model: load a ``.tflite`` with its manifest, check it, run it.

LiteRT (``ai-edge-litert``) is used first; ``tflite_runtime`` is the fallback
for images where LiteRT has no wheel. Tensors are found by index from the
interpreter's details, never by name, and input/output are (de)quantised with
the tensors' own scale and zero point, so a uint8, int8 or float model all work.

>>> model = Model.load("models/melanoma_int8.tflite")      # doctest: +SKIP
>>> model.malignant_probability(preprocessed_uint8_image)  # doctest: +SKIP
0.0312
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from .manifest import ModelManifest, manifest_path_for, read_manifest
from .reasons import ModelError


def load_interpreter_class() -> tuple[type, str]:
    """(Interpreter class, runtime name): LiteRT first, then tflite_runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"
    except ImportError:
        raise ModelError("runtime_missing") from None


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Model:
    """A verified, warmed-up TFLite screening model. Build it with :meth:`load`."""

    def __init__(
        self, *, path: Path, manifest: ModelManifest, interpreter: Any, runtime: str, threads: int = 1
    ) -> None:
        self.path = path
        self.threads = threads
        self.manifest = manifest
        self.runtime = runtime
        self._interpreter = interpreter
        self._input = interpreter.get_input_details()[0]
        self._output = interpreter.get_output_details()[0]

    @classmethod
    def load(cls, path: str | Path, *, manifest_path: str | Path | None = None, threads: int = 1) -> Model:
        path = Path(path)
        manifest = read_manifest(Path(manifest_path) if manifest_path else manifest_path_for(path))
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise ModelError("model_missing", path=str(path)) from None
        except OSError:
            raise ModelError("model_corrupt", path=str(path)) from None
        if sha256_of(content) != manifest.sha256:
            raise ModelError("model_hash_mismatch", path=str(path))
        interpreter_class, runtime = load_interpreter_class()
        try:
            interpreter = interpreter_class(model_content=content, num_threads=threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError):
            raise ModelError("model_corrupt", path=str(path)) from None
        model = cls(path=path, manifest=manifest, interpreter=interpreter, runtime=runtime, threads=threads)
        model._check_against_manifest(Path(manifest_path) if manifest_path else manifest_path_for(path))
        model.malignant_probability(np.zeros((manifest.input_height, manifest.input_width, 3), np.uint8))  # warm-up
        return model

    def _check_against_manifest(self, manifest_path: Path) -> None:
        shape = tuple(int(d) for d in self._input["shape"])
        expected = (1, self.manifest.input_height, self.manifest.input_width, 3)
        dtype = np.dtype(self._input["dtype"]).name
        if shape != expected or dtype != self.manifest.input_dtype:
            raise ModelError(
                "manifest_invalid",
                path=str(manifest_path),
                detail=f"model input is {shape} {dtype}, manifest says {expected} {self.manifest.input_dtype}",
            )
        outputs = int(np.prod(self._output["shape"]))
        if outputs != len(self.manifest.labels):
            raise ModelError(
                "manifest_invalid",
                path=str(manifest_path),
                detail=f"model has {outputs} outputs for {len(self.manifest.labels)} labels",
            )

    @property
    def sha256(self) -> str:
        return self.manifest.sha256

    @property
    def input_size(self) -> int:
        return self.manifest.input_height

    def _quantise(self, image: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self._input["dtype"])
        x = image.astype(np.float32)
        if dtype.kind == "f":
            return x[None].astype(dtype)
        scale, zero_point = self._input["quantization"]
        if scale:
            x = np.round(x / scale + zero_point)
        info = np.iinfo(dtype)
        return np.clip(x, info.min, info.max).astype(dtype)[None]

    def _dequantise(self, raw: np.ndarray) -> np.ndarray:
        scale, zero_point = self._output["quantization"]
        values = raw.astype(np.float32).reshape(-1)
        if np.dtype(self._output["dtype"]).kind != "f" and scale:
            values = (values - zero_point) * scale
        return values

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities (in ``manifest.labels`` order) for one preprocessed RGB uint8 image."""
        expected = (self.manifest.input_height, self.manifest.input_width, 3)
        if image.shape != expected:
            raise ValueError(f"model input must be {expected}, got {image.shape}")
        self._interpreter.set_tensor(self._input["index"], self._quantise(image))
        self._interpreter.invoke()
        probs = np.clip(self._dequantise(self._interpreter.get_tensor(self._output["index"])), 0.0, None)
        total = float(probs.sum())
        return probs / total if total > 0 else np.full(len(probs), 1.0 / len(probs), np.float32)

    def malignant_probability(self, image: np.ndarray) -> float:
        return float(self.probabilities(image)[self.manifest.malignant_index])
