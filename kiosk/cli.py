"""The ``kiosk`` command: screen, evaluate, bench, doctor, serve (the touchscreen), demo and update.

Every expected failure prints one line ``kiosk: error: ...`` and exits 2; a
traceback is never shown for bad input.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import __version__
from .pinhash import DEMO_PIN
from .progress import progress
from .reasons import KioskError, message
from .vision.loader import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from .config import Settings
    from .result import ScreeningResult
    from .screening import Screener

EXIT_OK, EXIT_ERROR = 0, 2


def thread_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 8:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 8, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kiosk", description="Offline melanoma screening kiosk (a referral aid, not a diagnosis)."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", help="settings TOML file (default: $KIOSK_CONFIG, else built-in defaults)")
    parser.add_argument("--model", help="model .tflite (its manifest is the .json beside it)")
    parser.add_argument("--threads", type=thread_count, help="inference threads, 1-8 (default from settings: 1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("screen", help="screen image files")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")

    p = sub.add_parser("evaluate", help="measure the model on a labelled folder (benign/, malignant/)")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--json", action="store_true")
    p.add_argument("--predictions", metavar="FILE.csv", help="write path,label,malignant_probability per image")

    p = sub.add_parser("bench", help="time every stage of a screening and report peak memory")
    p.add_argument("--json", action="store_true")
    p.add_argument("-n", "--count", type=int, default=50, help="images to time (default 50)")
    p.add_argument("--size", default="300x300", help="WxH of drawn test images (e.g. 4056x3040 for 12 MP)")
    p.add_argument("--images", metavar="DIR", help="time these image files instead of drawn ones")
    p.add_argument("--frames", action="store_true", help="time camera-style frames (no decode) instead of JPEG files")

    p = sub.add_parser("doctor", help="check runtime, model, camera, GPIO, disk and data folder")
    p.add_argument("--camera", help="camera source to check (default from settings)")

    p = sub.add_parser("demo", help="the touchscreen page in demo mode: drawn demo camera, no GPIO, demo records")
    p.add_argument("--port", type=int, default=8080, help="TCP port on 127.0.0.1 (default 8080)")
    p.add_argument("--data-dir", metavar="DIR", default="demo-data", help="demo records folder (default ./demo-data)")
    p.add_argument("--text", action="store_true", help="no page: print the results of a few drawn lesions")
    p.add_argument("-n", "--count", type=int, default=5, help="with --text: how many lesions")

    p = sub.add_parser("serve", help="run the touchscreen kiosk: the web page, served by waitress")
    p.add_argument("--camera", help="camera source (default from settings: camera.source)")
    p.add_argument("--host", help="address to listen on (default from settings: web.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default from settings: web.port, 8080)")
    p.add_argument("--data-dir", metavar="DIR", help="records folder (default from settings: records.data_dir)")

    from .updates.cli import add_commands

    p = sub.add_parser("update", help="signed model updates: list, verify, apply, rollback, status, keygen, sign-model")
    add_commands(p)

    p = sub.add_parser("set-pin", help="set the history PIN: its salted hash goes into the settings file")
    p.add_argument("--pin-stdin", action="store_true", help="read the PIN from the first line of stdin (no prompt)")
    p.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="only print the [web] line to paste into a settings file; write nothing",
    )

    from .commands import discover

    for command in discover():  # one module per command in kiosk/commands/
        p = sub.add_parser(command.NAME, help=command.HELP)
        command.add_arguments(p)
        p.set_defaults(run_command=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "update":
        from .updates.cli import run

        return run(args)  # its own one-line errors, named after the update command
    try:
        run_command = getattr(args, "run_command", None) or COMMANDS[args.command]
        return int(run_command(args))
    except KioskError as exc:
        print(f"kiosk: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("kiosk: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug must still not spill a traceback on a health worker's screen
        if os.environ.get("KIOSK_DEBUG"):
            raise
        print(
            f"kiosk: error: {message('internal_error')} ({type(exc).__name__}: {exc}; set KIOSK_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return EXIT_ERROR


# --- shared set-up -------------------------------------------------------------


def load_settings_for(args: argparse.Namespace) -> Settings:
    from .config import load_settings

    return load_settings(args.config)


def settings_with_overrides(args: argparse.Namespace) -> Settings:
    """The settings, with ``--model`` and ``--threads`` applied (validated like the settings file)."""
    import dataclasses

    settings = load_settings_for(args)
    if args.model or args.threads:
        path = Path(args.model).resolve() if args.model else settings.model.path
        model = dataclasses.replace(settings.model, path=path, threads=args.threads or settings.model.threads)
        settings = dataclasses.replace(settings, model=model)
    return settings


def load_screener(args: argparse.Namespace) -> Screener:
    """The screener, built by the composition root like the kiosk's own (:func:`kiosk.app.build_kiosk`)."""
    from .app import build_kiosk

    return build_kiosk(settings_with_overrides(args), station=False).screener


