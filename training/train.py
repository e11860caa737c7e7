"""Train a screening model, resumably, and export it for deploy/build-model.

    python -m training.train --arch mobile --size 160 --epochs 40 --out runs/mobile160
    python -m training.train --out runs/mobile160 --resume      # carries on after a stop

Each epoch writes ``last.keras`` (weights + optimizer state) and ``state.json``
atomically, so a power cut or a session limit loses at most one epoch. The best
epoch by validation AUC is kept as ``best.keras``; training stops early when
the AUC has not improved for ``--patience`` epochs. ``metrics.csv`` and
``curves.png`` record the run; ``export/`` is the contract (see README.md).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from kiosk.metrics import binary_metrics, roc_auc
from kiosk.storage import atomic_write_bytes
from kiosk.vision.preprocess import DEFAULT_RECIPE, get_recipe

from .data import (
    DEFAULT_DATA,
    LABELS,
    PINNED_GROUPS,
    REPO_ROOT,
    list_samples,
    load_split,
    make_split,
    preprocessed_arrays,
    save_split,
)

EXPORT_FORMAT = "melanoma-kiosk-export/1"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, metrics, export)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with benign/ and malignant/")
    p.add_argument(
        "--arch",
        choices=["mobile", "paper", "lite"],
        default="mobile",
        help="lite: EfficientNet-Lite0 narrowed to --alpha (start it from ImageNet: training.lite and --init)",
    )
    p.add_argument("--size", type=int, default=160, help="input side in pixels")
    p.add_argument("--alpha", type=float, default=0.35, help="width multiplier (MobileNetV2, Lite0)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--patience", type=int, default=10, help="early stopping on validation AUC")
    p.add_argument(
        "--average-last",
        type=int,
        default=0,
        metavar="N",
        help="also try the average of the last N epochs' weights (SWA); exported if its validation AUC is higher",
    )
    p.add_argument(
        "--export-from",
        choices=("best", "last", "average"),
        default="best",
        help="the weights exported: the best epoch by validation AUC (or the --average-last mean where it scores "
        "higher), the last epoch's, or the --average-last mean regardless; given with --resume on a finished run, "
        "it exports that run again",
    )
    p.add_argument(
        "--paper-recipe",
        action="store_true",
        help="train as the paper: Adam 1e-3, no augmentation, every epoch (no early stop)",
    )
    p.add_argument(
        "--camera-aug",
        type=float,
        default=0.0,
        metavar="P",
        help="camera-domain augmentation (training.augment) of this share of training photos, before the kiosk's "
        "preprocessing; 0 = off",
    )
    p.add_argument(
        "--benign-blur",
        type=float,
        default=0.0,
        metavar="Q",
        help="with --camera-aug: this share of benign photos also gets a blur (defocus or motion), so that blur "
        "stops telling melanoma from benign as it does in the training photos (training.shortcuts)",
    )
    p.add_argument(
        "--retone",
        type=float,
        default=0.0,
        metavar="S",
        help="with --camera-aug: this share of photos (either label) also gets the skin re-toned darker "
        "(darker_skin or darker_whole), so that a darker surround stops reading as suspicious",
    )
    p.add_argument(
        "--consistency",
        type=float,
        default=0.0,
        metavar="L",
        help="with --camera-aug: each photo of a batch beside a copy of itself camera-augmented anew, and L x the "
        "Jensen-Shannon divergence between their predictions added to the loss (training.consistency); 0 = off",
    )
    p.add_argument(
        "--partner",
        choices=("camera", "view"),
        default="camera",
        help="with --consistency: the paired copy is camera-augmented anew (camera), or the same clean model input "
        "a quarter turn away, the augmentation layers still turning, mirroring and jittering each copy (view)",
    )
    p.add_argument("--recipe", default=DEFAULT_RECIPE, help="kiosk preprocessing recipe id")
    p.add_argument(
        "--teacher",
        type=Path,
        metavar="TARGETS.npz",
        help="distil: train towards these soft targets (python -m training.teacher) mixed with the labels",
    )
    p.add_argument(
        "--teacher-weight",
        type=float,
        default=0.5,
        metavar="B",
        help="with --teacher: the target is (1 - B) x the label + B x the teacher's probability",
    )
    p.add_argument(
        "--init",
        type=Path,
        metavar="MODEL.keras",
        help="start from these weights (same architecture and size; e.g. an earlier run's best.keras) "
        "with a fresh schedule: a warm restart",
    )
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument(
        "--split",
        choices=("dedup-v1", "legacy"),
        default="dedup-v1",
        help="dedup-v1: near-duplicate groups that span train and validation go wholly to training",
    )
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--cache", type=Path, default=REPO_ROOT / "cache")
    p.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0 = all cores)")
    p.add_argument(
        "--loader-threads",
        type=int,
        default=2,
        metavar="N",
        help="threads that camera-augment and preprocess photos beside training (a GPU machine's cores keep up)",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    config_path = out / "config.json"
    overrides: dict = {}
    if args.resume:
        if not config_path.exists():
            print(f"error: nothing to resume in {out} (no config.json)", file=sys.stderr)
            return 2
        saved = json.loads(config_path.read_text())
        given = argv if argv is not None else sys.argv
        # Only how long the run goes on (and what it tries at the end) may change, and where the
        # images are (a run trained on a GPU machine is exported here); the rest is its identity.
        overrides = {
            k: getattr(args, k)
            for k in ("epochs", "patience", "average_last", "export_from", "data", "cache", "loader_threads")
            if f"--{k.replace('_', '-')}" in given
        }
        # Defaults first: a run saved before an option existed resumes with that option's default.
        args = argparse.Namespace(
            **{
                **vars(args),
                **saved,
                "out": out,
                "resume": True,
                "data": Path(saved["data"]),
                "cache": Path(saved["cache"]),
                **overrides,
            }
        )
    elif (out / "state.json").exists():
        print(f"error: {out} already holds a run; use --resume or another --out", file=sys.stderr)
        return 2
    get_recipe(args.recipe)  # fail fast on a bad recipe id
    for option, share in (("--benign-blur", args.benign_blur), ("--retone", args.retone)):
        if not 0.0 <= share <= 1.0:
            print(f"error: {option} must be within 0..1, got {share}", file=sys.stderr)
            return 2
        if share > 0 and not args.camera_aug > 0:
            print(f"error: {option} needs --camera-aug (it is drawn with the camera augmentation)", file=sys.stderr)
            return 2
    if args.consistency < 0 or (args.consistency > 0 and (not args.camera_aug > 0 or args.paper_recipe)):
        print(
            "error: --consistency must be 0 or more and needs --camera-aug (the copies are drawn with it)",
            file=sys.stderr,
        )
        return 2
    if getattr(args, "loader_threads", 2) < 1:
        print(f"error: --loader-threads must be 1 or more, got {args.loader_threads}", file=sys.stderr)
        return 2
    if args.export_from == "average" and args.average_last < 2:
        print("error: --export-from average needs --average-last N of 2 or more", file=sys.stderr)
        return 2
    if args.resume and args.export_from == "last" and not (out / "last.keras").exists():
        print(f"error: cannot export the last epoch of {out}: last.keras is missing", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    saved_args = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("out", "resume")
    }
    atomic_write_bytes(config_path, json.dumps(saved_args, indent=1).encode())

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    # KERAS_BACKEND=jax or torch trains on a GPU machine that has no TensorFlow;
    # exporting (a TensorFlow SavedModel) then waits for a --resume under TensorFlow.
    on_tensorflow = keras.backend.backend() == "tensorflow"
    from .consistency import PairedConsistencyLoss  # importing it registers the loss, so saved runs load

    if on_tensorflow:
        import tensorflow as tf

        if args.threads:
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(args.seed)

    split_path = out / "split.json"
    if split_path.exists():
        train_samples, val_samples = load_split(split_path)
    else:
        samples = list_samples(args.data)
        # Near-duplicate groups kept on one side (training/README.md); --split legacy is the old split.
        train_samples, val_samples, split_id = make_split(
            args.data,
            samples,
            val_fraction=args.val_fraction,
            seed=args.seed,
            groups_file=None if args.split == "legacy" else PINNED_GROUPS,
        )
        save_split(split_path, train_samples, val_samples, split_id=split_id)
    print(f"train {len(train_samples)} / validation {len(val_samples)} images", file=sys.stderr)
    x_train, y_train = preprocessed_arrays(
        args.data, train_samples, size=args.size, recipe=args.recipe, cache_dir=args.cache
    )
    x_val, y_val = preprocessed_arrays(args.data, val_samples, size=args.size, recipe=args.recipe, cache_dir=args.cache)

    targets = np.eye(2, dtype=np.float32)[y_train]
    distilled_from = None
    if args.teacher is not None:
        from .teacher import load_targets

        if not 0.0 <= args.teacher_weight <= 1.0:
            print(f"error: --teacher-weight must be within 0..1, got {args.teacher_weight}", file=sys.stderr)
            return 2
        try:
            teacher, distilled_from = load_targets(Path(args.teacher), [s.path for s in train_samples])
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: --teacher {args.teacher}: {exc}", file=sys.stderr)
            return 2
        soft = np.stack([1.0 - teacher, teacher], axis=1)
        targets = ((1.0 - args.teacher_weight) * targets + args.teacher_weight * soft).astype(np.float32)
        distilled_from["weight"] = args.teacher_weight

    from .models import build_model

    paired = args.consistency > 0  # each batch: half as many photos, then their camera-augmented copies
    steps_per_epoch = int(np.ceil(len(x_train) / (args.batch // 2 if paired else args.batch)))
    last_path, best_path, state_path = out / "last.keras", out / "best.keras", out / "state.json"
    state = {"epoch": 0, "best_auc": -1.0, "best_epoch": 0, "history": []}
    saved_state = json.loads(state_path.read_text()) if args.resume and state_path.exists() else None
    # A run that stopped early is finished too, unless it is given more patience.
    finished = saved_state is not None and (
        saved_state["epoch"] >= args.epochs or (saved_state.get("stopped_early", False) and "patience" not in overrides)
    )
    if saved_state is not None and not finished and not last_path.exists():
        print(
            f"error: cannot resume {out}: last.keras is missing (only a finished run can be exported without it)",
            file=sys.stderr,
        )
        return 2
    if args.resume and saved_state is None and last_path.exists():
        print(f"error: cannot resume {out}: state.json is missing beside last.keras", file=sys.stderr)
        return 2
    if finished:
        # Every epoch ran (perhaps on another machine, which sent back only best.keras,
        # averaged.keras and the records): only the averaging check and the export are left.
        state = saved_state
        model = keras.models.load_model(best_path)
        print(f"all {state['epoch']} epochs done (best AUC {state['best_auc']:.4f}); exporting", file=sys.stderr)
    elif args.resume and last_path.exists():
        model = keras.models.load_model(last_path)
        state = saved_state
        state.pop("stopped_early", None)
        print(f"resuming after epoch {state['epoch']} (best AUC {state['best_auc']:.4f})", file=sys.stderr)
    else:
        model = build_model(args.arch, args.size, args.alpha)
        if args.init is not None:
            problem = load_initial_weights(model, Path(args.init))
            if problem:
                print(f"error: --init {args.init}: {problem}", file=sys.stderr)
                return 2
            state["initialised_from"] = initial_weights_record(Path(args.init))
        if distilled_from is not None:
            state["distilled_from"] = distilled_from
        pack = Path(args.data).parent / "pack.json"
        if pack.is_file():  # photos re-encoded to travel to a GPU machine (training.device_pack)
            record = json.loads(pack.read_text())
            state["trained_on_pack"] = {k: record.get(k) for k in ("encoding", "photo_bytes", "split_id")}
        if args.paper_recipe:
            optimizer = keras.optimizers.Adam(1e-3)
        else:
            schedule = keras.optimizers.schedules.CosineDecay(
                0.0,
                decay_steps=args.epochs * steps_per_epoch,
                warmup_target=args.lr,
                warmup_steps=2 * steps_per_epoch,
                alpha=0.01,
            )
            optimizer = keras.optimizers.AdamW(schedule, weight_decay=1e-4)
        smoothing = 0.0 if args.paper_recipe else 0.05
        model.compile(
            optimizer=optimizer,
            loss=PairedConsistencyLoss(weight=args.consistency, label_smoothing=smoothing)
            if paired
            else keras.losses.CategoricalCrossentropy(label_smoothing=smoothing),
            metrics=["accuracy"],
        )
    print(f"{model.name}: {model.count_params():,} parameters", file=sys.stderr)

    counts = np.bincount(y_train, minlength=2)
    class_weight = {i: len(y_train) / (2.0 * c) for i, c in enumerate(counts)}
    augment = None if args.paper_recipe else augmenter(args.size, seed=args.seed)

    camera = None
    if getattr(args, "camera_aug", 0.0) > 0 and not args.paper_recipe:
        from .augment import CameraAugment

        camera = CameraAugment(
            seed=args.seed, probability=args.camera_aug, benign_blur=args.benign_blur, retone=args.retone
        )

    def train_dataset(epoch: int):
        if camera is not None:
            return camera_batches(
                x_train,
                y_train,
                [args.data / s.path for s in train_samples],
                batch=args.batch,
                class_weight=class_weight,
                augment=augment,
                camera=camera,
                epoch=epoch,
                seed=args.seed + epoch,
                size=args.size,
                recipe=args.recipe,
                targets=targets,
                paired=paired,
                partner=getattr(args, "partner", "camera"),
                workers=getattr(args, "loader_threads", 2),
            )
        if not on_tensorflow:
            return shuffled_batches(
                x_train,
                y_train,
                batch=args.batch,
                class_weight=class_weight,
                augment=augment,
                seed=args.seed + epoch,
                targets=targets,
            )
        if distilled_from is not None:
            # Keras would weigh soft targets by their argmax, not the label: pass the label's weights instead.
            weights = np.array([class_weight[int(c)] for c in y_train], np.float32)
            ds = tf.data.Dataset.from_tensor_slices((x_train, targets, weights))
        else:
            ds = tf.data.Dataset.from_tensor_slices((x_train, targets))
        ds = ds.shuffle(len(x_train), seed=args.seed + epoch, reshuffle_each_iteration=False)
        ds = ds.batch(args.batch)
        ds = ds.map(lambda x, *rest: (tf.cast(x, tf.float32), *rest), num_parallel_calls=tf.data.AUTOTUNE)
        if augment is not None:
            ds = ds.map(lambda x, *rest: (augment(x, training=True), *rest), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(2)

    val_x_float = x_val.astype(np.float32)
    history_fields = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_auc", "seconds"]
    for epoch in range(state["epoch"] + 1, 1 if finished else args.epochs + 1):
        started = time.time()
        print(f"epoch {epoch}/{args.epochs}", file=sys.stderr)
        fit = model.fit(
            train_dataset(epoch),
            epochs=1,
            class_weight=class_weight if on_tensorflow and camera is None and distilled_from is None else None,
            verbose=2 if not sys.stderr.isatty() else 1,
        )
        recalibrate_batchnorm(model, x_train, seed=args.seed + epoch)
        probs = model.predict(val_x_float, batch_size=128, verbose=0)[:, 1]
        val_loss = float(keras.losses.CategoricalCrossentropy()(np.eye(2)[y_val], np.stack([1 - probs, probs], 1)))
        auc = roc_auc(y_val, probs)
        row = {
            "epoch": epoch,
            "loss": float(fit.history["loss"][-1]),
            "accuracy": float(fit.history["accuracy"][-1]),
            "val_loss": val_loss,
            "val_accuracy": float(np.mean((probs >= 0.5) == y_val)),
            "val_auc": auc,
            "seconds": round(time.time() - started, 1),
        }
        state["history"].append(row)
        print(
            "  " + "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
            file=sys.stderr,
        )
        if auc > state["best_auc"]:
            state["best_auc"], state["best_epoch"] = auc, epoch
            save_model_atomic(model, best_path)
        state["epoch"] = epoch
        state["trained_with"] = {
            "backend": keras.backend.backend(),
            "keras": keras.__version__,
            "device": training_device(keras),
        }
        if args.average_last and epoch > args.epochs - args.average_last:
            save_weights_atomic(model, out / "average" / f"epoch_{epoch:03d}.weights.h5")
        save_model_atomic(model, last_path)
        atomic_write_bytes(state_path, json.dumps(state, indent=1).encode())
        write_metrics_csv(out / "metrics.csv", state["history"], history_fields)
        plot_curves(out / "curves.png", state["history"])
        # The paper trained a fixed 20 epochs; its reproduction does too.
        if not args.paper_recipe and epoch - state["best_epoch"] >= args.patience:
            print(f"early stop: no AUC gain for {args.patience} epochs", file=sys.stderr)
            state["stopped_early"] = True
            atomic_write_bytes(state_path, json.dumps(state, indent=1).encode())
            break

    best = model if finished else keras.models.load_model(best_path)  # finished: model is best.keras
    probs = best.predict(val_x_float, batch_size=128, verbose=0)[:, 1]
    chosen = {"best_epoch": state["best_epoch"], "epochs_run": state["epoch"]}
    for key in ("initialised_from", "distilled_from", "trained_with", "trained_on_pack"):
        if key in state:
            chosen[key] = state[key]
    snapshots = sorted((out / "average").glob("epoch_*.weights.h5")) if args.average_last else []
    averaged_path = out / "averaged.keras"
    if len(snapshots) >= 2:
        averaged = average_weights(keras.models.load_model(last_path), snapshots)
        recalibrate_batchnorm(averaged, x_train, seed=args.seed)
        first, last = (int(p.name[6:9]) for p in (snapshots[0], snapshots[-1]))
        state["averaged"] = {"epochs": [first, last]}
        save_model_atomic(averaged, averaged_path)
    if "averaged" in state and averaged_path.exists():
        # Scored again here, so a run trained under another backend is judged where it is exported.
        averaged = keras.models.load_model(averaged_path)
        averaged_probs = averaged.predict(val_x_float, batch_size=128, verbose=0)[:, 1]
        auc = roc_auc(y_val, averaged_probs)
        first, last = state["averaged"]["epochs"]
        print(
            f"average of epochs {first}-{last}: validation AUC {auc:.4f} (best single epoch {state['best_auc']:.4f})",
            file=sys.stderr,
        )
        state["averaged"]["val_auc"] = auc
        atomic_write_bytes(state_path, json.dumps(state, indent=1).encode())
        best_auc = roc_auc(y_val, probs)
        if args.export_from == "average":
            best, probs = averaged, averaged_probs
            chosen["weights"] = (
                f"average of epochs {first}-{last}, as asked (validation AUC {auc:.4f}; the best epoch {best_auc:.4f})"
            )
        elif auc > best_auc and args.export_from == "best":
            best, probs = averaged, averaged_probs
            chosen["weights"] = f"average of epochs {first}-{last} (validation AUC {auc:.4f} > {best_auc:.4f})"
    elif args.export_from == "average":
        print(f"error: {out} has no averaged weights to export (too few epochs were kept)", file=sys.stderr)
        return 2
    if args.export_from == "last":
        # The epochs a camera-augmented fine-tune is meant to teach come after its best validation epoch
        # (often the first): measuring what they learnt needs their weights exported, not the best epoch's.
        best = keras.models.load_model(last_path)
        best_auc = roc_auc(y_val, probs)
        probs = best.predict(val_x_float, batch_size=128, verbose=0)[:, 1]
        chosen["weights"] = (
            f"the last epoch ({state['epoch']}), as asked (validation AUC {roc_auc(y_val, probs):.4f}; "
            f"the best, epoch {state['best_epoch']}, {best_auc:.4f})"
        )
    if not on_tensorflow:
        print(
            f"trained under {keras.backend.backend()}; export with TensorFlow: "
            f"python -m training.train --out {out} --resume",
            file=sys.stderr,
        )
        return 0
    split_hash = hashlib.sha256(json.dumps([s.path for s in val_samples]).encode()).hexdigest()
    training_data = {
        "source": "Kaggle 'Melanoma Skin Cancer Dataset of 10000 Images', training split (ISIC-derived dermoscopy)",
        "train_images": len(train_samples),
        "validation_images": len(val_samples),
        "validation_split_sha256": split_hash,
        # a split saved before split ids existed is the old one (training.data.split_samples)
        "split_id": json.loads(split_path.read_text()).get("split_id", "sha1-stratified-1234-0.15"),
        "class_counts_train": {LABELS[i]: int(np.sum(y_train == i)) for i in range(2)},
        "seed": args.seed,
    }
    export(
        best,
        out / "export",
        size=args.size,
        recipe=args.recipe,
        training_data=training_data,
        validation_metrics=binary_metrics(y_val, probs, threshold=0.5),
        extra=chosen,
        split_file=split_path,
    )
    weights = chosen.get("weights") or f"best epoch {state['best_epoch']}, validation AUC {roc_auc(y_val, probs):.4f}"
    print(f"exported {out / 'export'}: {weights}", file=sys.stderr)
    return 0


def training_device(keras) -> str:
    """What the epochs ran on, e.g. 'cpu' or 'gpu: NVIDIA H200', for the export's record."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            device = jax.devices()[0]
            return f"{device.platform}: {device.device_kind}"
        if backend == "torch":
            import torch

            return f"gpu: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"gpu: {gpus[0].name}" if gpus else "cpu"
    except Exception:  # noqa: BLE001 - a record, never a reason to stop training
        return "unknown"


