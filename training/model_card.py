"""Write models/MODEL_CARD.md from the shipped manifests and fresh measurements.

    python -m training.model_card            # reads models/*.json, times each model here
    python -m training.model_card --paper-export runs/paper/export   # the paper's float32 from its run's export

Every number in the card comes from a manifest written by deploy/build-model
(validation metrics) or is measured when this runs (inference time, file size),
so the card cannot drift from the models beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

from kiosk.model import Model, sha256_of
from kiosk.storage import atomic_write_bytes

from .convert import (
    BuildError,
    convert,
    median_inference_ms,
    model_from_bytes,
    read_export,
)
from .recover import RecoveryError, recover

REPO_ROOT = Path(__file__).resolve().parent.parent
PAPER = {"accuracy": 0.9208, "precision": 0.9160, "recall": 0.9336, "size_mb": 73.5, "params": 19_264_322}


def pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def ci(pair) -> str:
    return "" if not pair else f" ({100 * pair[0]:.1f}-{100 * pair[1]:.1f})"


ROUNDS, REPEATS = 5, 60


def int8_loss_words(points: float) -> str:
    """'int8 loses 0.07 accuracy points against float32', or the gain when rounding went the other way."""
    if points >= 0:
        return f"int8 loses {points:.2f} accuracy points against float32"
    return f"int8 loses nothing: it is {-points:.2f} accuracy points above float32 (rounding noise)"


def exported_weights(run: dict) -> str:
    """Which weights a training run exported, from the manifest's ``training_run`` record."""
    if run.get("weights"):
        return run["weights"]
    if "best_epoch" in run:
        return f"the best epoch by validation AUC ({run['best_epoch']} of {run['epochs_run']})"
    return "the best epoch by validation AUC"


def training_run_line(run: dict) -> str:
    """A bullet saying which weights were exported and how they were trained ('' if unknown)."""
    if not run:
        return ""
    parts = [exported_weights(run)]
    if "recovered_from" in run.get("initialised_from", {}):
        source = run["initialised_from"]["recovered_from"]
        parts.append(
            f"a warm restart from the earlier shipped int8 model ({source.get('path')}, sha256 "
            f"{source.get('sha256', '?')[:12]}…), its weights dequantised and BatchNorms unfolded by training.recover"
        )
    elif "initialised_from" in run:
        source = run["initialised_from"]
        parts.append(
            f"a warm restart from the weights of an earlier run of this trainer "
            f"({source.get('copy_of', source.get('path'))}, sha256 {source.get('sha256', '?')[:12]}…)"
        )
    if "trained_with" in run:
        used = run["trained_with"]
        parts.append(f"epochs run with Keras {used.get('keras')} on {used.get('backend')} ({used.get('device')})")
    return "- Weights: " + "; ".join(parts) + ".\n"


def interleaved_ms(models: dict[str, Model]) -> dict[str, float]:
    """Inference ms per model: the lowest of ROUNDS medians of REPEATS runs, the models taking turns.

    Taking turns means a burst of other load on the machine hits every model
    alike, and the lowest median of several rounds is the least disturbed one,
    so the ratios between the models are fair.
    """
    rounds: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(ROUNDS):
        for name, model in models.items():
            rounds[name].append(median_inference_ms(model, repeats=REPEATS))
    return {name: min(values) for name, values in rounds.items()}


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's model name (timings differ by more than the ratios between models across CPUs)."""
    try:
        fields = [
            tuple(part.strip() for part in line.partition(":")[::2])
            for line in cpuinfo.read_text(errors="replace").splitlines()
        ]
    except OSError:
        fields = []
    # x86 says "model name" (its "model" is a number); a Raspberry Pi says "Model".
    for wanted in ("model name", "model"):
        for key, value in fields:
            if key.lower() == wanted and value and not value.isdigit():
                return value
    return platform.processor() or "CPU"


