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
    # Input errors: the file itself is unusable.
    "empty_file": N_("The file is empty."),
    "not_an_image": N_("The file is not an image the kiosk can read (JPEG, PNG, WebP or BMP)."),
    "corrupt_image": N_("The image file is damaged and cannot be decoded."),
    "image_too_large": N_("The image is too large ({megapixels:.1f} MP; the limit is {limit} MP)."),
    "file_not_found": N_("The file does not exist: {path}"),
    "file_unreadable": N_("The file cannot be read: {path}"),
    # Model and system errors.
    "model_missing": N_("The model file is missing: {path}"),
    "model_corrupt": N_("The model file is damaged or not a model: {path}"),
    "model_hash_mismatch": N_("The model file does not match its manifest (sha256 differs): {path}"),
    "manifest_invalid": N_("The model manifest is invalid: {path}: {detail}"),
    "runtime_missing": N_("No TFLite runtime is installed (install ai-edge-litert)."),
    "camera_unavailable": N_("The camera is not available: {detail}"),
    "config_invalid": N_("Setting {key} is invalid: {detail}"),
    "internal_error": N_("Something went wrong inside the kiosk; the photo was not lost. Please try again."),
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