# --- screen ------------------------------------------------------------------


def cmd_screen(args: argparse.Namespace) -> int:
    screener = load_screener(args)
    any_error = False
    for image in args.images:
        result = screener.screen_file(image)
        any_error |= result.status == "error"
        if args.json:
            row = {
                "image": image,
                **{
                    k: v
                    for k, v in result.to_dict().items()
                    if k
                    in (
                        "status",
                        "reason",
                        "malignant_probability",
                        "risk",
                        "threshold",
                        "features",
                        "model_sha256",
                        "timings_ms",
                    )
                },
            }
            print(json.dumps(row), flush=True)
        else:
            print(describe(image, result), flush=True)
    return EXIT_ERROR if any_error else EXIT_OK


def describe(image: str, result: ScreeningResult) -> str:
    from .result import score_number

    if result.status == "ok":
        band = "REFER to a doctor" if result.risk == "refer" else "low risk"
        # The same words as the page and the slip: a model score is not a chance of cancer.
        score, limit = score_number(result.malignant_probability or 0.0, threshold=result.threshold or 0.0)
        return (
            f"{image}: {band} (model score {score}, not a chance of cancer; refer at or above {limit})"
            " - a referral aid, not a diagnosis"
        )
    word = "retake" if result.status == "retake" else "error"
    return f"{image}: {word}: {message(result.reason or '')}"


# --- evaluate ------------------------------------------------------------------


def labelled_images(directory: Path) -> list[tuple[Path, int]]:
    if not directory.is_dir():
        raise KioskError("file_not_found", path=str(directory))
    items = []
    for label, name in enumerate(("benign", "malignant")):
        folder = directory / name
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
        if not files:
            raise KioskError("file_not_found", path=f"{folder} (needs {name} images)")
        items += [(p, label) for p in files]
    return items


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .metrics import binary_metrics, roc_auc

    screener = load_screener(args)
    items = labelled_images(Path(args.directory))
    labels: list[int] = []
    probs: list[float] = []
    rows: list[tuple[str, str, float]] = []
    retakes = errors = 0
    for path, label in progress(items, label="evaluate"):
        result = screener.screen_file(path, apply_quality_gate=False)
        if result.status == "error":
            errors += 1
            print(f"kiosk: skipped {path}: {message(result.reason or '')}", file=sys.stderr)
            continue
        retakes += result.reason is not None
        assert result.malignant_probability is not None  # no gate: every non-error is scored
        labels.append(label)
        probs.append(result.malignant_probability)
        rows.append((str(path), ("benign", "malignant")[label], result.malignant_probability))
    if args.predictions:
        import io

        from .storage import atomic_write_bytes

        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["path", "label", "malignant_probability"])
        writer.writerows(rows)
        atomic_write_bytes(Path(args.predictions), buf.getvalue().encode())
    threshold = screener.model.manifest.threshold
    at_threshold = binary_metrics(labels, probs, threshold=threshold)
    argmax = binary_metrics(labels, probs, threshold=0.5)
    report = {
        "n": len(labels),
        "auc": roc_auc(labels, probs),
        **{
            k: at_threshold[k]
            for k in ("threshold", "accuracy", "sensitivity", "specificity", "precision", "f1", "confusion")
        },
        "argmax": {k: argmax[k] for k in ("accuracy", "sensitivity", "specificity", "precision", "f1")},
        "retake_count": retakes,
        "error_count": errors,
        "model_sha256": screener.model.sha256,
    }
    if args.json:
        print(json.dumps(report))
    else:
        c = report["confusion"]
        print(f"{report['n']} images, AUC {report['auc']:.4f}")
        print(
            f"at threshold {threshold:.3f}: accuracy {report['accuracy']:.2%}, "
            f"sensitivity {report['sensitivity']:.2%}, "
            f"specificity {report['specificity']:.2%}, precision {report['precision']:.2%} "
            f"(tp {c['tp']}, fp {c['fp']}, tn {c['tn']}, fn {c['fn']})"
        )
        a = report["argmax"]
        print(
            f"at argmax (0.5): accuracy {a['accuracy']:.2%}, sensitivity {a['sensitivity']:.2%}, "
            f"specificity {a['specificity']:.2%}"
        )
        print(f"quality gate would ask to retake {retakes} of them; {errors} unreadable")
    return EXIT_OK