def row(name: str, model: Model, ms: float) -> str:
    vm = model.manifest.extra["validation_metrics"]["int8"]
    at, arg = vm["at_threshold"], vm["argmax"]
    size = model.path.stat().st_size
    return (
        f"| {name} | {model.manifest.extra.get('parameters', 0):,} | {pct(arg['accuracy'])}{ci(arg.get('accuracy_ci95'))} "
        f"| {pct(arg['precision'])} | {pct(arg['sensitivity'])} | {vm['auc']:.4f} "
        f"| {pct(at['sensitivity'])}{ci(at.get('sensitivity_ci95'))} / {pct(at['specificity'])}{ci(at.get('specificity_ci95'))} "
        f"| {size / 2**20:.2f} MiB | {ms:.2f} ms |"
    )


def targets_table(
    vm: dict,
    *,
    file_bytes: int,
    speedup: float | None,
    honest: dict | None = None,
    choice: dict | None = None,
    field: dict | None = None,
) -> str:
    """The project's targets for the kiosk's model, each with the measured value and met / NOT met.

    With ``honest`` (the manifest's near-duplicate-free re-measurement) and ``choice`` (its threshold
    record) the AUC, sensitivity and specificity targets are judged there (issue 11), not on the leaky split.
    """
    q = vm["int8"]
    rows = [("accuracy at argmax", ">= 93%", pct(q["argmax"]["accuracy"]), q["argmax"]["accuracy"] >= 0.93)]
    if honest and choice:
        rows += [
            ("AUC, honest split", ">= 0.975", f"{honest['auc']:.4f}", honest["auc"] >= 0.975),
            (
                "sensitivity at the threshold, honest split (lower 95% bound)",
                ">= 95%",
                f"{pct(choice['sensitivity'])} ({pct(choice['sensitivity_lower_bound_one_sided'])})",
                choice["sensitivity_lower_bound_one_sided"] >= 0.95,
            ),
            (
                "specificity at the threshold, honest split",
                ">= 80%",
                pct(choice["specificity"]),
                choice["specificity"] >= 0.80,
            ),
        ]
    else:
        rows += [
            ("AUC", ">= 0.975", f"{q['auc']:.4f}", q["auc"] >= 0.975),
            (
                "sensitivity at the threshold",
                ">= 95%",
                pct(q["at_threshold"]["sensitivity"]),
                q["at_threshold"]["sensitivity"] >= 0.95,
            ),
            (
                "specificity at the threshold",
                ">= 85%",
                pct(q["at_threshold"]["specificity"]),
                q["at_threshold"]["specificity"] >= 0.85,
            ),
        ]
    if field:
        middle = [r for r in field["rows"] if r["condition"] != "clean" and r["severity"] == 1]
        for key, what, (op, target) in (
            ("melanoma_low", "melanomas told low", ("<=", 0.05)),
            ("benign_pass_low", "passing benign told low", (">=", 0.60)),
            ("retake_rate", "photos sent back", ("<=", 0.30)),
        ):
            ok = [r for r in middle if (r[key] <= target if op == "<=" else r[key] >= target)]
            worst = max(middle, key=lambda r: r[key] if op == "<=" else -r[key])
            rows.append(
                (
                    f"field conditions, middle severity: {what}",
                    f"{op} {target:.0%} in every one",
                    f"{len(ok)} of {len(middle)} meet it; worst {worst['condition']} {pct(worst[key])}",
                    len(ok) == len(middle),
                )
            )
    rows += [
        (
            "int8 accuracy loss against float32",
            "<= 0.5 points",
            f"{vm['int8_accuracy_loss_points']:.2f} points",
            vm["int8_accuracy_loss_points"] <= 0.5,
        ),
        ("file size", "<= 2 MiB", f"{file_bytes / 2**20:.2f} MiB", file_bytes <= 2 * 2**20),
    ]
    if speedup is not None:
        rows.append(("speed against the paper CNN's float32 TFLite", ">= 10x", f"{speedup:.1f}x", speedup >= 10))
    lines = ["| target | wanted | measured | |", "|---|---|---|---|"]
    lines += [f"| {what} | {wanted} | {got} | {'met' if ok else '**NOT met**'} |" for what, wanted, got, ok in rows]
    return "\n".join(lines)


