#!/usr/bin/env python3
"""Rebuild the committed tiny int8 test model: tests/data/tiny_int8.tflite and .json.

Usage: PYTHONPATH=. .venv/bin/python scripts/build_test_model.py [--out DIR]

Needs TensorFlow (the [train] extra); the tests that use the model do not. It trains a
two-layer CNN for five epochs on 32 drawn lesions (fixed seeds) and converts it with
``training.convert.build``, as ``deploy/build-model`` does (see tests/tiny_model.py).
The manifest records this script and the TensorFlow version, so tests/test_test_model.py
can tell a stale model from a changed TensorFlow. Rebuild after changing the
preprocessing, the manifest format or the converter, and commit both files together.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.tiny_model import BUILD_SCRIPT, COMMITTED_MODEL, build_tiny  # noqa: E402 - after the path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=COMMITTED_MODEL.parent, help="folder for tiny_int8.tflite/.json")
    args = parser.parse_args(argv)
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    with tempfile.TemporaryDirectory(prefix="tiny-model-") as tmp:
        built = build_tiny(Path(tmp))
        model = built["model"]
        manifest = json.loads(model.with_suffix(".json").read_text())
        manifest["built_by"] = BUILD_SCRIPT
        manifest["built_with"] = {"tensorflow": tf.__version__, "keras": keras.__version__}
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model, args.out / model.name)
        (args.out / model.with_suffix(".json").name).write_text(json.dumps(manifest, indent=2) + "\n")
    size = (args.out / model.name).stat().st_size
    print(f"wrote {args.out / model.name} ({size} bytes), sha256 {manifest['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