def batchnorm_layers(model) -> list:
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found += batchnorm_layers(layer)
    return found


def recalibrate_batchnorm(model, images: np.ndarray, *, batches: int = 24, batch_size: int = 64, seed: int = 0) -> None:
    """Re-estimate BatchNorm statistics for the current weights on un-augmented training images.

    While the learning rate is high the weights move faster than the moving
    averages can follow, and a from-scratch MobileNet then predicts one constant
    at inference (measured here: validation AUC 0.47 after epoch 2, although the
    training-mode outputs were already informative). Averaging the batch
    statistics of a pass over training data makes inference match the weights.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(images), size=min(len(images), batches * batch_size), replace=False)
    try:
        for i, start in enumerate(range(0, len(picked), batch_size)):
            for layer in layers:
                layer.momentum = i / (i + 1)  # a plain running mean over the batches seen so far
            model(images[np.sort(picked[start : start + batch_size])].astype(np.float32), training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum


def augmenter(size: int, *, seed: int):
    """Dermoscopy-suited augmentation: any orientation, a little zoom, lamp and skin colour jitter."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            layers.RandomFlip("horizontal_and_vertical", seed=seed),
            layers.RandomRotation(0.5, fill_mode="reflect", seed=seed + 1),
            layers.RandomZoom((-0.2, 0.1), fill_mode="reflect", seed=seed + 2),
            layers.RandomBrightness(0.1, value_range=(0, 255), seed=seed + 4),
            layers.RandomContrast(0.15, value_range=(0, 255), seed=seed + 5),
            layers.RandomSaturation((0.4, 0.6), value_range=(0, 255), seed=seed + 6),
            layers.RandomHue(0.03, value_range=(0, 255), seed=seed + 7),
        ],
        name="augment",
    )