def field_table(field: dict) -> str:
    """The middle-severity rows of the field-conditions benchmark (training.field_bench) as markdown."""
    from .field_bench import markdown

    return markdown(field, severities=(1,))


def field_bench_section(field: dict, stem: str) -> str:
    """The card's field-conditions section from ``training.field_bench``'s JSON."""
    return f"""## Field conditions ({field["images"]} honest validation images, gate applied)

`python -m training.field_bench` corrupts {f"a seeded, stratified subset of the honest split ({field['per_class']} per class)" if field["per_class"] else "every image of the honest split"}
at three severities each and screens every copy through the kiosk's own `Screener` (gate, lesion
crop, colour constancy, int8 model; gate: {field["gate"]}). Middle severity below; every severity in
[`{stem}-report/field_bench.md`]({stem}-report/field_bench.md), plotted in
[`field_bench.png`]({stem}-report/field_bench.png). Sensitivity and specificity ignore the gate;
"melanomas told low" is of all melanomas, "passing benign told low" of the benign photos the gate accepts.
Targets: melanomas told low <= 5%, passing benign told low >= 60%, photos sent back <= 30%.

{field_table(field)}
How crude: the corruptions are synthetic. "darker_skin" re-tones pixels about as light as the typical skin
toward CIELAB targets for Fitzpatrick IV / V / VI (L* 55 / 42 / 30) and "darker_whole" moves the whole photo
by the same amount; real darker skin differs in texture, redness and in how its lesions look.
The skin-only re-toning can even leave the lesion lighter than its skin, which no pigmented lesion is:
measured by `python -m training.skin_proxy`, in 18% / 60% / 85% of the photos at type IV / V / VI. The
kiosk still refers most benign lesions on re-toned skin where the photo stays plausible (at type V, 87%).
"smaller" shrinks the photo onto skin continued from its border colours (no hair or pores). None of this
replaces real Pi-camera photos of real Filipino patients.
"""


def build_split_sha256(m) -> str | None:
    """The sha256 of the validation split deploy/build-model measured the model on."""
    sha: str | None = m.extra.get("source_export", {}).get("training_data", {}).get("validation_split_sha256")
    return sha


def built_on_honest_split(m) -> bool:
    """Whether deploy/build-model validated on the near-duplicate-free split (else the old, leaky one)."""
    honest = m.extra.get("honest_validation") or {}
    built = build_split_sha256(m)
    return built is not None and built == honest.get("split", {}).get("validation_split_sha256")


def field_guard_line(m) -> str:
    """The threshold section's line on ``training.field_guard``, when the manifest records it."""
    guard = m.extra.get("field_guard")
    if not guard:
        return ""
    shares = guard.get("families") or {}
    worst = max(shares, key=lambda family: shares[family]) if shares else None
    worst_words = f" (the most: {worst}, {pct(shares[worst])})" if worst else ""
    point = guard["clean_split_at_threshold"]
    limit = f"{100 * guard.get('max_low', 0.05):g}%"
    what = f"""each of the {guard.get("photos", "?")} honest validation melanomas outside the field bench, copied once
  under each camera family of `training.augment` and screened with the gate"""
    if guard.get("binding_family") is None:
        return f"""- The field guard (`training.field_guard`): {what}. At this threshold no family tells more than
  {limit} of them "low"{worst_words}, so the clean threshold stands.
"""
    return f"""- Lowered from {guard["clean_threshold"]:.4f} by the field guard (`training.field_guard`): {what}.
  {guard["binding_family"]} needed it; at this threshold no family tells more than {limit} of them
  "low"{worst_words}. On the clean honest split: sensitivity {pct(point["sensitivity"])}, specificity
  {pct(point["specificity"])}.
"""


