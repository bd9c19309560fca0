"""Training, top to bottom: data -> batches -> model -> fit with callbacks -> export -> score.

One call, `train(TrainConfig)`, produces a run folder that holds everything needed to
resume, evaluate, export or ship the model.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..config import DISTILL_MODES, TRAIN_VIEWS, TrainConfig
from ..data import FaceDataset, class_weights, default_splits, load_dataset
from ..data.augment import Augmentation
from ..data.dataset import check_holdout
from ..errors import DataError, FerkitError, MediaError
from ..files import check_output_folder
from ..labels import CLASS_NAMES
from .backend import setup_keras
from .export import CHECKPOINT_FILE, export_run, record_unscored, score_run

AUGMENTATIONS = {
    "none": None,
    "standard": Augmentation(),
    "strong": Augmentation(rotation=15, shift=0.12, zoom=0.15, erase=0.5),
    # strong + the lighting, resolution and compression of real photos and footage (bench/bench_robustness.py)
    "real": Augmentation(rotation=15, shift=0.12, zoom=0.15, erase=0.5, brightness=0.15, contrast=0.3, lowres=0.3,
                         jpeg=0.2),
}
BACKUP_DIR = "backup"  # BackupAndRestore's state for --resume; removed when the run completes
# Written when fit returns: BackupAndRestore deletes its state then, so a run stopped during the export would
# otherwise resume from epoch 1. A --resume that finds it goes straight to the export.
FIT_DONE = "fit.done"
# What --resume may change: the run's folder (found already), and --epochs (a run cut short or extended, as m25 was)
RESUME_MAY_CHANGE = ("resume", "out", "name", "epochs", "jit_compile")
PATH_FIELDS = ("data", "ferplus_votes", "init", "teacher")


def run_folder(cfg: TrainConfig) -> Path:
    """--out/--name; by default <model>-<labels>[-soft][-fp<weight>]-s<seed>, so runs on other targets differ."""
    if cfg.name:
        return Path(cfg.out) / cfg.name
    soft = "-soft" if cfg.labels == "ferplus" and cfg.ferplus_mode == "soft" else ""
    weight = f"-fp{cfg.ferplus_weight:g}" if cfg.ferplus_weight else ""
    return Path(cfg.out) / f"{cfg.model}-{cfg.labels}{soft}{weight}-s{cfg.seed}"


@contextmanager
def signals_deferred():
    """SIGINT and SIGTERM held back until the block ends, then delivered: Python drops an exception raised in a GC
    callback (printing "Exception ignored"), so a Ctrl-C landing in one would not stop the run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def same_path(recorded: str, given: str) -> bool:
    try:
        return recorded == given or Path(recorded).resolve() == Path(given).resolve() or os.path.samefile(
            recorded, given)
    except OSError:
        return False


def resume_differences(recorded: dict, cfg: TrainConfig) -> list[str]:
    """The flags of this --resume that differ from the run's recorded settings (train_config.json), as
    "--flag now (the run has then)"; settings the record does not hold (older runs) are not compared."""
    given, differences = asdict(cfg), []
    for key, then in recorded.items():
        if key not in given or key in RESUME_MAY_CHANGE:
            continue
        now = given[key]
        if now == then or (key in PATH_FIELDS and now and then and same_path(then, now)):
            continue
        differences.append(f"--{key.replace('_', '-')} {now} (the run has {then})")
    return differences


def check_resume(run_dir: Path, cfg: TrainConfig) -> dict:
    """The run's recorded train_config.json, once this --resume is known to continue it as it started."""
    try:
        recorded = json.loads((run_dir / "train_config.json").read_text())
    except (OSError, ValueError):
        raise FerkitError(f"{run_dir}: its train_config.json is missing or damaged, so --resume cannot check that "
                          "it continues the same run; start a new one with --name") from None
    differences = resume_differences(recorded, cfg)
    if differences:
        raise FerkitError(f"{run_dir}: --resume continues the run as it started, but {'; '.join(differences)}; "
                          f"resume with the run's own command plus --resume: {recorded.get('command', '?')}")
    return recorded


