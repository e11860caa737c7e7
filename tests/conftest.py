"""Shared fixtures: the tiny real int8 test model, drawn images, the station and web rigs.

``tiny_model_path`` is the committed ``tests/data/tiny_int8.tflite`` (5.9 KB, built once by
``scripts/build_test_model.py`` through ``training.convert.build``, the path
``deploy/build-model`` runs), so every test that screens an image runs real int8 inference,
never a stub, and needs no TensorFlow. ``tiny_build`` builds the model again for the tests of
the build path itself; a test that uses it is marked ``training`` and skips without TensorFlow.
The station and web fixtures (``rig``, ``station``, ``app``, ``client``...) come from the
plugin ``tests/web_conftest.py``; tests import only its helpers (``Rig``, ``wait_until``...).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from tests.tiny_model import COMMITTED_MODEL, REPO_ROOT, TINY_SIZE, build_tiny, make_tiny_export, write_drawn_images

pytest_plugins = ["tests.web_conftest"]

__all__ = ["REPO_ROOT", "SHARED_TRAIN", "TINY_SIZE", "make_tiny_export", "write_drawn_images"]

SHARED_TRAIN = REPO_ROOT.parent / "shared" / "data" / "melanoma10k" / "train"
HAVE_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that builds a model is a ``training`` test; without TensorFlow those skip, with a reason."""
    skip = pytest.mark.skip(reason="needs tensorflow (the [train] extra): pip install -e '.[test,train]'")
    for item in items:
        if "tiny_build" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.training)
        if not HAVE_TENSORFLOW and item.get_closest_marker("training") is not None:
            item.add_marker(skip)


def serve_command(model: Path, *, port: int, data_dir: Path) -> list[str]:
    """The command line of a real ``kiosk serve`` on 127.0.0.1:``port`` with the drawn camera."""
    return [
        sys.executable,
        "-m",
        "kiosk",
        "--model",
        str(model),
        "serve",
        "--camera",
        "synthetic",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """(model path, build metrics, folders) of a tiny int8 model built now by training.convert.build."""
    pytest.importorskip("tensorflow", reason="tensorflow (the [train] extra) builds the test model")
    return build_tiny(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the committed tiny int8 model, with its manifest next to it (tests may write beside it)."""
    folder = tmp_path_factory.mktemp("tiny-model-committed")
    for suffix in (".tflite", ".json"):
        shutil.copyfile(COMMITTED_MODEL.with_suffix(suffix), folder / COMMITTED_MODEL.with_suffix(suffix).name)
    return folder / COMMITTED_MODEL.name


@pytest.fixture(scope="session")
def tiny_validation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """benign/ and malignant/ drawn images: the validation set the committed model's manifest was measured on."""
    from tests.tiny_model import write_validation_images

    return write_validation_images(tmp_path_factory.mktemp("tiny-validation"))


@pytest.fixture()
def model(tiny_model_path):
    from kiosk.model import Model

    return Model.load(tiny_model_path)


@pytest.fixture()
def screener(model):
    from kiosk.screening import Screener

    return Screener(model)


@pytest.fixture
def short_dir(tmp_path):
    """A folder short enough for AF_UNIX socket paths (107 bytes; pytest's tmp_path can be longer)."""
    import tempfile

    if len(str(tmp_path / "notify")) < 100:
        yield tmp_path
    else:
        with tempfile.TemporaryDirectory(prefix="sdn") as folder:
            yield Path(folder)