def threshold_section(m) -> str:
    """How the threshold was chosen: the confident-sensitivity rule on the honest split when recorded."""
    choice, honest = m.extra.get("threshold_choice"), m.extra.get("honest_validation")
    if not (choice and honest):
        return f"""The kiosk says **refer** when the malignant probability is at least **{m.threshold:.4f}**. The rule:
the highest threshold whose sensitivity on the validation split is at least 95%, because a missed
melanoma costs far more than an extra referral. This trades specificity for sensitivity: more
benign lesions are referred than at the 0.5 (argmax) cut-off.
"""
    prev = m.extra.get("threshold_previous", {})
    sp, c = honest["split"], choice["confusion"]
    at_prev = honest["at_previous_threshold"]
    previous_line = ""
    if prev.get("threshold") is not None and prev["threshold"] != m.threshold:
        previous_line = f"""- The threshold shipped before, {prev["threshold"]:.4f} ("{prev.get("rule")}", chosen on the
  split that leaked), gives on the honest split sensitivity {pct(at_prev["sensitivity"])}{ci(at_prev["sensitivity_ci95"])}
  and specificity {pct(at_prev["specificity"])}{ci(at_prev["specificity_ci95"])}: below 95%.
"""
    build_line = (
        "- The manifest's `validation_metrics` are the build's numbers on the honest split, at this threshold.\n"
        if built_on_honest_split(m)
        else "- The manifest's `validation_metrics` are the build's numbers on the old, leaky split and its old threshold.\n"
    )
    return f"""The kiosk says **refer** when the malignant probability is at least **{m.threshold:.4f}**. The rule
(`{choice["method"]}`): {choice["rule"]}. A missed melanoma costs far more than an extra referral, and a
threshold chosen where the validation *estimate* is just 95% gives less than 95% on new lesions about half
the time; the lower confidence bound makes "sensitivity >= 95%" hold with 95% confidence for lesions
like the validation ones (not for other photos or skin: see the field conditions below).

- On the honest split ({sp["validation_images"]} images, {sp["melanomas"]} melanomas): sensitivity
  {pct(choice["sensitivity"])} ({c["tp"]} of {c["tp"] + c["fn"]}; exact 95% interval {ci(choice["sensitivity_ci95"])[2:-1]}%;
  one-sided lower 95% bound {pct(choice["sensitivity_lower_bound_one_sided"])}), specificity
  {pct(choice["specificity"])} ({c["tn"]} of {c["tn"] + c["fp"]}; {ci(choice["specificity_ci95"])[2:-1]}%).
{previous_line}{field_guard_line(m)}- Out-of-fold predictions (k-fold over near-duplicate groups) would also cover the model's own variance,
  but need k retrainings (about 170 s an epoch on this CPU, tens of epochs each); not done yet.
{build_line}"""


def honest_section(m) -> str:
    honest = m.extra.get("honest_validation")
    if not honest:
        return ""
    sp, d = honest["split"], honest["dedup"]
    rule = d["rule"]
    lines = [
        "## Honest validation (near-duplicate groups kept together; exact 95% intervals)",
        "",
        f"The training folder holds near-duplicates: the same lesion re-cropped, re-coloured or with hair removed. "
        f"`training.dedup` links two images when their DCT perceptual hashes (over flips and quarter turns) differ "
        f"in at most {rule['max_hash_distance']} of 64 bits or the cosine of their embeddings (the int8 model's own "
        f"`block_12` features, whitened) is at least {rule['min_cosine']}: {d['groups']} groups of 2 or more "
        f"({d['images_in_groups']} images, {d['pairs']} linked pairs) in the {sp['train_images'] + sp['validation_images']} "
        f"images. {sp['moved_to_train']} of the old split's validation images had a near-duplicate on the training side. "
        f"Split `{sp['id']}` moves every such group wholly to training, so validation is the old validation minus "
        f"those images: {sp['validation_images']} images ({sp['melanomas']} melanomas, {sp['benign']} benign), "
        f"sha256 `{sp['validation_split_sha256'][:16]}...`. The shipped model never trained on any of them.",
        "",
        f"- AUC **{honest['auc']:.4f}** (stratified bootstrap 95% interval {honest['auc_ci95_bootstrap'][0]:.4f}-"
        f"{honest['auc_ci95_bootstrap'][1]:.4f}).",
    ]
    for key, what in (("at_previous_threshold", "at the previous threshold"), ("at_argmax", "at argmax")):
        r = honest[key]
        if key == "at_previous_threshold" and r["threshold"] == m.threshold:
            continue  # the build already chose its threshold on this split
        lines.append(
            f"- {what} {r['threshold']:.4f}: sensitivity {pct(r['sensitivity'])}{ci(r['sensitivity_ci95'])}, "
            f"specificity {pct(r['specificity'])}{ci(r['specificity_ci95'])}."
        )
    choice = m.extra["threshold_choice"]
    lines.append(
        f"- at the shipped threshold {choice['threshold']:.4f}: sensitivity {pct(choice['sensitivity'])}"
        f"{ci(choice['sensitivity_ci95'])}, specificity {pct(choice['specificity'])}{ci(choice['specificity_ci95'])}."
    )
    rim = honest.get("auc_by_rim")
    if rim:
        w, wo = rim["with_rim"], rim["without_rim"]
        lines += [
            "",
            f"A dermatoscope's dark rim is a shortcut in this dataset, not a sign: it shows in "
            f"{w['melanomas']} of {sp['melanomas']} validation melanomas but {w['benign']} of {sp['benign']} benign "
            f"lesions, and a clip-on lens gives every kiosk photo one. Without a rim (the cue absent) the AUC is "
            f"{wo['auc']:.4f} ({wo['melanomas'] + wo['benign']} images); with one, {w['auc']:.4f} "
            f"({w['melanomas'] + w['benign']} images).",
        ]
    return "\n".join(lines) + "\n"


