"""The composition root: build_kiosk builds each part once and closes what it opened; a screener swap is safe."""

from __future__ import annotations

import threading

import pytest

from kiosk.app import Kiosk, build_kiosk
from kiosk.config import GpioSettings, ModelSettings, RecordsSettings, Settings
from kiosk.model import Model
from kiosk.reasons import ConfigError
from kiosk.screening import Screener
from tests.web_conftest import FAST_RETRY, Rig, make_settings, wait_until


def settings_for(model_path, tmp_path, **gpio) -> Settings:
    return Settings(
        model=ModelSettings(path=model_path),
        records=RecordsSettings(data_dir=tmp_path / "data"),
        gpio=GpioSettings(**gpio) if gpio else GpioSettings(enabled=False),
    )


def test_build_kiosk_loads_the_model_once_and_shares_one_screener(tiny_model_path, tmp_path, monkeypatch):
    loads = []
    real_load = Model.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Model, "load", classmethod(lambda cls, *a, **k: loads.append(a) or real_load(cls, *a, **k)))
    steps: list[str] = []
    with build_kiosk(settings_for(tiny_model_path, tmp_path), camera_spec="synthetic", progress=steps.append) as kiosk:
        assert isinstance(kiosk, Kiosk) and len(loads) == 1
        assert kiosk.station is not None and kiosk.station.screener is kiosk.screener
        assert kiosk.station.records is kiosk.records and kiosk.records.data_dir == tmp_path / "data"
        assert kiosk.panel is None  # GPIO off
        assert kiosk.updates is not None and kiosk.updates.live  # an update swaps the running station's model
        assert kiosk.model.sha256 == kiosk.screener.model.sha256
        sid, result = kiosk.station.capture_and_screen()
        assert sid is not None and kiosk.records.get(sid).result == result
    assert steps == ["loading the model", "opening the camera"]
    assert kiosk.station.camera_status == "reconnecting: the kiosk is shutting down"


def test_build_kiosk_for_files_builds_only_the_screener(tiny_model_path, tmp_path):
    kiosk = build_kiosk(settings_for(tiny_model_path, tmp_path), station=False)
    assert kiosk.station is None and kiosk.records is None and isinstance(kiosk.screener, Screener)
    assert not (tmp_path / "data").exists()  # no records folder for `kiosk screen`
    kiosk.close()


def test_a_failing_step_closes_what_was_opened(tiny_model_path, tmp_path):
    with pytest.raises(ConfigError, match="camera.source"):
        build_kiosk(settings_for(tiny_model_path, tmp_path), camera_spec="webcam")
    # The records store was opened before the camera failed, and closed again: it opens afresh.
    with build_kiosk(settings_for(tiny_model_path, tmp_path), camera_spec="synthetic") as kiosk:
        assert kiosk.records is not None and kiosk.records.count() == 0


class RenamedModel:
    """The same int8 model under another sha256, standing in for an update."""

    def __init__(self, model: Model) -> None:
        self._model = model
        self.sha256 = "f" * 64

    def __getattr__(self, name: str):
        return getattr(self._model, name)


def test_swap_screener_waits_for_the_screening_in_progress(screener, tmp_path):
    rig = Rig()
    rig.hold_capture = threading.Event()
    newer = Screener(RenamedModel(screener.model))  # type: ignore[arg-type]
    settings = make_settings(tmp_path)
    from kiosk.station import Station

    with Station(screener=screener, camera_factory=rig.factory, records=None, **FAST_RETRY) as station:
        outcome: list = []
        worker = threading.Thread(target=lambda: outcome.append(station.capture_and_screen()))
        worker.start()
        assert rig.capture_entered.wait(5)
        swapper = threading.Thread(target=station.swap_screener, args=(newer,))
        swapper.start()
        swapper.join(0.3)
        assert swapper.is_alive(), "the swap did not wait for the running screening"
        assert station.screener is screener
        rig.hold_capture.set()
        worker.join(10)
        swapper.join(10)
        assert outcome[0][1].model_sha256 == screener.model.sha256  # screened wholly by the old model
        assert station.screener is newer and station.model_sha256 == "f" * 64
        assert station.capture_and_screen()[1].model_sha256 == "f" * 64

        from kiosk.web import create_app

        client = create_app(settings=settings, station=station, testing=True).test_client()
        assert wait_until(lambda: client.get("/healthz").get_json()["model_sha256"] == "f" * 64)
