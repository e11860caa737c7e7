"""The update commands: ``kiosk update list|verify|apply|rollback|status|keygen|sign-model``.

The same commands run as ``python -m kiosk.updates COMMAND`` (what ``deploy/keygen``
and ``deploy/sign-model`` call, on a laptop without the kiosk's settings).
Every expected failure is one line, ``PROG: error: ...``, exit status 2.

An install or rollback from the command line changes the files only: a running
kiosk keeps the model it loaded until the service restarts (the settings page
swaps it live).

>>> build_parser().parse_args(["rollback"]).update_command
'rollback'
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from ..reasons import KioskError, message
from .keys import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, key_id, keygen, load_private_key, load_public_key
from .package import SUFFIX, inspect_update, sign_model, verify_update
from .service import UpdateService

__all__ = ["add_commands", "build_parser", "main"]

RESTART_HINT = "a running kiosk uses it after: sudo systemctl restart melanoma-kiosk"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, like every other kiosk error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _service(args: argparse.Namespace) -> UpdateService:
    from ..config import load_settings

    settings = load_settings(getattr(args, "config", None))
    if getattr(args, "model", None):  # `kiosk --model FILE update ...`: that model's folder
        settings = dataclasses.replace(
            settings, model=dataclasses.replace(settings.model, path=Path(args.model).resolve())
        )
    return UpdateService.from_settings(settings)


def _cmd_keygen(args: argparse.Namespace) -> None:
    private, public = keygen(args.out)
    print(f"private key: {private} (mode 600; keep it OFF the kiosks, backed up offline)")
    print(f"public key:  {public} (key id {key_id(load_public_key(public))}; install on every kiosk)")


def _cmd_sign(args: argparse.Namespace) -> None:
    target = sign_model(args.model_file, key=args.key, out=args.out, version=args.version)
    info = inspect_update(target, public_key=load_private_key(args.key).public_key())
    print(
        f"{target}: model {info.name} version {info.version} sha256 {info.model_sha256[:12]}, "
        f"{info.size / 1024:.0f} KiB, signed with key {info.key_id}"
    )


def _public_key_arg(args: argparse.Namespace) -> Path:
    return Path(args.public_key) if args.public_key else _service(args).public_key


def _cmd_verify(args: argparse.Namespace) -> None:
    verified = verify_update(args.package, public_key=_public_key_arg(args))
    print(
        f"{args.package}: OK, model {verified.info.name} version {verified.info.version} "
        f"sha256 {verified.info.model_sha256[:12]}, key {verified.info.key_id}, self-test {verified.selftest.detail}"
    )


def _cmd_apply(args: argparse.Namespace) -> None:
    service = _service(args)
    if args.public_key:
        service.public_key = Path(args.public_key)
    print(service.apply_file(args.package).message)
    print(f"note: {RESTART_HINT}", file=sys.stderr)


def _cmd_rollback(args: argparse.Namespace) -> None:
    print(_service(args).rollback().message)
    print(f"note: {RESTART_HINT}", file=sys.stderr)


def _cmd_status(args: argparse.Namespace) -> None:
    service = _service(args)
    current, previous = service.current(), service.previous()
    print(
        json.dumps(
            {
                "current": current.to_dict() if current else None,
                "previous": previous.to_dict() if previous else None,
                "on_sticks": [offer.to_dict() for offer in service.offers()],
            },
            indent=2,
        )
    )


def _cmd_list(args: argparse.Namespace) -> None:
    service = _service(args)
    offers = service.offers()
    if not offers:
        print(f"no {SUFFIX} files under {' '.join(service.search_paths)}")
    for offer in offers:
        if offer.info is None:
            print(f"{offer.path}: refused: {offer.message}")
            continue
        info, figures = offer.info, offer.info.validation
        shown = ", ".join(f"{k} {v:.3f}" if k != "images" else f"{v:.0f} images" for k, v in figures.items())
        what = "installable" if offer.installable else f"refused: {offer.message}"
        print(
            f"{offer.path}: {info.name} version {info.version}, created {info.created}, "
            f"sha256 {info.model_sha256[:12]}, validation {shown or 'not recorded'}, "
            f"self-test {offer.selftest.detail if offer.selftest else '-'}; {what}"
        )


def add_commands(parser: argparse.ArgumentParser, *, standalone: bool = False) -> None:
    """Add the update commands under ``parser`` (``kiosk update`` or ``python -m kiosk.updates``)."""
    sub = parser.add_subparsers(dest="update_command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, func: Any, helptext: str, *, settings: bool = True) -> argparse.ArgumentParser:
        prog = name if name in ("keygen", "sign-model") and standalone else f"kiosk update {name}"
        p = sub.add_parser(name, prog=prog, help=helptext)
        p.set_defaults(func=func, prog=prog)
        if settings:  # SUPPRESS: never hides `kiosk --config FILE update ...`
            p.add_argument("--config", default=argparse.SUPPRESS, help="settings TOML file (default: $KIOSK_CONFIG)")
        return p

    p = command("list", _cmd_list, "the updates on the USB stick, each checked and self-tested")
    p = command("verify", _cmd_verify, "run every check on an update, install nothing")
    p.add_argument("package", metavar="UPDATE_FILE")
    p.add_argument("--public-key", metavar="FILE", help="default: updates.public_key from the settings")
    p = command("apply", _cmd_apply, "install an update (the running kiosk needs a restart to use it)")
    p.add_argument("package", metavar="UPDATE_FILE")
    p.add_argument("--public-key", metavar="FILE", help="default: updates.public_key from the settings")
    command("rollback", _cmd_rollback, "go back to the kept previous model")
    command("status", _cmd_status, "current and previous model, updates on the stick (JSON)")
    p = command("keygen", _cmd_keygen, "make the team's ed25519 key pair (on the maintainers' laptop)", settings=False)
    p.add_argument("--out", required=True, metavar="DIR", help=f"folder for {PRIVATE_KEY_FILE} and {PUBLIC_KEY_FILE}")
    p = command("sign-model", _cmd_sign, "sign a model into one .kioskupdate file", settings=False)
    p.add_argument("model_file", metavar="MODEL_DIR_OR_TFLITE")
    p.add_argument("--key", required=True, metavar="PRIVATE_KEY", help=f"the {PRIVATE_KEY_FILE} made by keygen")
    p.add_argument("--out", required=True, metavar="UPDATE_FILE", help=f"a {SUFFIX} file, or a folder")
    p.add_argument(
        "--version",
        required=True,
        type=_version,
        metavar="N",
        help="release number, higher than every model signed before (kiosks refuse older ones)",
    )


def _version(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m kiosk.updates", description="Signed model updates for the kiosk.")
    add_commands(parser, standalone=True)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run a parsed update command; expected failures are one line on stderr and exit 2."""
    prog = args.prog
    try:
        args.func(args)
    except KioskError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug is still one line; KIOSK_DEBUG=1 shows the traceback
        if os.environ.get("KIOSK_DEBUG"):
            raise
        print(
            f"{prog}: error: {message('internal_error')} ({type(exc).__name__}: {exc}; set KIOSK_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