def recipe_lines(m) -> str:
    """The model card's words for the preprocessing, and any change since training."""
    from kiosk.vision.preprocess import get_recipe

    text = (
        f"prepared by the kiosk's preprocessing recipe\n  `{m.preprocessing_recipe}` "
        f"({get_recipe(m.preprocessing_recipe).describe()})"
    )
    change = m.extra.get("preprocessing_change")
    if not change:
        return text + " -- the same function at\n  training, evaluation and screening time."
    return text + (
        ", the same function at evaluation and\n"
        f"  screening time. The weights were trained with `{change['trained_with']}`; the two give the same input "
        "for a photo\n  within a stop of the training exposure and without a lens rim; every number below "
        "except the build-time\n  section was measured with the recipe served."
    )


def paper_float32_model(baseline: Model, export_dir: Path | None, workdir: Path) -> Model:
    """The reproduced paper CNN as float32 TFLite, converted again so it is timed in this process.

    The float32 file (about 73 MB) is not kept in the repository. It is rebuilt
    from the paper run's export, or without one from the int8 baseline's own
    weights, dequantised (``training.recover``): the same graph and tensor
    sizes, so the same time; only its time is used, never its outputs.
    """
    if export_dir is not None:
        read_export(export_dir)
        saved_model = export_dir / "saved_model"
    else:
        size = baseline.manifest.input_height
        rebuilt = recover(baseline.path, np.empty((0, size, size, 3), np.uint8))  # no BatchNorm: no images needed
        saved_model = workdir / "saved_model"
        rebuilt.export(str(saved_model), format="tf_saved_model", verbose=False)
    content = convert(saved_model, None)
    manifest = dataclasses.replace(
        baseline.manifest, input_dtype="float32", quantization={}, sha256=sha256_of(content), extra={}
    )
    return model_from_bytes(content, manifest, workdir, "paper_float32")


def paper_float32_row(baseline: Model, ms: float | None) -> str:
    """Metrics from the baseline's build; the time measured now, or else the build's own, labelled so."""
    vm = baseline.manifest.extra["validation_metrics"]["float32"]
    arg = vm["argmax"]
    when = f"{ms:.2f} ms" if ms is not None else f"{vm['inference_ms_1thread']:.2f} ms (at build)"
    return (
        f"| Paper CNN reproduced here, float32 TFLite | {baseline.manifest.extra.get('parameters', 0):,} "
        f"| {pct(arg['accuracy'])}{ci(arg.get('accuracy_ci95'))} | {pct(arg['precision'])} | {pct(arg['sensitivity'])} "
        f"| {vm['auc']:.4f} | not set (float) | {vm['file_bytes'] / 2**20:.2f} MiB | {when} |"
    )


