"""Write models/MODEL_CARD.md from the shipped manifests and fresh measurements.

    python -m training.model_card            # reads models/*.json, times each model here
    python -m training.model_card --paper-export runs/paper/export   # also times the paper's float32 TFLite

Every number in the card comes from a manifest written by deploy/build-model
(validation metrics) or is measured when this runs (inference time, file size),
so the card cannot drift from the models beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

from kiosk.model import Model, sha256_of
from kiosk.storage import atomic_write_bytes

from .convert import (
    BuildError,
    convert,
    median_inference_ms,
    model_from_bytes,
    read_export,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
PAPER = {"accuracy": 0.9208, "precision": 0.9160, "recall": 0.9336, "size_mb": 73.5, "params": 19_264_322}


def pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def ci(pair) -> str:
    return "" if not pair else f" ({100 * pair[0]:.1f}-{100 * pair[1]:.1f})"


def row(name: str, path: Path) -> tuple[str, dict]:
    model = Model.load(path, threads=1)
    vm = model.manifest.extra["validation_metrics"]["int8"]
    at, arg = vm["at_threshold"], vm["argmax"]
    ms = median_inference_ms(model, repeats=200)
    size = path.stat().st_size
    line = (f"| {name} | {model.manifest.extra.get('parameters', 0):,} | {pct(arg['accuracy'])}{ci(arg.get('accuracy_ci95'))} "
            f"| {pct(arg['precision'])} | {pct(arg['sensitivity'])} | {vm['auc']:.4f} "
            f"| {pct(at['sensitivity'])}{ci(at.get('sensitivity_ci95'))} / {pct(at['specificity'])}{ci(at.get('specificity_ci95'))} "
            f"| {size / 2**20:.2f} MiB | {ms:.2f} ms |")
    return line, {"ms": ms, "size": size, "model": model}


def paper_float32_row(baseline: Model, export_dir: Path | None) -> tuple[str, float | None]:
    """The reproduced paper CNN as float32 TFLite: metrics from the baseline's build, time measured now.

    The float32 file (about 73 MB) is not kept in the repository, so it is
    converted again from the paper run's export, in a temporary folder, and timed
    in this same process as the int8 models. Without the export the row keeps
    the time measured by deploy/build-model and says so.
    """
    vm = baseline.manifest.extra["validation_metrics"]["float32"]
    arg = vm["argmax"]
    if export_dir is None:
        ms, when = None, f"{vm['inference_ms_1thread']:.2f} ms (at build)"
    else:
        read_export(export_dir)
        content = convert(export_dir / "saved_model", None)
        manifest = dataclasses.replace(baseline.manifest, input_dtype="float32", quantization={},
                                       sha256=sha256_of(content), extra={})
        with tempfile.TemporaryDirectory() as tmp:
            ms = median_inference_ms(model_from_bytes(content, manifest, Path(tmp), "paper_float32"), repeats=50)
        when = f"{ms:.2f} ms"
    line = (f"| Paper CNN reproduced here, float32 TFLite | {baseline.manifest.extra.get('parameters', 0):,} "
            f"| {pct(arg['accuracy'])}{ci(arg.get('accuracy_ci95'))} | {pct(arg['precision'])} | {pct(arg['sensitivity'])} "
            f"| {vm['auc']:.4f} | not set (float) | {vm['file_bytes'] / 2**20:.2f} MiB | {when} |")
    return line, ms


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.model_card")
    p.add_argument("--models", type=Path, default=REPO_ROOT / "models")
    p.add_argument("--paper-export", type=Path, help="the paper run's export folder, to time its float32 TFLite in this run")
    args = p.parse_args(argv)
    main_path = args.models / "melanoma_int8.tflite"
    baseline_path = args.models / "baseline" / "paper_int8.tflite"
    if not main_path.exists():
        print(f"model_card: error: {main_path} not found", file=sys.stderr)
        return 2
    main_line, main_info = row("Compact model (this kiosk), int8", main_path)
    model = main_info["model"]
    m = model.manifest
    vm = m.extra["validation_metrics"]
    table = [
        "| model | parameters | accuracy (argmax) | precision (argmax) | recall (argmax) | AUC | sensitivity / specificity at threshold | file | inference, 1 thread |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| Paper CNN as published (Araneta 2025), float | {PAPER['params']:,} | {pct(PAPER['accuracy'])} | {pct(PAPER['precision'])} "
        f"| {pct(PAPER['recall'])} | not reported | not reported | {PAPER['size_mb']} MB | not reported |",
    ]
    speed = ""
    if baseline_path.exists():
        line, baseline_info = row("Paper CNN reproduced here, int8", baseline_path)
        try:
            float_line, float_ms = paper_float32_row(baseline_info["model"], args.paper_export)
        except BuildError as exc:
            print(f"model_card: error: {exc}", file=sys.stderr)
            return 2
        table += [float_line, line]
        reference = float_ms if float_ms is not None else \
            baseline_info["model"].manifest.extra["validation_metrics"]["float32"]["inference_ms_1thread"]
        speed = (f"\nThe compact int8 model runs **{reference / main_info['ms']:.0f}x faster** than the paper CNN's float32 "
                 f"TFLite ({main_info['ms']:.2f} ms against {reference:.2f} ms) and **{baseline_info['ms'] / main_info['ms']:.0f}x faster** "
                 f"than its int8 conversion ({baseline_info['ms']:.2f} ms), and its file is "
                 f"{baseline_info['size'] / main_info['size']:.0f}x smaller than the paper CNN's int8 file.\n")
    elif args.paper_export is not None:
        print("model_card: error: --paper-export needs models/baseline/paper_int8.tflite (build it first)", file=sys.stderr)
        return 2
    else:
        table.append("| Paper CNN reproduced here | 19,264,322 | not trained yet | | | | | | |")
    table.append(main_line)
    td = m.extra.get("source_export", {}).get("training_data") or {}
    text = f"""# Model card: melanoma_int8