def shuffled_batches(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch: int,
    class_weight: dict,
    augment,
    seed: int,
    before_layers=None,
    workers: int = 1,
    targets: np.ndarray | None = None,
    paired: bool = False,
):
    """One epoch of (images, one-hot labels, class weights) batches for backends without tf.data.

    ``targets`` (N x 2): soft targets in place of the one-hot labels (distillation); the class weights
    still follow the labels. ``paired``: each batch holds ``batch // 2`` photos and then the same photos
    again (for ``before_layers`` to change, and the layers to transform independently), the layout
    ``training.consistency.PairedConsistencyLoss`` expects.

    The same shuffle rule and the same augmentation layers as the TensorFlow
    pipeline; the layers run on the backend's device, batch by batch.
    ``before_layers(images, picked)`` may change a batch in place first (camera_batches).
    """
    import keras

    augmented = compiled_augmenter(augment)
    photos = max(1, batch // 2) if paired else batch

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=workers, use_multiprocessing=False)
            self.order = np.random.default_rng(seed).permutation(len(x))
            self.weights = np.array([class_weight[i] for i in range(len(class_weight))], np.float32)

        def __len__(self):
            return int(np.ceil(len(x) / photos))

        def __getitem__(self, index):
            picked = self.order[index * photos : (index + 1) * photos]
            rows = np.concatenate([picked, picked]) if paired else picked
            images = x[rows].astype(np.float32)
            if before_layers is not None:
                before_layers(images, picked)
            if augmented is not None:
                images = augmented(images)
            wanted = np.eye(2, dtype=np.float32)[y[rows]] if targets is None else targets[rows]
            return images, wanted, self.weights[y[rows]]

    return Batches()


