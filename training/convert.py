"""Build the kiosk's int8 model from a trainer export (the engine of ``deploy/build-model``).

    deploy/build-model EXPORT_DIR --calibration DIR --validation DIR --out models/NAME

1. Check every input first (export contract, folders, images); any problem is a
   one-line error and nothing under ``--out`` is touched.
2. Preprocess calibration and validation images with the kiosk's own
   ``preprocess()`` and the export's recipe.
3. Convert to full-integer int8 (uint8 in/out) with the calibration images as
   the representative dataset; also convert a float32 TFLite for comparison.
4. Evaluate both through :class:`kiosk.model.Model` on the validation folder;
   refuse when int8 loses more than ``--max-int8-loss`` accuracy points.
5. Choose the screening threshold on validation: the highest one whose one-sided lower 95%
   Clopper-Pearson bound of sensitivity is >= 95% (``training.threshold``; give a validation
   folder free of near-duplicates of the training images, e.g. ``training.revalidate``'s split).
   ``--threshold-method point`` is the old rule (validation sensitivity >= 95%).
6. Write ``NAME.tflite``, ``NAME.json`` and ``NAME-report/`` atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from kiosk.manifest import ModelManifest, write_manifest
from kiosk.metrics import binary_metrics, roc_auc, roc_curve, threshold_for_sensitivity, wilson_interval
from kiosk.model import Model, sha256_of
from kiosk.reasons import ImageError
from kiosk.storage import atomic_write_bytes
from kiosk.vision.loader import IMAGE_SUFFIXES, load_image
from kiosk.vision.preprocess import get_recipe, preprocess

from .threshold import METHOD, choose_threshold, threshold_record
from .train import EXPORT_FORMAT

#: What the trainer's export.json says about the weights it exported (copied into the manifest).
TRAINING_RUN_KEYS = ("best_epoch", "epochs_run", "weights", "initialised_from", "trained_with")


class BuildError(Exception):
    """A one-line reason the build refused to run."""


def read_export(export_dir: Path) -> dict:
    info_path = export_dir / "export.json"
    if not export_dir.is_dir():
        raise BuildError(f"export folder not found: {export_dir}")
    if not info_path.is_file():
        raise BuildError(f"not a trainer export (no export.json): {export_dir}")
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BuildError(f"export.json is not valid JSON: {info_path} ({exc})") from None
    if info.get("format") != EXPORT_FORMAT:
        raise BuildError(f"export.json format is {info.get('format')!r}, expected {EXPORT_FORMAT!r}: {info_path}")
    inp = info.get("input", {})
    if not (inp.get("height") == inp.get("width") and isinstance(inp.get("height"), int) and inp.get("channels") == 3):
        raise BuildError(f"export input must be square RGB, got {inp}: {info_path}")
    if inp.get("channel_order") != "RGB" or list(inp.get("value_range", [])) != [0, 255]:
        raise BuildError(f"export input must be RGB with values 0..255: {info_path}")
    if "malignant" not in info.get("labels", []):
        raise BuildError(f"export labels must include 'malignant': {info_path}")
    try:
        get_recipe(info.get("preprocessing_recipe", ""))
    except ValueError as exc:
        raise BuildError(f"{exc}: {info_path}") from None
    if not (export_dir / "saved_model" / "saved_model.pb").is_file():
        raise BuildError(f"export has no saved_model/saved_model.pb: {export_dir}")
    return info


def image_files(folder: Path, *, what: str) -> list[Path]:
    if not folder.is_dir():
        raise BuildError(f"{what} folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    others = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        raise BuildError(f"{what} folder holds a file that is not an image: {others[0]}")
    return files


def load_preprocessed(files: list[Path], *, size: int, recipe: str, what: str) -> np.ndarray:
    out = np.empty((len(files), size, size, 3), np.uint8)
    for i, path in enumerate(files):
        try:
            out[i] = preprocess(load_image(path), size=size, recipe=recipe)
        except ImageError as exc:
            raise BuildError(f"{what} image unusable: {path}: {exc}") from None
    return out


def convert(saved_model: Path, calibration: np.ndarray | None) -> bytes:
    """TFLite bytes: full-integer int8 with uint8 I/O when calibration is given, else float32."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if calibration is not None:

        def representative():
            for image in calibration:
                yield [image[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return converter.convert()


def tensor_quantisation(content: bytes) -> dict:
    from kiosk.model import load_interpreter_class

    interpreter_class, _ = load_interpreter_class()
    interpreter = interpreter_class(model_content=content)

    def q(detail):
        scale, zero_point = detail["quantization"]
        return {"scale": float(scale), "zero_point": int(zero_point), "dtype": np.dtype(detail["dtype"]).name}

    return {"input": q(interpreter.get_input_details()[0]), "output": q(interpreter.get_output_details()[0])}


def model_from_bytes(content: bytes, manifest: ModelManifest, workdir: Path, name: str) -> Model:
    path = workdir / f"{name}.tflite"
    path.write_bytes(content)
    write_manifest(path.with_suffix(".json"), manifest)
    return Model.load(path, threads=1)


def predict(model: Model, images: np.ndarray) -> np.ndarray:
    return np.array([model.malignant_probability(x) for x in images], np.float64)


def median_inference_ms(model: Model, image: np.ndarray | None = None, *, repeats: int = 50) -> float:
    """Median wall time of one inference through kiosk.model (after a short warm-up)."""
    if image is None:
        image = np.random.default_rng(0).integers(0, 256, (model.input_size, model.input_size, 3), dtype=np.uint8)
    for _ in range(5):
        model.malignant_probability(image)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.malignant_probability(image)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def build(
    export_dir: Path,
    calibration_dir: Path,
    validation_dir: Path,
    out: Path,
    *,
    min_calibration: int = 300,
    min_sensitivity: float = 0.95,
    max_int8_loss: float = 1.0,
    threshold_method: str = "confident",
    log=print,
) -> dict:
    info = read_export(export_dir)
    size, recipe = info["input"]["height"], info["preprocessing_recipe"]
    cal_files = image_files(calibration_dir, what="calibration")
    if len(cal_files) < min_calibration:
        raise BuildError(
            f"calibration folder has {len(cal_files)} images, at least {min_calibration} needed: {calibration_dir}"
        )
    val_files, val_labels = [], []
    for label, name in enumerate(("benign", "malignant")):
        files = image_files(validation_dir / name, what=f"validation {name}")
        if not files:
            raise BuildError(f"validation {name} folder is empty: {validation_dir / name}")
        val_files += files
        val_labels += [label] * len(files)
    if not out.parent.is_dir():
        raise BuildError(f"output folder does not exist: {out.parent}")
    y = np.array(val_labels)

    log(f"preprocessing {len(cal_files)} calibration and {len(val_files)} validation images ({recipe}, {size}px)")
    calibration = load_preprocessed(cal_files, size=size, recipe=recipe, what="calibration")
    validation = load_preprocessed(val_files, size=size, recipe=recipe, what="validation")
    log("converting: float32 TFLite")
    float_bytes = convert(export_dir / "saved_model", None)
    log("converting: full-integer int8 (this takes a while)")
    int8_bytes = convert(export_dir / "saved_model", calibration)

    labels = tuple(info["labels"])
    base = dict(labels=labels, input_height=size, input_width=size, preprocessing_recipe=recipe, threshold=0.5)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        float_model = model_from_bytes(
            float_bytes, ModelManifest(**base, input_dtype="float32", sha256=sha256_of(float_bytes)), workdir, "float"
        )
        quant = tensor_quantisation(int8_bytes)
        int8_model = model_from_bytes(
            int8_bytes,
            ModelManifest(
                **base, input_dtype=quant["input"]["dtype"], sha256=sha256_of(int8_bytes), quantization=quant
            ),
            workdir,
            "int8",
        )
        log("evaluating float32 and int8 on validation")
        p_float, p_int8 = predict(float_model, validation), predict(int8_model, validation)
        float_ms = median_inference_ms(float_model, validation[0])
        int8_ms = median_inference_ms(int8_model, validation[0])
    float_argmax = binary_metrics(y, p_float, threshold=0.5)
    int8_argmax = binary_metrics(y, p_int8, threshold=0.5)
    loss_points = 100 * (float_argmax["accuracy"] - int8_argmax["accuracy"])
    if loss_points > max_int8_loss:
        raise BuildError(
            f"int8 loses {loss_points:.2f} accuracy points against float "
            f"({int8_argmax['accuracy']:.4f} vs {float_argmax['accuracy']:.4f}); limit {max_int8_loss}"
        )
    if threshold_method == "point":
        threshold = max(threshold_for_sensitivity(y, p_int8, min_sensitivity=min_sensitivity), 1 / 512)
        threshold_rule, choice = f"highest threshold with validation sensitivity >= {min_sensitivity:.0%}", None
    elif threshold_method == "confident":
        choice = choose_threshold(y, p_int8, min_sensitivity=min_sensitivity, split=validation_dir.name)
        threshold = max(choice["threshold"], 1 / 512)  # the same floor as the point rule
        if threshold != choice["threshold"]:
            choice.update(
                threshold_record(
                    y, p_int8, threshold=threshold, min_sensitivity=min_sensitivity, split=validation_dir.name
                )
            )
        threshold_rule = choice["rule"]
        if not choice["bound_reached"]:
            threshold_rule += f" (not reachable with {choice['melanomas']} melanomas: every one is referred)"
            log(
                f"warning: {choice['melanomas']} validation melanomas are too few for the sensitivity bound; "
                "the threshold refers every one of them"
            )
    else:
        raise BuildError(f"unknown threshold method {threshold_method!r} (confident, point)")
    at_threshold = binary_metrics(y, p_int8, threshold=threshold)

    def with_ci(m: dict) -> dict:
        c = m["confusion"]
        m = dict(m)
        m["sensitivity_ci95"] = wilson_interval(c["tp"], c["tp"] + c["fn"])
        m["specificity_ci95"] = wilson_interval(c["tn"], c["tn"] + c["fp"])
        m["accuracy_ci95"] = wilson_interval(c["tp"] + c["tn"], m["n"])
        return m

    metrics = {
        "validation_images": len(y),
        "float32": {
            "auc": roc_auc(y, p_float),
            "argmax": float_argmax,
            "inference_ms_1thread": round(float_ms, 3),
            "file_bytes": len(float_bytes),
        },
        "int8": {
            "auc": roc_auc(y, p_int8),
            "argmax": with_ci(int8_argmax),
            "at_threshold": with_ci(at_threshold),
            "inference_ms_1thread": round(int8_ms, 3),
            "file_bytes": len(int8_bytes),
        },
        "int8_accuracy_loss_points": round(loss_points, 3),
    }
    manifest = ModelManifest(
        **{**base, "threshold": threshold},
        input_dtype=quant["input"]["dtype"],
        sha256=sha256_of(int8_bytes),
        quantization=quant,
        extra={
            "name": out.name,
            "architecture": info.get("architecture"),
            "parameters": info.get("parameters"),
            "threshold_rule": threshold_rule,
            "threshold_method": METHOD if choice else "point-estimate",
            **({"threshold_choice": choice} if choice else {}),
            "validation_metrics": metrics,
            "source_export": {
                "export_json_sha256": hashlib.sha256((export_dir / "export.json").read_bytes()).hexdigest(),
                "git_commit": info.get("git_commit"),
                "training_data": info.get("training_data"),
                # which weights were exported, as the trainer recorded it
                "training_run": {k: info[k] for k in TRAINING_RUN_KEYS if k in info},
            },
            "runtime": int8_model.runtime,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    write_outputs(out, int8_bytes, manifest, metrics, y, p_int8, threshold)
    log(f"wrote {out.with_suffix('.tflite')} ({len(int8_bytes) / 1024:.0f} KiB), threshold {threshold:.4f}")
    return metrics


def write_outputs(
    out: Path,
    model_bytes: bytes,
    manifest: ModelManifest,
    metrics: dict,
    y: np.ndarray,
    probs: np.ndarray,
    threshold: float,
) -> None:
    """Report first, then the model, then the manifest: the kiosk reads the pair only when the hashes agree."""
    report_dir = out.with_name(out.name + "-report")
    tmp_report = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-report."))
    try:
        tmp_report.chmod(0o755)
        write_report(tmp_report, manifest, metrics, y, probs, threshold)
        if report_dir.exists():
            shutil.rmtree(report_dir)
        os.replace(tmp_report, report_dir)
    except BaseException:
        shutil.rmtree(tmp_report, ignore_errors=True)
        raise
    atomic_write_bytes(out.with_suffix(".tflite"), model_bytes)
    write_manifest(out.with_suffix(".json"), manifest)


def write_report(folder: Path, manifest: ModelManifest, metrics: dict, y, probs, threshold: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpr, tpr, _ = roc_curve(y, probs)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"int8 (AUC {metrics['int8']['auc']:.3f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    m = metrics["int8"]["at_threshold"]
    ax.scatter([1 - m["specificity"]], [m["sensitivity"]], color="red", zorder=3, label=f"threshold {threshold:.3f}")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC on validation")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(folder / "roc.png", dpi=100)
    plt.close(fig)
    c = m["confusion"]
    fig, ax = plt.subplots(figsize=(4, 4))
    grid = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    ax.imshow(grid, cmap="Blues")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=14)
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["low", "refer"],
        yticklabels=["benign", "malignant"],
        xlabel="kiosk says",
        ylabel="truth",
        title=f"At threshold {threshold:.3f}",
    )
    fig.tight_layout()
    fig.savefig(folder / "confusion.png", dpi=100)
    plt.close(fig)
    f, q = metrics["float32"], metrics["int8"]
    lines = [
        f"# Model build report: {manifest.extra.get('name')}",
        "",
        f"- Architecture: {manifest.extra.get('architecture')} ({manifest.extra.get('parameters'):,} parameters)",
        f"- Input: {manifest.input_width}x{manifest.input_height} RGB {manifest.input_dtype}, "
        f"recipe `{manifest.preprocessing_recipe}`",
        f"- int8 file: {q['file_bytes'] / 1024:.0f} KiB, sha256 `{manifest.sha256}`",
        f"- Validation images: {metrics['validation_images']}",
        "",
        "| | AUC | accuracy (argmax) | sensitivity | specificity | inference ms (1 thread) |",
        "|---|---|---|---|---|---|",
        f"| float32 | {f['auc']:.4f} | {f['argmax']['accuracy']:.2%} | {f['argmax']['sensitivity']:.2%} "
        f"| {f['argmax']['specificity']:.2%} | {f['inference_ms_1thread']:.2f} |",
        f"| int8 argmax | {q['auc']:.4f} | {q['argmax']['accuracy']:.2%} | {q['argmax']['sensitivity']:.2%} "
        f"| {q['argmax']['specificity']:.2%} | {q['inference_ms_1thread']:.2f} |",
        f"| int8 at threshold {threshold:.4f} | | {m['accuracy']:.2%} | {m['sensitivity']:.2%} "
        f"| {m['specificity']:.2%} | |",
        "",
        f"int8 loses {metrics['int8_accuracy_loss_points']:.2f} accuracy points against float32.",
        f"Threshold rule: {manifest.extra.get('threshold_rule')}.",
        "",
        "![ROC](roc.png) ![confusion](confusion.png)",
        "",
    ]
    (folder / "report.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="deploy/build-model", description="Build the kiosk's int8 model from a trainer export."
    )
    p.add_argument("export", type=Path, metavar="EXPORT_DIR")
    p.add_argument(
        "--calibration", type=Path, required=True, metavar="DIR", help="at least 300 training images (any layout)"
    )
    p.add_argument(
        "--validation", type=Path, required=True, metavar="DIR", help="benign/ and malignant/ validation images"
    )
    p.add_argument(
        "--out", type=Path, required=True, metavar="models/NAME", help="writes NAME.tflite, NAME.json, NAME-report/"
    )
    p.add_argument("--min-calibration", type=int, default=300)
    p.add_argument("--min-sensitivity", type=float, default=0.95)
    p.add_argument(
        "--threshold-method",
        choices=("confident", "point"),
        default="confident",
        help="confident: lower 95%% Clopper-Pearson bound of sensitivity >= --min-sensitivity (default); "
        "point: validation sensitivity >= it",
    )
    p.add_argument("--max-int8-loss", type=float, default=1.0, help="accuracy points int8 may lose against float")
    args = p.parse_args(argv)
    try:
        build(
            args.export,
            args.calibration,
            args.validation,
            args.out,
            min_calibration=args.min_calibration,
            min_sensitivity=args.min_sensitivity,
            max_int8_loss=args.max_int8_loss,
            threshold_method=args.threshold_method,
            log=lambda s: print(s, file=sys.stderr, flush=True),
        )
    except BuildError as exc:
        print(f"build-model: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