#: Measured by training.notlesion and training.gate_check (hand-kept: it does not depend on the model build).
QUALITY_GATE_SECTION = """## Quality gate: photos that are not a lesion

The gate (`kiosk/vision/evidence.py`) also judges whether the photo shows a skin lesion at all; a
photo that fails that check can never be told "low" (it is sent back, or screened as **refer** with
reason `lesion_unclear`). On 177 generated photos that are not a lesion (`python -m
training.notlesion`: pen lines, creases, scars, text, forms, walls, blank, gradient and noise frames,
bare skin, scikit-image's bundled pictures with crops and rescales), the model shipped then (sha256
`3addf04ea81c...`) told **7 "low" before this check and none after**; the shipped model tells none
either (77 sent back, 91 referred as unclear, 9 referred by the model; measured 2026-12-02 with the
sharpness limit 20). On all 9,597 training images (`python -m training.gate_check`; the gate does not
depend on the model, the "would have referred" count does), photos sent back fell from 4.5% to 3.0% of
benign and from 2.4% to 0.5% of malignant when the check came (melanomas the model `3addf04ea81c...`
would have referred and the gate sent back: 108 before, 25 after); with the shipped model and the
sharpness limit 20 (was 25: it sent back 32% of photos at 1% defocus, 22% now) it is 149 benign (3.0%)
and 25 malignant (0.5%) sent back, 24 of them melanomas it would have referred. The price is 291 benign
(5.8%) referred as unclear. The limits sit near the 1st-5th percentile of these same images, so they
are not validated on new ones, nor on Pi-camera photos or darker skin.
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.model_card")
    p.add_argument("--models", type=Path, default=REPO_ROOT / "models")
    p.add_argument(
        "--paper-export",
        type=Path,
        help="the paper run's export folder to convert its float32 TFLite from "
        "(default: rebuilt from the int8 baseline's dequantised weights, the same graph)",
    )
    args = p.parse_args(argv)
    main_path = args.models / "melanoma_int8.tflite"
    baseline_path = args.models / "baseline" / "paper_int8.tflite"
    if not main_path.exists():
        print(f"model_card: error: {main_path} not found", file=sys.stderr)
        return 2
    if args.paper_export is not None and not baseline_path.exists():
        print(
            "model_card: error: --paper-export needs models/baseline/paper_int8.tflite (build it first)",
            file=sys.stderr,
        )
        return 2
    model = Model.load(main_path, threads=1)
    timed = {"compact": model}
    baseline = Model.load(baseline_path, threads=1) if baseline_path.exists() else None
    with tempfile.TemporaryDirectory() as tmp:
        if baseline is not None:
            timed["paper_int8"] = baseline
            try:
                timed["paper_float32"] = paper_float32_model(baseline, args.paper_export, Path(tmp))
            except BuildError as exc:
                print(f"model_card: error: {exc}", file=sys.stderr)
                return 2
            except RecoveryError as exc:  # without an export the build's own time is used, labelled so
                print(
                    f"model_card: the paper CNN's float32 time is the build's: cannot rebuild it ({exc})",
                    file=sys.stderr,
                )
        ms = interleaved_ms(timed)
    float32_from = ""
    if "paper_float32" in timed:
        source = (
            "its training run's export"
            if args.paper_export is not None
            else "the int8 baseline's own weights, dequantised: the same graph, so the same time"
        )
        float32_from = f" The paper CNN's float32 TFLite was converted again for this card, from {source}."
    m = model.manifest
    vm = m.extra["validation_metrics"]
    size = main_path.stat().st_size
    table = [
        "| model | parameters | accuracy (argmax) | precision (argmax) | recall (argmax) | AUC | sensitivity / specificity at threshold | file | inference, 1 thread |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| Paper CNN as published (Araneta 2025), float | {PAPER['params']:,} | {pct(PAPER['accuracy'])} | {pct(PAPER['precision'])} "
        f"| {pct(PAPER['recall'])} | not reported | not reported | {PAPER['size_mb']} MB | not reported |",
    ]
    speed, speedup = "", None
    if baseline is not None:
        table += [
            paper_float32_row(baseline, ms.get("paper_float32")),
            row("Paper CNN reproduced here, int8", baseline, ms["paper_int8"]),
        ]
        reference = (
            ms.get("paper_float32") or baseline.manifest.extra["validation_metrics"]["float32"]["inference_ms_1thread"]
        )
        speedup = reference / ms["compact"]
        speed = (
            f"\nThe compact int8 model runs **{speedup:.1f}x faster** than the paper CNN's float32 "
            f"TFLite ({ms['compact']:.2f} ms against {reference:.2f} ms) and **{ms['paper_int8'] / ms['compact']:.1f}x faster** "
            f"than its int8 conversion ({ms['paper_int8']:.2f} ms); its file is "
            f"{baseline_path.stat().st_size / size:.0f}x smaller than the paper CNN's int8 file and "
            f"{baseline.manifest.extra['validation_metrics']['float32']['file_bytes'] / size:.0f}x smaller than its float32 file.\n"
        )
        bvm = baseline.manifest.extra["validation_metrics"]
        run = baseline.manifest.extra.get("source_export", {}).get("training_run") or {}
        epochs = exported_weights(run)
        same_split = build_split_sha256(baseline.manifest) == build_split_sha256(m)
        split_words = (
            "validated on the same split as the compact model"
            if same_split
            else f"validated on the old {bvm.get('validation_images')}-image split (the compact model's row: the "
            f"{m.extra['validation_metrics'].get('validation_images')}-image honest split, so the two rows are not on "
            "the same images)"
        )
        speed += (
            f"\n**The paper CNN as reproduced here** was trained as the paper describes (its architecture, "
            f"224x224, Adam 1e-3, no augmentation, 20 epochs) on the same training images and {split_words}; "
            f"the weights kept are {epochs}. It reaches "
            f"{pct(bvm['float32']['argmax']['accuracy'])} validation accuracy in float32, well below the 92.08% the "
            f"paper reports on its own test protocol, and its int8 conversion loses "
            f"{bvm['int8_accuracy_loss_points']:.2f} accuracy points (AUC {bvm['float32']['auc']:.4f} -> "
            f"{bvm['int8']['auc']:.4f}). It was built with the int8 guard widened for this comparison model only; "
            f"the kiosk's own model must lose no more than 1 point.\n"
        )
    else:
        table.append("| Paper CNN reproduced here | 19,264,322 | not trained yet | | | | | | |")
    table.append(row("Compact model (this kiosk), int8", model, ms["compact"]))
    td = m.extra.get("source_export", {}).get("training_data") or {}
    field_path = args.models / f"{model.path.stem}-report" / "field_bench.json"
    field = json.loads(field_path.read_text()) if field_path.is_file() else None
    field_section = field_bench_section(field, model.path.stem) if field else ""
    text = f"""# Model card: melanoma_int8