def camera_batches(
    x: np.ndarray,
    y: np.ndarray,
    paths: list[Path],
    *,
    batch: int,
    class_weight: dict,
    augment,
    camera,
    epoch: int,
    seed: int,
    size: int,
    recipe: str,
    targets: np.ndarray | None = None,
    paired: bool = False,
    partner: str = "camera",
    workers: int = 2,
):
    """One epoch of batches where a share of the photos are camera-augmented (training.augment).

    A photo picked for it is read again, changed as a camera would, and sent through the kiosk's
    own ``preprocess`` (its lesion crop sees the blurred, darker or smaller lesion, as in the
    kiosk); the others come from the preprocessed cache. The usual augmentation layers (flips,
    rotation, zoom, colour jitter) then run on the whole batch. Which photos and which changes is
    fixed by (seed, epoch, image index); ``workers`` threads (OpenCV releases the GIL). ``paired``
    (``--consistency``): each photo is followed, in the batch's second half, by a copy with a fresh draw of
    at least one family (``CameraAugment.partner_rng`` and ``partner_families``); with ``partner="view"`` by
    the photo's clean model input turned 90, 180 or 270 degrees (the batch's layers then transform both copies
    independently), so the pair differs in orientation and jitter only.
    """

    from kiosk.vision.loader import load_image
    from kiosk.vision.preprocess import preprocess

    def camera_step(images: np.ndarray, picked: np.ndarray) -> None:
        for j, i in enumerate(picked):
            rng = camera.rng(epoch=epoch, index=int(i))
            families = camera.families_for(rng, label=int(y[i]))
            photo = load_image(paths[i]) if families or (paired and partner == "camera") else None
            if families:
                images[j] = preprocess(camera.apply(photo, families, rng=rng), size=size, recipe=recipe)
            if paired and partner == "view":
                turns = 1 + int(camera.partner_rng(epoch=epoch, index=int(i)).integers(3))
                images[len(picked) + j] = np.rot90(images[len(picked) + j], turns).copy()
            elif paired:
                rng = camera.partner_rng(epoch=epoch, index=int(i))
                changed = camera.apply(photo, camera.partner_families(rng, label=int(y[i])), rng=rng)
                images[len(picked) + j] = preprocess(changed, size=size, recipe=recipe)

    return shuffled_batches(
        x,
        y,
        batch=batch,
        class_weight=class_weight,
        augment=augment,
        seed=seed,
        before_layers=camera_step,
        workers=workers,
        targets=targets,
        paired=paired,
    )


