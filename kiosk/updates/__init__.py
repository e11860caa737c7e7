"""Signed model updates carried on a USB stick: keys, packages, the models folder, the stick, the service.

The kiosks have no network, so a maintainer carries a new model on a USB stick.
The kiosk installs it only when it is provably ours, provably works here, and
is newer than the model in use; see ``deploy/UPDATES.md``.

- :mod:`.keys`: the team's ed25519 key pair (``deploy/keygen``).
- :mod:`.package`: one ``.kioskupdate`` file, signing (``deploy/sign-model``) and every check.
- :mod:`.store`: the models folder: versions, the one atomic switch, install, rollback, the log.
- :mod:`.stick`: finding update files under ``updates.search_paths`` and what each one is.
- :mod:`.service`: :class:`UpdateService`, what the settings page uses; it swaps the running model.
- :mod:`.cli`: ``kiosk update ...`` (and ``python -m kiosk.updates ...``).

Use from the running kiosk (``kiosk.daemon`` builds it)::

    service = UpdateService.from_settings(settings, load_screener=..., swap=station.swap_screener)
    for offer in service.offers(): ...          # each checked and self-tested, with why it would be refused
    outcome = service.apply(offer.token)        # raises UpdateError; swaps the model between screenings
    service.rollback()

>>> find_updates(["/nonexistent-stick/*"])
[]
>>> UpdateError("update_unsigned", path="x.kioskupdate").code
'update_unsigned'
"""

from __future__ import annotations

from .errors import UpdateError
from .keys import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, key_id, keygen, load_private_key, load_public_key
from .package import (
    ARCH,
    CONTENTS,
    MAX_PACKAGE_BYTES,
    MEMBERS,
    PACKAGE_FORMAT,
    SIGNATURE,
    SIGNATURE_CONTEXT,
    SIGNED_MEMBERS,
    SUFFIX,
    UpdateInfo,
    VerifiedUpdate,
    inspect_update,
    sign_model,
    validation_figures,
    verify_update,
)
from .service import UpdateService
from .stick import Offer, examine, find_updates
from .store import LOG_FILE, ModelInfo, UpdateOutcome, apply_update, current_model_info, previous_model_info, rollback

__all__ = [
    "ARCH",
    "CONTENTS",
    "LOG_FILE",
    "MAX_PACKAGE_BYTES",
    "MEMBERS",
    "PACKAGE_FORMAT",
    "PRIVATE_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "SIGNATURE",
    "SIGNATURE_CONTEXT",
    "SIGNED_MEMBERS",
    "SUFFIX",
    "ModelInfo",
    "Offer",
    "UpdateError",
    "UpdateInfo",
    "UpdateOutcome",
    "UpdateService",
    "VerifiedUpdate",
    "apply_update",
    "current_model_info",
    "examine",
    "find_updates",
    "inspect_update",
    "key_id",
    "keygen",
    "load_private_key",
    "load_public_key",
    "previous_model_info",
    "rollback",
    "sign_model",
    "validation_figures",
    "verify_update",
]
