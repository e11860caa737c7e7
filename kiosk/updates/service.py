"""What the settings page and ``kiosk update`` use: list the stick, apply one update, roll back, swap live.

:class:`UpdateService` joins the stick (:mod:`.stick`), the models folder
(:mod:`.store`) and the running kiosk: after an install or a rollback it loads
the model now in use (``load_screener``) and hands it to ``swap`` (the
station's :meth:`~kiosk.station.Station.swap_screener`, which waits for a
running screening to finish). So the kiosk screens with the new model from the
next photo on, without a restart, and ``/healthz`` names it at once.

>>> from kiosk.config import Settings
>>> service = UpdateService.from_settings(Settings())
>>> service.name, service.log.name, [str(p) for p in service.search_paths]
('melanoma_int8', 'updates.jsonl', ['/media/*/*'])
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..reasons import KioskError
from .errors import UpdateError
from .package import DEFAULT_NAME
from .stick import Offer, examine, find_updates
from .store import LOG_FILE, ModelInfo, UpdateOutcome, apply_update, current_model_info, previous_model_info, rollback

if TYPE_CHECKING:
    from ..config import Settings
    from ..screening import Screener

__all__ = ["UpdateService"]

#: Refusals that may pass without the file changing (a key installed, a stick reseated): not remembered.
_PASSING = frozenset({"update_key_missing", "file_not_found", "file_unreadable", "update_busy"})


class UpdateService:
    """Signed model updates for one kiosk's models folder.

    ``load_screener`` builds a screener from ``model.path`` (the daemon's
    ``build_screener``); ``swap`` puts it into service. Without them (the
    command line) only the files change, and a running kiosk keeps its model
    until it restarts.
    """

    def __init__(
        self,
        *,
        models_dir: str | os.PathLike[str],
        public_key: str | os.PathLike[str],
        search_paths: Sequence[str],
        log: str | os.PathLike[str] | None,
        name: str = DEFAULT_NAME,
        keep_previous: int = 1,
        load_screener: Callable[[], Screener] | None = None,
        swap: Callable[[Screener], object] | None = None,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.public_key = Path(public_key)
        self.search_paths = tuple(search_paths)
        self.log = Path(log) if log is not None else None
        self.name = name
        self.keep_previous = keep_previous
        self._load_screener = load_screener
        self._swap = swap
        self._lock = threading.Lock()  # one install or rollback at a time; a second tap waits its turn
        self._examined: dict[tuple[str, int, int], Offer] = {}
        self._listing = threading.Lock()  # two pages open at once share one check per file

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        log: str | os.PathLike[str] | None = None,
        load_screener: Callable[[], Screener] | None = None,
        swap: Callable[[Screener], object] | None = None,
    ) -> UpdateService:
        """The service ``settings`` describe: updates go where ``model.path`` points.

        ``log`` defaults to ``updates.jsonl`` in ``records.data_dir``.
        """
        return cls(
            models_dir=settings.model.path.parent,
            name=settings.model.path.stem,
            public_key=settings.updates.public_key,
            search_paths=settings.updates.search_path_list,
            log=log if log is not None else settings.records.data_dir / LOG_FILE,
            keep_previous=settings.updates.keep_previous,
            load_screener=load_screener,
            swap=swap,
        )

    @property
    def live(self) -> bool:
        """True when an install or rollback also swaps the running kiosk's model."""
        return self._load_screener is not None and self._swap is not None

    # --- what is there ---------------------------------------------------------

    def current(self) -> ModelInfo | None:
        return current_model_info(self.models_dir, name=self.name)

    def previous(self) -> ModelInfo | None:
        """The kept model a rollback returns to, or None."""
        return previous_model_info(self.models_dir, name=self.name)

    def offers(self) -> list[Offer]:
        """The update files on the stick, each with what it is and whether it would be installed.

        Each file is fully checked once (its model loaded, its self-test run)
        and remembered until it changes; whether it is newer than the model in
        use is decided afresh every time.
        """
        with self._listing:
            return self._offers()

    def _offers(self) -> list[Offer]:
        current = self.current()
        found: list[Offer] = []
        seen: set[tuple[str, int, int]] = set()
        for path in find_updates(self.search_paths):
            try:
                stat = path.stat()
            except OSError:
                continue  # pulled out while we looked
            key = (str(path), stat.st_size, stat.st_mtime_ns)
            seen.add(key)
            offer = self._examined.get(key)
            if offer is None:
                offer = examine(path, public_key=self.public_key)
                if offer.refusal not in _PASSING:
                    self._examined[key] = offer
            found.append(_against(offer, current))
        for key in [k for k in self._examined if k not in seen]:
            del self._examined[key]  # gone from the stick, or changed: checked again if it comes back
        return found

    def find(self, token: str) -> Offer:
        """The offer whose package sha256 is ``token``; refused when it is no longer on the stick."""
        for offer in self.offers():
            if offer.token is not None and offer.token == token:
                return offer
        raise UpdateError("update_gone")

    # --- changing it -------------------------------------------------------------

    def apply(self, token: str) -> UpdateOutcome:
        """Install the listed update named by ``token`` (:attr:`Offer.token`), then swap it in."""
        offer = self.find(token)
        return self.apply_file(offer.path, expect_sha256=token)

    def apply_file(self, path: str | os.PathLike[str], *, expect_sha256: str | None = None) -> UpdateOutcome:
        """Install the update at ``path`` (any path: the command line), then swap it in."""
        with self._lock:
            outcome = apply_update(
                path,
                models_dir=self.models_dir,
                public_key=self.public_key,
                log=self.log,
                name=self.name,
                keep_previous=self.keep_previous,
                expect_sha256=expect_sha256,
            )
            self._go_live(outcome, undo=lambda: rollback(models_dir=self.models_dir, log=self.log, name=self.name))
            return outcome

    def rollback(self) -> UpdateOutcome:
        """Go back to the kept previous model (a second rollback returns to the newer one)."""
        with self._lock:
            outcome = rollback(models_dir=self.models_dir, log=self.log, name=self.name)
            self._go_live(outcome, undo=lambda: rollback(models_dir=self.models_dir, log=self.log, name=self.name))
            return outcome

    def _go_live(self, outcome: UpdateOutcome, *, undo: Callable[[], Any]) -> None:
        """Load the model now on disk and swap it into the running kiosk; on failure, switch the files back."""
        if self._load_screener is None or self._swap is None:
            return
        try:
            screener = self._load_screener()
            if screener.model.sha256 != outcome.model.sha256:  # pragma: no cover - only if changed under us
                raise UpdateError("update_install_failed", detail="the model on disk is not the one installed")
        except KioskError as exc:
            # The running kiosk still has the model it had: make the files say so too.
            try:
                undo()
            except KioskError:
                pass
            raise UpdateError("update_not_started", detail=exc.code) from None
        self._swap(screener)  # waits for a screening in progress, never interrupts one


def _against(offer: Offer, current: ModelInfo | None) -> Offer:
    """The offer as the model in use sees it: the same model, or not newer, is not installable."""
    info = offer.info
    if info is None or current is None or offer.refusal is not None:
        return offer
    if info.model_sha256 == current.sha256:
        return offer.refused("update_already_installed")
    if current.version is not None and info.version <= current.version:
        return offer.refused("update_not_newer", version=info.version, current=current.version)
    return offer