def first_rows(dataset: FaceDataset, limit: int | None) -> FaceDataset:
    return dataset if not limit else dataset.select(np.arange(len(dataset)) < limit)


def schedule_of(cfg: TrainConfig, spec) -> str:
    """The learning-rate schedule a run uses: --schedule, or the model family's own."""
    return cfg.schedule or spec.schedule


def early_stopping_patience(cfg: TrainConfig, spec) -> int:
    """Epochs without improvement before stopping (0: never): 10 by default on a plateau schedule, never on
    a cosine one, whose low-rate tail is planned; an explicit --early-stopping wins either way."""
    if cfg.early_stopping is not None:
        return cfg.early_stopping
    return 0 if schedule_of(cfg, spec) == "cosine" else 10


# Each optimizer's decay in the families designed for it (medium, compact): SGD's L2 form and AdamW's decoupled
# form differ by two orders of magnitude, so --optimizer on a family built for the other one takes these.
OPTIMIZER_DECAY = {"sgd": 5e-4, "adamw": 0.05}


def optimizer_settings(cfg: TrainConfig, spec) -> dict:
    """What the run trains with, the model family's own values filled in where the flags left them: recorded in
    metrics.json and the card (train_config.json keeps the flags as given, null for "the model's own")."""
    optimizer = cfg.optimizer or spec.optimizer
    decay = spec.weight_decay if spec.optimizer == optimizer else OPTIMIZER_DECAY.get(optimizer, 0.0)
    return {"optimizer": optimizer, "learning_rate": cfg.learning_rate or spec.learning_rate,
            "schedule": schedule_of(cfg, spec), "weight_decay": decay if optimizer != "adam" else 0.0,
            "label_smoothing": spec.label_smoothing}


def make_optimizer(keras, spec, cfg: TrainConfig, steps_per_epoch: int):
    settings = optimizer_settings(cfg, spec)
    learning_rate, optimizer, decay = settings["learning_rate"], settings["optimizer"], settings["weight_decay"]
    if settings["schedule"] == "cosine":
        warmup = steps_per_epoch  # one epoch of linear warm-up
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate * 0.1, decay_steps=max(1, cfg.epochs * steps_per_epoch - warmup), alpha=0.01,
            warmup_target=learning_rate, warmup_steps=warmup)
    ema = {"use_ema": True, "ema_momentum": cfg.ema} if cfg.ema else {}
    if optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True, weight_decay=decay or None, **ema)
    if optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=decay, **ema)
    return keras.optimizers.Adam(learning_rate, **ema)


def load_initial_weights(model, spec: str) -> None:
    """Fine-tuning: copy a trained model's weights (model.weights.h5 in its folder) into `model`."""
    from ..inference.classifier import WEIGHTS_FILE, resolve_model

    folder = resolve_model(spec)
    weights = folder / WEIGHTS_FILE if folder.is_dir() else folder.with_name(WEIGHTS_FILE)
    if not weights.is_file():
        raise FerkitError(f"--init {spec}: no {WEIGHTS_FILE} beside the model (an ensemble cannot be fine-tuned)")
    try:
        with warnings.catch_warnings():
            # Keras only warns when it skips layers it cannot match: a half-loaded net is an error here
            warnings.simplefilter("error", UserWarning)
            model.load_weights(weights)
    except (ValueError, UserWarning) as error:  # Keras names the first layer whose shapes or count differ
        from ..inference.classifier import run_config

        # only once Keras refused (`medium` weights fit `medium64`), and in the run's own terms where it recorded
        # them: Keras's talk of nested containers misleads
        trained = run_config(weights.parent).get("model")
        if isinstance(trained, str) and trained != model.name:
            raise FerkitError(f"--init {spec}: a `{trained}` run; its weights do not fit --model {model.name}") from None
        raise FerkitError(f"--init {spec}: its weights do not fit --model {model.name}: "
                          f"{str(error).splitlines()[0]}") from None