# --- bench ---------------------------------------------------------------------


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w < 16 or h < 16:
            raise ValueError
        return w, h
    except ValueError:
        raise KioskError("config_invalid", key="--size", detail=f"expected WxH such as 300x300, got {text!r}") from None


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def current_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def cmd_bench(args: argparse.Namespace) -> int:
    import cv2

    from .synthetic import random_lesion
    from .vision.loader import encode_jpeg

    screener = load_screener(args)
    rss_after_load = current_rss_mb()
    if args.images:
        files = sorted(p for p in Path(args.images).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[: args.count]
        if not files:
            raise KioskError("file_not_found", path=f"{args.images} (no images)")
        inputs: list[bytes] | list[np.ndarray] = [p.read_bytes() for p in files]
        source = f"{len(files)} files from {args.images}"
    else:
        w, h = parse_size(args.size)
        # Draw at most ~1 MP and scale up: drawing a 12 MP frame itself would dominate time and memory.
        shrink = max(1.0, max(w, h) / 1280)
        frames = [
            cv2.resize(
                random_lesion(i, width=round(w / shrink), height=round(h / shrink)),
                (w, h),
                interpolation=cv2.INTER_LINEAR,
            )
            for i in range(min(args.count, 5))
        ]
        inputs = frames if args.frames else [encode_jpeg(f, quality=92) for f in frames]
        source = f"{len(frames)} drawn {w}x{h} {'frames' if args.frames else 'JPEGs'}"
    results = []
    for i in progress(range(args.count), label="bench"):
        item = inputs[i % len(inputs)]
        result = screener.screen_image(item) if isinstance(item, np.ndarray) else screener.screen_file(item)
        results.append(result)
    stages = ("decode", "quality", "preprocess", "inference", "features", "total")
    summary = {}
    for stage in stages:
        values = [r.timings_ms[stage] for r in results if stage in r.timings_ms]
        if values:
            summary[stage] = {
                "median_ms": round(float(np.median(values)), 2),
                "p90_ms": round(float(np.percentile(values, 90)), 2),
                "n": len(values),
            }
    report = {
        "source": source,
        "count": args.count,
        "threads": screener.model.threads,
        "runtime": screener.model.runtime,
        "model_sha256": screener.model.sha256,
        "stages": summary,
        "statuses": {s: sum(r.status == s for r in results) for s in ("ok", "retake", "error")},
        "rss_after_load_mb": round(rss_after_load, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{source}, {args.count} screenings, runtime {report['runtime']}")
        for stage, s in summary.items():
            print(f"  {stage:<10} median {s['median_ms']:8.2f} ms   p90 {s['p90_ms']:8.2f} ms")
        print(f"  RSS after model load {report['rss_after_load_mb']:.1f} MB, peak {report['peak_rss_mb']:.1f} MB")
    return EXIT_OK


# --- doctor --------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    import shutil

    checks: list[tuple[str, str, str]] = []  # (OK|WARN|FAIL, what, detail)
    try:
        settings = load_settings_for(args)
        checks.append(("OK", "config", args.config or os.environ.get("KIOSK_CONFIG") or "built-in defaults"))
    except KioskError as exc:
        print(f"FAIL config: {exc}")
        return EXIT_ERROR
    try:
        from .model import Model, load_interpreter_class

        interpreter_class, runtime = load_interpreter_class()
        checks.append(("OK", "runtime", runtime))
        model_path = Path(args.model) if args.model else settings.model.path
        model = Model.load(model_path, threads=args.threads or settings.model.threads)
        checks.append(
            (
                "OK",
                "model",
                f"{model_path} sha256 {model.sha256[:12]}... verified, "
                f"recipe {model.manifest.preprocessing_recipe}, threshold {model.manifest.threshold:.3f}",
            )
        )
    except KioskError as exc:
        checks.append(("FAIL", "model", str(exc)))
    source = args.camera or settings.camera.source
    try:
        from .camera import camera_from_settings
        from .reasons import CameraError
        from .station.supervisor import CameraSupervisor

        notes: list[str] = []
        # Under the kiosk's own deadlines: a hung Pi camera makes this check fail, not hang.
        with CameraSupervisor(
            lambda: camera_from_settings(settings.camera, spec=source, log=notes.append),
            log=lambda line: None,
            on_change=lambda: None,
            open_timeout=15.0,
        ) as camera:
            if camera.reason_code is not None:
                raise CameraError(camera.reason_code, detail=camera.status.partition(": ")[2])
            name, frame = camera.name, camera.capture()
        checks.append(
            (
                "OK" if name != "synthetic" or source == "synthetic" else "WARN",
                "camera",
                f"{name} {frame.shape[1]}x{frame.shape[0]}" + (f" ({notes[-1]})" if notes else ""),
            )
        )
    except KioskError as exc:
        checks.append(("FAIL", "camera", str(exc)))
    checks.append(gpio_check(settings))
    data_dir = settings.records.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".doctor-probe"
        probe.write_bytes(b"ok")
        probe.unlink()
        checks.append(("OK", "data dir", f"{data_dir} writable"))
        free_mb = shutil.disk_usage(data_dir).free / 2**20
        checks.append(("OK" if free_mb >= 500 else "WARN", "disk", f"{free_mb:,.0f} MB free in {data_dir}"))
    except OSError as exc:
        checks.append(("FAIL", "data dir", f"{data_dir} not writable ({exc.strerror})"))
    for status, what, detail in checks:
        print(f"{status:<4} {what}: {detail}")
    return EXIT_ERROR if any(c[0] == "FAIL" for c in checks) else EXIT_OK


def gpio_check(settings: Settings) -> tuple[str, str, str]:
    if not settings.gpio.enabled:
        return ("OK", "gpio", "disabled in settings")
    import warnings

    try:
        from gpiozero import Device
        from gpiozero.exc import BadPinFactory

        try:
            with warnings.catch_warnings():  # gpiozero warns once per pin library it tries
                warnings.simplefilter("ignore")
                factory = Device.pin_factory or Device._default_pin_factory()
        except BadPinFactory:
            return ("WARN", "gpio", "no GPIO on this machine; the kiosk runs with the touchscreen only")
        return ("OK", "gpio", f"{type(factory).__name__}, button on BCM {settings.gpio.button_pin}")
    except Exception as exc:  # noqa: BLE001 - any GPIO trouble is a warning, not a crash
        return ("WARN", "gpio", f"unavailable ({type(exc).__name__}: {exc})")


# --- demo / serve --------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """Demo mode on the embedded defaults: the bundled model, the drawn camera, the page on 127.0.0.1."""
    if args.text:
        from .camera import open_camera

        screener = load_screener(args)
        print("Demo: drawn lesions from the synthetic camera (not real patients). A referral aid, not a diagnosis.")
        with open_camera("synthetic") as camera:
            for i in range(args.count):
                print(describe(f"demo photo {i + 1}", screener.screen_image(camera.capture())))
        return EXIT_OK

    # Demo defaults unless the environment says otherwise: a laptop has no buttons,
    # and the history pages need a PIN before anyone can look at them.
    os.environ.setdefault("KIOSK_GPIO_ENABLED", "false")
    if "KIOSK_WEB_PIN" not in os.environ:
        from .pinhash import DEMO_PIN_HASH

        os.environ["KIOSK_WEB_PIN"] = DEMO_PIN_HASH  # hashed like any kiosk's: a plain PIN is refused
        pin_words = f"history PIN {DEMO_PIN}"
    else:
        pin_words = "history PIN from KIOSK_WEB_PIN"
    print(
        f"Demo mode: drawn lesions (not real patients); open http://127.0.0.1:{args.port}/ "
        f"({pin_words}); Ctrl+C stops.",
        file=sys.stderr,
        flush=True,
    )
    serve_args = argparse.Namespace(**{**vars(args), "camera": "synthetic", "host": "127.0.0.1"})
    return cmd_serve(serve_args)


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from .daemon import run_server

    settings = settings_with_overrides(args)  # a bad --threads is a one-line ConfigError
    if args.port is not None and not 0 <= args.port <= 65535:
        raise KioskError("config_invalid", key="--port", detail=f"expected 0 to 65535, got {args.port}")
    logging.basicConfig(level=logging.INFO, format="kiosk: %(message)s", stream=sys.stderr)
    return run_server(
        settings=settings, camera_spec=args.camera, host=args.host, port=args.port, data_dir=args.data_dir
    )


# --- set-pin -------------------------------------------------------------------


def cmd_set_pin(args: argparse.Namespace) -> int:
    """Ask for the PIN (twice) or read it from stdin; write its hash into the settings file, or print it."""
    from .config import load_settings
    from .pinhash import PIN_RE, hash_pin
    from .reasons import ConfigError

    if args.pin_stdin:
        pin = sys.stdin.readline().strip()
    else:
        import getpass

        pin = getpass.getpass("New PIN (4-8 digits): ").strip()
        if getpass.getpass("The same PIN again: ").strip() != pin:
            raise ConfigError("config_invalid", key="web.pin", detail="the two PINs differ; nothing was changed")
    if not PIN_RE.fullmatch(pin):
        raise ConfigError("config_invalid", key="web.pin", detail="a PIN is 4 to 8 digits (0-9); nothing was changed")
    line = f'pin = "{hash_pin(pin)}"'
    if args.print_only:
        print("[web]")
        print(line)
        return EXIT_OK
    target = args.config or os.environ.get("KIOSK_CONFIG")
    if not target:
        raise ConfigError(
            "config_invalid",
            key="config",
            detail="no settings file: give --config FILE (or $KIOSK_CONFIG), or use --print",
        )
    path = Path(target).expanduser()
    write_pin_line(path, line)
    load_settings(path, env={})  # the file as written must still load (and carry this hash)
    print(
        f"PIN hash written to {path}; restart the kiosk for it to take effect "
        "(sudo systemctl restart melanoma-kiosk): every unlocked session is locked again.",
        file=sys.stderr,
    )
    return EXIT_OK


def write_pin_line(path: Path, line: str) -> None:
    """Put ``line`` (``pin = "..."``) under ``[web]`` in ``path``, keeping every other line; atomically."""
    import re
    import stat
    import tomllib

    from .reasons import ConfigError
    from .storage import atomic_write_bytes

    try:
        text = path.read_text(encoding="utf-8")
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        text, mode = "", 0o600
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("config_invalid", key="config", detail=f"cannot read {path}: {exc}") from None
    lines = text.splitlines()
    header = next((i for i, s in enumerate(lines) if re.fullmatch(r"\s*\[\s*web\s*\]\s*(#.*)?", s)), None)
    if header is None:
        lines += ["", "[web]", line] if lines else ["[web]", line]
    else:
        end = next((i for i in range(header + 1, len(lines)) if re.match(r"\s*\[", lines[i])), len(lines))
        existing = next((i for i in range(header + 1, end) if re.match(r"\s*pin\s*=", lines[i])), None)
        if existing is None:
            lines.insert(header + 1, line)
        else:
            lines[existing] = line
    new_text = "\n".join(lines) + "\n"
    try:
        parsed = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            "config_invalid", key="config", detail=f"{path} is not valid TOML ({exc}); nothing was changed"
        ) from None
    if parsed.get("web", {}).get("pin") != line.split('"')[1]:
        raise ConfigError(
            "config_invalid",
            key="web.pin",
            detail=f"could not place the PIN under [web] in {path}; use --print and edit it by hand",
        )
    try:
        atomic_write_bytes(path, new_text.encode("utf-8"), mode=mode)
    except OSError as exc:
        raise ConfigError(
            "config_invalid", key="config", detail=f"cannot write {path}: {exc.strerror or exc}"
        ) from None


COMMANDS = {
    "screen": cmd_screen,
    "evaluate": cmd_evaluate,
    "bench": cmd_bench,
    "doctor": cmd_doctor,
    "demo": cmd_demo,
    "serve": cmd_serve,
    "set-pin": cmd_set_pin,
}

if __name__ == "__main__":
    sys.exit(main())