**Intended use.** An aid for community health workers deciding whether a patient's skin lesion
should be seen by a doctor. It is **not a diagnosis**: it never tells a patient they have, or do not
have, melanoma. A "refer" result means "see a doctor soon"; a "low" result does not mean harmless,
and any lesion that changes, bleeds, itches or worries the patient should be seen regardless.

**Not for**: diagnosing, excluding cancer, children's lesions, mucosal, nail or acral lesions
without a doctor, or any use where a missed melanoma would not be caught by follow-up.

## Training data and its limits

- Kaggle "Melanoma Skin Cancer Dataset of 10000 Images", training split only ({td.get('train_images', '?')} images for
  training, {td.get('validation_images', '?')} for validation; split stratified, seed {td.get('seed', '?')},
  byte-identical files kept on one side). The dataset's official 1,000-image test split was not used
  for anything here: it is held back for independent evaluation.
- The images are **dermoscopic** (taken through a dermatoscope) and derive from the ISIC archive,
  i.e. mostly from **light-skinned patients (Fitzpatrick I-III)** in Europe, the Americas and Australia.
- **Not validated** on Filipino skin types (Fitzpatrick III-V), on plain (non-dermoscopic) camera
  photos, or on the Pi camera with a clip-on lens. Performance there is unknown and may be worse;
  a local validation study with dermatologist-confirmed outcomes is needed before relying on it.
- Labels are benign / malignant as given by the dataset; lesion subtypes are not distinguished.

## Model

- Architecture: {m.extra.get('architecture')} ({m.extra.get('parameters', 0):,} parameters), trained from scratch.
- Input: {m.input_width}x{m.input_height} RGB, uint8, prepared by the kiosk's preprocessing recipe
  `{m.preprocessing_recipe}` (lesion crop, Shades of Gray colour constancy) -- the same function at
  training, evaluation and screening time.
- Full-integer int8 (uint8 input and output), {main_info['size'] / 1024:.0f} KiB, sha256 `{m.sha256}`.

## Threshold

The kiosk says **refer** when the malignant probability is at least **{m.threshold:.4f}**. The rule:
the highest threshold whose sensitivity on the validation split is at least 95%, because a missed
melanoma costs far more than an extra referral. This trades specificity for sensitivity: more
benign lesions are referred than at the 0.5 (argmax) cut-off.

## Validation results ({vm['validation_images']} validation images, 95% Wilson intervals)

- int8 AUC **{vm['int8']['auc']:.4f}** (float32 {vm['float32']['auc']:.4f}); int8 loses
  {vm['int8_accuracy_loss_points']:.2f} accuracy points against float32.
- At the threshold: sensitivity {pct(vm['int8']['at_threshold']['sensitivity'])}{ci(vm['int8']['at_threshold'].get('sensitivity_ci95'))},
  specificity {pct(vm['int8']['at_threshold']['specificity'])}{ci(vm['int8']['at_threshold'].get('specificity_ci95'))},
  accuracy {pct(vm['int8']['at_threshold']['accuracy'])}.
- At argmax (0.5): accuracy {pct(vm['int8']['argmax']['accuracy'])}{ci(vm['int8']['argmax'].get('accuracy_ci95'))},
  sensitivity {pct(vm['int8']['argmax']['sensitivity'])}, specificity {pct(vm['int8']['argmax']['specificity'])}.

These are validation numbers: the threshold was chosen on the same split, so expect somewhat lower
sensitivity on new data. Independent evaluation on the held-back test split is pending.

## Comparison with the seed paper

{chr(10).join(table)}
{speed}
Inference: median of 200 runs of the TFLite model through `kiosk.model.Model` ({model.runtime},
1 thread) on {platform.machine()} ({platform.processor() or 'CPU'}), measured {date.today().isoformat()} while
writing this card. The paper's numbers are as published (its own test protocol); ours are on our
validation split.
"""
    atomic_write_bytes(args.models / "MODEL_CARD.md", text.encode())
    print(f"wrote {args.models / 'MODEL_CARD.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