**Intended use.** An aid for community health workers deciding whether a patient's skin lesion
should be seen by a doctor. It is **not a diagnosis**: it never tells a patient they have, or do not
have, melanoma. A "refer" result means "see a doctor soon"; a "low" result does not mean harmless,
and any lesion that changes, bleeds, itches or worries the patient should be seen regardless.

**Not for**: diagnosing, excluding cancer, children's lesions, mucosal, nail or acral lesions
without a doctor, or any use where a missed melanoma would not be caught by follow-up.

## Training data and its limits

- Kaggle "Melanoma Skin Cancer Dataset of 10000 Images", training split only ({td.get("train_images", "?")} images for
  training, {td.get("validation_images", "?")} for validation; split stratified, seed {td.get("seed", "?")},
  byte-identical files{
        " and near-duplicate groups" if built_on_honest_split(m) else ""
    } kept on one side). The dataset's official 1,000-image test split was not used
  for anything here: it is held back for independent evaluation.
- The images are **dermoscopic** (taken through a dermatoscope) and derive from the ISIC archive,
  i.e. mostly from **light-skinned patients (Fitzpatrick I-III)** in Europe, the Americas and Australia.
- **Not validated** on Filipino skin types (Fitzpatrick III-V), on plain (non-dermoscopic) camera
  photos, or on the Pi camera with a clip-on lens. Performance there is unknown and may be worse;
  a local validation study with dermatologist-confirmed outcomes is needed before relying on it.
  The field-conditions benchmark below only simulates camera, light and skin-tone shifts.