def class_counts(targets: np.ndarray, weights: np.ndarray | None) -> list[float]:
    """Each class's faces in what the net learns from: its targets summed, each face by its sample weight
    (`--class-weights` makes them equal). A uniform prior divides by these shares (`--uniform-prior`)."""
    totals = (targets if weights is None else targets * weights[:, None]).sum(axis=0, dtype=np.float64)
    return [round(float(total), 2) for total in totals]


def teacher_targets(teacher: str, faces: np.ndarray, onehot: np.ndarray, weight: float) -> np.ndarray:
    """Distillation targets: the teacher's probabilities mixed with the true labels."""
    from ..inference.classifier import FacialExpressionModel

    probs = FacialExpressionModel.load(teacher).predict_proba(faces)
    return (weight * probs + (1 - weight) * onehot).astype(np.float32)


def train(cfg: TrainConfig, command: str = "") -> dict:
    """Train, export and score one run; the caller's Keras dtype policy is back as it was afterwards."""
    keras = setup_keras(None)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(cfg.precision)
    try:
        return _train(cfg, command, keras)
    finally:  # on errors too: a library call must not leave the process in mixed precision
        keras.config.set_dtype_policy(previous)


def _train(cfg: TrainConfig, command: str, keras) -> dict:
    started = time.time()
    from ..models import create_model, get_spec
    from ..models.layers import averaged_views
    from .batches import FaceBatches
    from .callbacks import Counters, EpochSeconds, LivePlot, RandomState, ReseedBatches, read_history

    spec = get_spec(cfg.model)
    if cfg.augment not in AUGMENTATIONS:
        raise FerkitError(f"unknown augmentation {cfg.augment!r} (expected {', '.join(AUGMENTATIONS)})")
    if cfg.distill_mode not in DISTILL_MODES:
        raise FerkitError(f"unknown distillation mode {cfg.distill_mode!r} (expected {' or '.join(DISTILL_MODES)})")
    if cfg.distill_mode == "consistent" and not cfg.teacher:
        raise FerkitError("--distill-mode consistent needs --teacher MODEL (the model whose scores are the targets)")
    if cfg.views not in TRAIN_VIEWS:
        raise FerkitError(f"--views {cfg.views}: expected {' or '.join(map(str, TRAIN_VIEWS))}")
    check_holdout(cfg.holdout)
    if cfg.no_publictest and not cfg.holdout:
        raise FerkitError("--no-publictest needs --holdout > 0: with 0 the reported split picks every epoch")
    if cfg.name is not None and (Path(cfg.name).name != cfg.name or cfg.name in ("", ".", "..")):
        # a name with a separator or '..' would put the run outside --out (--name ../../x wrote /x)
        raise FerkitError(f"--name {cfg.name!r}: a run folder's name, without '/' (--out says where it goes)")
    run_dir = run_folder(cfg)
    check_output_folder(run_dir)
    started_before = run_dir.is_dir() and any(run_dir.iterdir())
    if cfg.resume and not started_before:  # a mistyped --name or --out: it would start afresh, saying nothing
        raise FerkitError(f"{run_dir}: no interrupted run to resume there (drop --resume to start one)")
    if started_before and not cfg.resume:
        raise FerkitError(f"{run_dir} already holds a run: pass --resume to continue it, or --name for a new one")
    if cfg.resume and (run_dir / "metrics.json").exists() and not (run_dir / BACKUP_DIR).exists():
        # a finished run has no BackupAndRestore state left: resuming would silently restart from scratch
        raise FerkitError(f"{run_dir} holds a finished run: there is nothing to resume; use --name for a new run")
    recorded = check_resume(run_dir, cfg) if cfg.resume else {}
    # the card and train_config.json keep the command that started the run; the resumes are listed beside it
    resumed_with = [*recorded.get("resumed_with", []), command] if cfg.resume else []
    command = recorded.get("command", command) if cfg.resume else command

    from ..inference.classifier import resolve_model

    for name in (cfg.init, cfg.teacher):
        if name:
            resolve_model(name)  # a mistyped model fails before the data loads
    # 1. data
    dataset = load_dataset(cfg.data, cfg.labels, cfg.ferplus_votes, cfg.ferplus_mode,
                           ferplus_weight=cfg.ferplus_weight)
    train_split, val_split = default_splits(dataset) if not (cfg.train_split and cfg.val_split) else (None, None)
    train_split, val_split = cfg.train_split or train_split, cfg.val_split or val_split
    if str(train_split).lower() == str(val_split).lower():
        raise DataError(f"the training split and the reported split (--train-split, --val-split) are both "
                        f"{val_split}: the reported figure would be on faces the model learnt from; name two different "
                        "splits")
    train_set = first_rows(dataset.split(train_split), cfg.limit)
    test_set = first_rows(dataset.split(val_split), cfg.limit)  # scored once, at the end
    if cfg.holdout:
        train_set, val_set = train_set.holdout(cfg.holdout, cfg.holdout_seed)
        pick_split = f"{train_split} holdout ({cfg.holdout:.0%}, seed {cfg.holdout_seed})"
    else:
        val_set, pick_split = test_set, val_split
    reported = "left unscored: --no-publictest" if cfg.no_publictest else "scored at the end"
    print(f"data: {len(train_set)} training faces ({train_split}), {len(val_set)} validation faces "
          f"({pick_split}), {len(test_set)} faces {reported} ({val_split})")
    absent = [name for name, count in zip(CLASS_NAMES, train_set.one_hot().sum(axis=0)) if not count]
    if absent:  # a small --limit, or a tree without those folders: said, since the model will never predict them
        print(f"ferkit train: warning: no training faces of {', '.join(absent)}; the model cannot learn "
              f"{'it' if len(absent) == 1 else 'them'}", file=sys.stderr)

    # 2. batches
    targets = train_set.one_hot()
    teacher = None
    if cfg.teacher and cfg.distill_mode == "consistent":
        from ..inference.classifier import FacialExpressionModel

        teacher = FacialExpressionModel.load(cfg.teacher).predict_proba
    elif cfg.teacher:
        targets = teacher_targets(cfg.teacher, train_set.images, targets, cfg.distill_weight)
    weights = None
    if cfg.class_weights:
        per_class = class_weights(train_set.hard_labels)
        weights = np.asarray([per_class[c] for c in train_set.hard_labels], np.float32)
    train_batches = FaceBatches(train_set.images, targets, cfg.batch_size, AUGMENTATIONS[cfg.augment],
                                shuffle=True, seed=cfg.seed, sample_weights=weights, mixup=cfg.mixup,
                                teacher=teacher, distill_weight=cfg.distill_weight)
    val_batches = FaceBatches(val_set.images, val_set.one_hot(), 256, None, shuffle=False)

    # 3. model
    keras.utils.set_random_seed(cfg.seed)
    net = create_model(cfg.model)
    if cfg.init:
        load_initial_weights(net, cfg.init)
    model = averaged_views(net, cfg.views)  # what the loss and the holdout see; `net` is what is exported
    model.compile(optimizer=make_optimizer(keras, spec, cfg, len(train_batches)),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=spec.label_smoothing),
                  metrics=["accuracy"], jit_compile=cfg.jit_compile)
    if cfg.sam:
        from .sam import use_sam

        use_sam(model, cfg.sam)

    try:
        # only now: a bad --data, --init or --teacher leaves no empty run folder behind
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # what os.access cannot foresee: /proc, a full or read-only file system
        raise MediaError(f"{run_dir}: cannot be created ({exc.strerror or exc})") from None

    # 4. fit; on --resume, BackupAndRestore restores weights, optimizer and epoch
    history_csv = run_dir / "history.csv"
    past = read_history(history_csv) if cfg.resume else {}
    if not cfg.resume and history_csv.exists():
        history_csv.unlink()
    best_so_far = max(past.get("val_accuracy", []), default=None)
    patience = early_stopping_patience(cfg, spec)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / BACKUP_DIR)),
        RandomState(run_dir / BACKUP_DIR / "torch_random_state.pt"),  # saved with the backup, for Dropout's masks
        ReseedBatches(train_batches),
        # after the backup (which must hold the raw weights to resume), before the checkpoint (which keeps the average)
        *([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if cfg.ema else []),
        keras.callbacks.ModelCheckpoint(str(run_dir / CHECKPOINT_FILE), monitor="val_accuracy", mode="max",
                                        save_best_only=True, save_weights_only=True,
                                        initial_value_threshold=best_so_far),
        *([keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience)] if patience else []),
        EpochSeconds(),  # before the CSVLogger, which writes the logs it adds to
        keras.callbacks.CSVLogger(str(history_csv), append=cfg.resume),
        LivePlot(run_dir / "curves.png", f"{cfg.model} on {Path(cfg.data).name}", past),
    ]
    if schedule_of(cfg, spec) == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-6))
    counted = (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau)
    patient = [c for c in callbacks if isinstance(c, counted)]
    if patient:  # last: restores their counters after their own reset, saves them after their update
        callbacks.append(Counters(run_dir / BACKUP_DIR / "counters.json", patient))
    (run_dir / "train_config.json").write_text(json.dumps(
        {**asdict(cfg), "command": command, **({"resumed_with": resumed_with} if resumed_with else {}),
         "class_counts": class_counts(train_set.one_hot(), weights)}, indent=2))
    if (run_dir / FIT_DONE).exists():  # stopped during the export last time: the epochs are all there
        print(f"{run_dir}: training had finished; exporting its best epoch")
    else:
        # shuffle=False: FaceBatches shuffles its rows by (seed, epoch) itself; Keras would also shuffle the batches'
        # order from NumPy's global generator, which a resumed run re-seeds, so it would see other batches
        model.fit(train_batches, validation_data=val_batches, epochs=cfg.epochs, callbacks=callbacks,
                  verbose=1 if sys.stdout.isatty() else 2, shuffle=False)
        (run_dir / FIT_DONE).touch()

    # 5. export the best epoch and score it
    history = read_history(history_csv)
    val_acc = history.get("val_accuracy", [0.0])
    info = {
        "model": cfg.model, "parameters": int(model.count_params()), "data": str(cfg.data),
        "train_split": train_split, "val_split": val_split, "pick_split": pick_split, "pick_rows": len(val_set),
        "train_rows": len(train_set),
        "epochs_run": len(val_acc), "best_epoch": int(np.argmax(val_acc)) + 1,
        "pick_accuracy": round(max(val_acc), 4),
        # every invocation's epochs, across --resume (a history from before the column: this invocation's)
        "train_seconds": round(sum(history["epoch_seconds"]) if len(history.get("epoch_seconds", [])) == len(val_acc)
                               else time.time() - started),
        "hardware": f"{platform.machine()} CPU x{os.cpu_count()}", "command": command, "train": asdict(cfg),
        "optimizer": optimizer_settings(cfg, spec),
    }
    with signals_deferred():  # a Ctrl-C landing in a GC callback here would be printed and lost, not stop the run
        del model, net
        keras.backend.clear_session()
    export_run(run_dir, cfg.model, cfg.views)
    shutil.rmtree(run_dir / BACKUP_DIR, ignore_errors=True)
    if cfg.no_publictest:
        metrics = record_unscored(run_dir, info)
        (run_dir / FIT_DONE).unlink(missing_ok=True)
        print(f"{run_dir}: best epoch {info['best_epoch']}, {pick_split} accuracy {info['pick_accuracy']:.4f}; "
              f"{val_split} not scored (--no-publictest): ferkit evaluate --model {run_dir} --data {cfg.data} "
              f"--split {val_split}")
        return metrics
    metrics = score_run(run_dir, test_set.images, test_set.hard_labels, val_split, info)
    (run_dir / FIT_DONE).unlink(missing_ok=True)
    print(f"{run_dir}: best epoch {info['best_epoch']}, {val_split} accuracy {metrics['accuracy']:.4f} "
          f"(TTA {metrics['accuracy_tta']:.4f})")
    return metrics
