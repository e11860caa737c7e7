"""Every reason the kiosk can give a health worker, in one catalogue.

Stages raise or return a short *code* ("blurry", "not_an_image", ...); only
the edges (CLI, web page, printed slip) turn a code into words. Messages are
marked with ``N_`` so gettext/Babel can extract them for Filipino and Waray
translations without this module importing any translation machinery.

>>> message("too_dark")
'The photo is too dark. Add light or move closer to the lamp.'
>>> message("image_too_large", megapixels=120.0, limit=50)
'The image is too large (120.0 MP; the limit is 50 MP).'
"""

from __future__ import annotations


def N_(text: str) -> str:  # noqa: N802 - the gettext convention for "mark, don't translate yet"
    return text


#: code -> English template. Keep each message one line, plain, and actionable.
REASONS: dict[str, str] = {
    # Retake reasons (quality gate): the photo was readable but not usable.
    "blurry": N_("The photo is too blurry. Hold the camera still and refocus."),
    "too_dark": N_("The photo is too dark. Add light or move closer to the lamp."),
    "overexposed": N_("The photo is too bright or has glare. Reduce the light or tilt the lens."),
    "too_small": N_("The photo is too small ({width}x{height} pixels; at least {minimum} needed)."),
    "no_lesion": N_("No skin lesion was found. Centre the spot in the frame and try again."),
    "lesion_not_centred": N_("The spot is not centred. Move the camera so the spot is in the middle."),
    "lesion_too_small": N_("The spot is too small in the photo. Move the camera closer."),
    # Not a retake: the screening is shown, but as "refer", because the photo barely looks like a lesion.
    "lesion_unclear": N_(
        "The spot is hard to see in this photo, so the kiosk refers to be safe. A closer, sharper photo may help."
    ),
    "acral_site": N_(
        "Palm, sole or nail: the model was not trained on these sites, so the kiosk always refers. "
        "A doctor should look at this spot."
    ),
    # Input errors: the file itself is unusable.
    "empty_file": N_("The file is empty."),
    "not_an_image": N_("The file is not an image the kiosk can read (JPEG, PNG, WebP or BMP)."),
    "corrupt_image": N_("The image file is damaged and cannot be decoded."),
    "image_too_large": N_("The image is too large ({megapixels:.1f} MP; the limit is {limit} MP)."),
    "image_needs_too_much_memory": N_(
        "The image needs too much memory to decode ({megabytes} MB; "
        "the limit is {limit} MB). Use a JPEG or a smaller picture."
    ),
    "file_not_found": N_("The file does not exist: {path}"),
    "file_unreadable": N_("The file cannot be read: {path}"),
    # Model and system errors.
    "model_missing": N_("The model file is missing: {path}"),
    "model_corrupt": N_("The model file is damaged or not a model: {path}"),
    "model_hash_mismatch": N_("The model file does not match its manifest (sha256 differs): {path}"),
    "manifest_invalid": N_("The model manifest is invalid: {path}: {detail}"),
    "runtime_missing": N_("No TFLite runtime is installed (install ai-edge-litert)."),
    "camera_unavailable": N_("The camera is not available: {detail}"),
    "camera_not_answering": N_("The camera is not answering; the kiosk is restarting it ({detail})."),
    "preview_busy": N_("The live preview is open on too many screens (at most {limit}); close one and try again."),
    "config_invalid": N_("Setting {key} is invalid: {detail}"),
    # Records: a screening the kiosk could not keep (the result on screen is still valid).
    "storage_full": N_(
        "Storage full, results are not being saved. Write this result down and tell the kiosk's keeper."
    ),
    "not_saved": N_(
        "This result was not saved (the records cannot be written). Write it down and tell the kiosk's keeper."
    ),
    "internal_error": N_("Something went wrong inside the kiosk; the photo was not lost. Please try again."),
    # Follow-up of a spot (kiosk/followup.py): the result refers because the spot changed since last time.
    "lesion_changed": N_("The spot has changed since the last screening, so the kiosk refers. A doctor should see it."),
    "code_mistyped": N_("This is not a slip code. Check the 9 digits on the slip and try again."),
    "code_not_found": N_("No screening on this kiosk has this code. Check the digits on the slip."),
    "code_paused": N_("Too many wrong codes. Wait {seconds} seconds, then try again."),
    "code_not_in_photo": N_(
        "No slip code was found in the camera picture. Hold the QR code still in front of the camera."
    ),
    "followup_no_photo": N_(
        "The earlier photo is no longer kept, so the spot cannot be compared. Start a new screening."
    ),
    "followup_no_lesion": N_("The earlier photo shows no spot to compare with. Start a new screening."),
    # Model updates from a USB stick (kiosk/updates/, deploy/UPDATES.md). A refused update never
    # changes the model in use, so every refusal can say so.
    "update_not_a_package": N_("This file is not a kiosk model update (make one with deploy/sign-model): {path}"),
    "update_damaged": N_("The update file is incomplete or damaged. Copy it to the stick again: {path}"),
    "update_too_large": N_("The update file is too large ({size_mb:.0f} MB; the limit is {limit_mb:.0f} MB): {path}"),
    "update_unsigned": N_("The update is not signed, so it was not installed. Ask for a signed update: {path}"),
    "update_bad_signature": N_(
        "The update does not match its signature (changed or damaged after signing), so it was not installed: {path}"
    ),
    "update_other_key": N_(
        "The update was signed with a key this kiosk does not trust (key {key_id}), so it was not installed: {path}"
    ),
    "update_incompatible": N_("The update is not for this kiosk ({detail}), so it was not installed: {path}"),
    "update_model_unusable": N_("The new model cannot be loaded ({detail}); the current model is kept."),
    "update_selftest_failed": N_(
        "The new model failed its self-test on this kiosk ({detail}); the current model is kept."
    ),
    "update_already_installed": N_("This model is already the one in use; nothing was changed."),
    "update_not_newer": N_(
        "This update is version {version}, not newer than the model in use (version {current}), "
        "so it was not installed. To go back to the earlier model, use the rollback button."
    ),
    "update_no_version": N_(
        "The update has no version number, so it was not installed. "
        "Sign it again with deploy/sign-model --version: {path}"
    ),
    "update_bad_version": N_("The version must be a whole number from 1 (got {version})."),
    "update_changed": N_("The update file changed on the stick after it was listed. Open the page again: {path}"),
    "update_gone": N_("That update is no longer on the USB stick. Insert the stick and open the page again."),
    "update_not_started": N_("The new model was saved but could not be started ({detail}); the earlier model is kept."),
    "update_install_failed": N_("The new model could not be saved ({detail}); the current model is kept."),
    "update_busy": N_("Another model update is running. Wait for it to finish, then try again."),
    "update_no_previous": N_("There is no earlier model to go back to."),
    "update_previous_unusable": N_("The earlier model cannot be loaded ({detail}); the current model is kept."),
    "update_installed": N_("The new model is in use ({name}, {sha})."),
    "update_rolled_back": N_("The earlier model is back in use ({name}, {sha})."),
    # Signing side (deploy/keygen, deploy/sign-model), seen by maintainers only.
    "update_key_missing": N_("The update key file is missing: {path}. Install the team's update-key.pub there."),
    "update_key_invalid": N_("This is not a usable ed25519 {kind} key ({detail}): {path}"),
    "update_key_exists": N_("A key already exists and was not overwritten: {path}"),
    "update_crypto_missing": N_("The cryptography package is not installed (pip install cryptography)."),
    "update_model_not_int8": N_("Only int8 models can be signed for the kiosk (this one takes {dtype} input): {path}"),
    "update_model_ambiguous": N_("The folder holds several models; name the .tflite file to sign: {path}"),
    "update_bad_output": N_("The update must be saved as a .kioskupdate file (or into a folder): {path}"),
    # The clock (kiosk.clock): a wrong clock misdates every record and slip.
    "clock_before_build": N_(
        "The kiosk's clock says {now}, before this software was made ({date}). Set the date and time in Settings."
    ),
    "clock_jumped_back": N_(
        "The kiosk's clock went back (it says {now}, after {last} before). Set the date and time in Settings."
    ),
    "clock_set_failed": N_("The clock could not be set ({detail}); the time was not changed."),
    "clock_set_too_early": N_("That date is before this software was made ({date}); check the year."),
    "clock_set_too_late": N_("That date is too far in the future; check the year."),
    "clock_set": N_("The clock is set to {time}."),
    # Camera calibration (settings page, kiosk/calibration.py): nothing is stored when it fails.
    "calibration_no_target": N_(
        "The calibration card was not found in the photo. Hold the printed card flat where the skin goes and try again."
    ),
    "calibration_not_flat": N_(
        "The card looks tilted or bent (its markers differ by {spread}%). Hold it flat against the lens and try again."
    ),
    "calibration_not_saved": N_("The calibration could not be saved ({detail}); the earlier one is kept."),
    "calibration_saved": N_(
        "Calibrated: {mm} mm per pixel, from {markers} markers. The next screenings give diameters in mm."
    ),
    "calibration_lens_noted": N_(
        "The lens change is noted. Photograph the calibration card again to have diameters in mm."
    ),
    # Records for the rural health unit (kiosk/fhir: export to a folder or USB stick, outcomes back).
    "export_no_station": N_("Set this kiosk's station code ([station] code) before exporting records."),
    "export_no_space": N_(
        "There is no room left on the USB stick or folder ({path}). Nothing was lost; use one with more space."
    ),
    "export_read_only": N_(
        "The USB stick or folder cannot be written ({path}). Slide the stick's lock switch off or use another stick."
    ),
    "export_failed": N_("The records could not be written to {path} ({detail}). Nothing was lost; try again."),
    "export_verify_failed": N_(
        "The copy on the USB stick does not match the records ({detail}). "
        "Nothing was lost; try again or use another stick."
    ),
    "export_busy": N_("An export or import is already running. Wait for it to finish, then try again."),
    "usb_no_stick": N_("No USB stick was found. Insert the stick, wait a few seconds and try again."),
    "export_done": N_("{screenings} screenings and {photos} photos were written to the USB stick and checked."),
    "export_nothing_new": N_("There are no new screenings to export; the USB stick was not changed."),
    "outcomes_none": N_("No outcomes were found on the USB stick (the RHU puts them in melanoma-kiosk/outcomes)."),
    "outcomes_imported": N_(
        "Outcomes: {imported} imported, {already} already here, {other} for other stations, "
        "{unknown} with unknown slip codes, {invalid} unreadable."
    ),
    "outcomes_unreadable": N_("The outcome files cannot be read ({path})."),
    # The RHU console (kiosk rhu, kiosk/rhu/), seen by the RHU's staff and its technician.
    "rhu_failed": N_("The RHU console cannot do this: {detail}"),
}


def message(code: str, **params: object) -> str:
    """Return the English one-line message for ``code`` (unknown codes pass through)."""
    template = REASONS.get(code)
    if template is None:
        return code
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError):
        return template


class KioskError(Exception):
    """An expected failure that carries a translatable reason code.

    >>> err = KioskError("not_an_image")
    >>> err.code, str(err)
    ('not_an_image', 'The file is not an image the kiosk can read (JPEG, PNG, WebP or BMP).')
    """

    def __init__(self, code: str, **params: object) -> None:
        self.code = code
        self.params = params
        super().__init__(message(code, **params))

    @property
    def message(self) -> str:
        return str(self)


class ImageError(KioskError):
    """The input image cannot be used (not an image, corrupt, too large...)."""


class ModelError(KioskError):
    """The model or its manifest cannot be loaded."""


class CameraError(KioskError):
    """The camera cannot be opened or stopped delivering frames."""


class ConfigError(KioskError):
    """A setting is invalid; ``params['key']`` names it."""