- **Acral sites** (palms, soles, nails): in East Asia about half of melanomas are acral, and the
  training data has almost none. The model has not been shown to work there.
- Near-duplicates: the same lesion appears more than once (re-cropped, re-coloured); the honest
  split below keeps such groups on one side. The build-time numbers further down do not.
- Labels are benign / malignant as given by the dataset; lesion subtypes are not distinguished.
- **Shortcuts in the training photos** (`python -m training.shortcuts`): the lesion filling the frame, a
  blurrier photo and a dermatoscope rim each tell melanoma from benign there on their own (AUC 0.755, 0.725,
  0.700). A kiosk photo that differs in them (a small lesion, a cheap lens) moves the answer, mostly toward refer.
  The rim is painted over by the preprocessing, and the model was fine-tuned with a quarter of the benign
  training photos blurred too (`training.train --benign-blur 0.25`); apparent size is still a cue.

## Model

- Architecture: {m.extra.get("architecture")} ({m.extra.get("parameters", 0):,} parameters), trained from scratch
  (no pretrained weights).
{training_run_line(m.extra.get("source_export", {}).get("training_run") or {})}- Input: {m.input_width}x{
        m.input_height
    } RGB, uint8, {recipe_lines(m)}
- Full-integer int8 (uint8 input and output), {size / 1024:.0f} KiB, sha256 `{m.sha256}`.

## Threshold

{threshold_section(m)}
{honest_section(m)}
{field_section}
## Validation results at build time ({vm["validation_images"]} images of the {
        "honest split" if built_on_honest_split(m) else "old split, which leaked"
    }; 95% Wilson intervals)

- int8 AUC **{vm["int8"]["auc"]:.4f}** (float32 {vm["float32"]["auc"]:.4f}); {
        int8_loss_words(vm["int8_accuracy_loss_points"])
    }.
- At the build's threshold {vm["int8"]["at_threshold"]["threshold"]:.4f}: sensitivity {
        pct(vm["int8"]["at_threshold"]["sensitivity"])
    }{ci(vm["int8"]["at_threshold"].get("sensitivity_ci95"))},
  specificity {pct(vm["int8"]["at_threshold"]["specificity"])}{ci(vm["int8"]["at_threshold"].get("specificity_ci95"))},
  accuracy {pct(vm["int8"]["at_threshold"]["accuracy"])}.
- At argmax (0.5): accuracy {pct(vm["int8"]["argmax"]["accuracy"])}{ci(vm["int8"]["argmax"].get("accuracy_ci95"))},
  sensitivity {pct(vm["int8"]["argmax"]["sensitivity"])}, specificity {pct(vm["int8"]["argmax"]["specificity"])}.

These are validation numbers: the threshold was chosen on the same split, so expect somewhat lower
sensitivity on new data. Independent evaluation on the held-back test split is pending.

## Targets

{
        targets_table(
            vm,
            file_bytes=size,
            speedup=speedup,
            honest=m.extra.get("honest_validation"),
            choice=m.extra.get("threshold_choice"),
            field=field,
        )
    }

## Comparison with the seed paper

{chr(10).join(table)}
{speed}
Inference: the lowest of {ROUNDS} medians of {REPEATS} runs each, the models taking turns, through
`kiosk.model.Model` ({model.runtime}, 1 thread) on {platform.machine()} ({cpu_name()}), measured {
        date.today().isoformat()
    } while
writing this card.{float32_from} The paper's numbers are as published (its own test protocol); ours are on our
validation split.

{QUALITY_GATE_SECTION}"""
    atomic_write_bytes(args.models / "MODEL_CARD.md", text.encode())
    print(f"wrote {args.models / 'MODEL_CARD.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