def compiled_augmenter(augment):
    """``augment(images, training=True)`` as one call; under JAX compiled once.

    Run eagerly, JAX would dispatch each of the layers' many small operations
    on its own; compiled, a batch is one call. The layers' random-seed state is
    passed through the compiled function and written back, so every batch
    still gets fresh transforms.
    """
    import keras

    if augment is None:
        return None
    if keras.backend.backend() != "jax":
        return lambda images: augment(images, training=True)
    import jax

    step = jax.jit(lambda values, images: augment.stateless_call([], values, images, training=True))

    def run(images):
        if not augment.built:
            augment.build((None, *images.shape[1:]))
        state = augment.non_trainable_variables  # the seed generators' states
        out, values = step([v.value for v in state], images)
        for variable, value in zip(state, values, strict=True):
            variable.assign(value)
        return out

    return run


def load_initial_weights(model, path: Path) -> str | None:
    """Copy the weights of the Keras model at ``path`` into ``model``; a one-line problem, or None."""
    import keras

    if not path.is_file():
        return "no such file"
    try:
        source = keras.models.load_model(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same one-line refusal
        return f"not a Keras model ({type(exc).__name__})"
    shapes = [tuple(w.shape) for w in source.weights]
    if (
        source.name != model.name
        or tuple(source.input_shape) != tuple(model.input_shape)
        or shapes != [tuple(w.shape) for w in model.weights]
    ):
        return (
            f"a different architecture ({source.name}, input {tuple(source.input_shape[1:])}) "
            f"from this run's ({model.name}, input {tuple(model.input_shape[1:])})"
        )
    model.set_weights(source.get_weights())
    return None


def initial_weights_record(path: Path) -> dict:
    """``{"path", "sha256"}`` of an ``--init`` model, plus ``recovered_from`` when training.recover made it.

    The recovery record beside the model (``NAME.json``) counts only while its
    hash matches the model's.
    """
    record = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    try:
        recovery = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return record
    if isinstance(recovery, dict) and recovery.get("sha256") == record["sha256"]:
        for key in ("recovered_from", "pretrained_from"):
            if key in recovery:
                record[key] = recovery[key]
    return record


def average_weights(model, snapshots: list[Path]):
    """``model`` with each weight replaced by its mean over the saved ``snapshots`` (stochastic weight averaging).

    BatchNorm statistics averaged this way do not match the averaged weights:
    re-estimate them (:func:`recalibrate_batchnorm`) before using the model.
    """
    total = None
    for path in snapshots:
        model.load_weights(path)
        weights = [np.asarray(w, np.float64) for w in model.get_weights()]
        total = weights if total is None else [t + w for t, w in zip(total, weights, strict=True)]
    model.set_weights([(t / len(snapshots)).astype(w.dtype) for t, w in zip(total, model.get_weights(), strict=True)])
    return model


def save_weights_atomic(model, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")  # keras wants the .weights.h5 ending on the temp file too
    model.save_weights(tmp)
    os.replace(tmp, path)


def save_model_atomic(model, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def write_metrics_csv(path: Path, history: list[dict], fields: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_bytes(path, buf.getvalue().encode())


def plot_curves(path: Path, history: list[dict]) -> None:
    """Accuracy and loss per epoch, like the paper's figures 7 and 8."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["accuracy"] for h in history], label="train")
    ax1.plot(epochs, [h["val_accuracy"] for h in history], label="validation")
    ax1.plot(epochs, [h["val_auc"] for h in history], label="validation AUC", linestyle="--")
    ax1.set(title="Accuracy", xlabel="epoch")
    ax1.legend()
    ax2.plot(epochs, [h["loss"] for h in history], label="train")
    ax2.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax2.set(title="Loss", xlabel="epoch")
    ax2.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def export(
    model,
    export_dir: Path,
    *,
    size: int,
    recipe: str,
    training_data: dict,
    validation_metrics: dict,
    extra: dict | None = None,
    split_file: Path | None = None,
) -> None:
    """Write the SavedModel + export.json contract, atomically (temp folder, then rename)."""
    import shutil

    tmp = export_dir.with_name(f".{export_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.export(str(tmp / "saved_model"), format="tf_saved_model", verbose=False)
    model.save(tmp / "model.keras")
    info = {
        "format": EXPORT_FORMAT,
        "architecture": model.name,
        "parameters": int(model.count_params()),
        "input": {
            "height": size,
            "width": size,
            "channels": 3,
            "channel_order": "RGB",
            "dtype": "float32",
            "value_range": [0, 255],
        },
        "labels": list(LABELS),
        "output": "softmax probabilities, one per label",
        "preprocessing_recipe": recipe,
        "training_data": training_data,
        "validation_metrics": validation_metrics,
        **(extra or {}),
        "git_commit": git_commit(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (tmp / "export.json").write_text(json.dumps(info, indent=1))
    if split_file is not None and split_file.exists():
        shutil.copy(split_file, tmp / "split.json")
    old = export_dir.with_name(f".{export_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if export_dir.exists():
        os.replace(export_dir, old)
    os.replace(tmp, export_dir)
    shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
