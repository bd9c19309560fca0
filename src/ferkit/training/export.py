"""Turn a run's best checkpoint into the files the product ships, and score it.

model.json (model.to_json()), model.weights.h5, model.onnx, metrics.json, confusion.png and
MODEL_CARD.md. The model is rebuilt in float32 first, so the exported architecture carries no
mixed-precision policy and Keras and ONNX give the same probabilities.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from ..evaluation.metrics import classification_report, format_report
from ..evaluation.plots import plot_confusion
from ..inference.classifier import CARD_FILE, JSON_FILE, METRICS_FILE, ONNX_FILE, WEIGHTS_FILE, FacialExpressionModel
from ..labels import IMAGE_SIZE
from .backend import setup_keras

CHECKPOINT_FILE = "checkpoint.weights.h5"  # best weights so far, written by ModelCheckpoint


def export_model(model, run_dir: Path) -> None:
    """Write model.json, model.weights.h5 and model.onnx for a float32 Keras model."""
    (run_dir / JSON_FILE).write_text(model.to_json())
    model.save_weights(run_dir / WEIGHTS_FILE)
    model(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), np.float32))  # export traces a called model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's tracer warns about every shape check it records
        model.export(str(run_dir / ONNX_FILE), format="onnx", verbose=False)


def export_run(run_dir: Path, model_name: str, views: int = 1) -> None:
    """The checkpoint's network as model.json, weights and ONNX; with views=2 the checkpoint holds the two-view
    training graph, whose one shared network is what gets exported."""
    keras = setup_keras("float32")
    from ..models import create_model
    from ..models.layers import averaged_views

    model = create_model(model_name)
    averaged_views(model, views).load_weights(run_dir / CHECKPOINT_FILE)
    export_model(model, run_dir)
    keras.backend.clear_session()


def duration(seconds: float) -> str:
    """"45 s", "12 min", "2.5 h": a card's training time, never "0 min"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def score_run(run_dir: Path, faces: np.ndarray, labels: np.ndarray, split: str, info: dict) -> dict:
    """Evaluate the exported ONNX model on a held-out split; write metrics.json, confusion.png, the card."""
    classifier = FacialExpressionModel(run_dir / ONNX_FILE)
    report = classification_report(labels, classifier.predict_proba(faces).argmax(1), split)
    tta = classification_report(labels, classifier.predict_proba(faces, tta=True).argmax(1), split)
    plot_confusion(np.asarray(report["confusion"]), run_dir / "confusion.png",
                   f"{info.get('model')} on {split}: {report['accuracy']:.2%}")
    return record_run(run_dir, info, report, tta["accuracy"])


def record_unscored(run_dir: Path, info: dict) -> dict:
    """metrics.json and the card of a run trained with --no-publictest: the reported split is left unscored."""
    return record_run(run_dir, info, None, None)


def record_run(run_dir: Path, info: dict, report: dict | None, accuracy_tta: float | None) -> dict:
    """metrics.json and MODEL_CARD.md of an exported run; `report` None: the reported split was not scored."""
    metrics = {**info, "evaluation": report, "accuracy": report and report["accuracy"], "accuracy_tta": accuracy_tta,
               "onnx_bytes": (run_dir / ONNX_FILE).stat().st_size, "exported": time.strftime("%Y-%m-%d %H:%M:%S")}
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    write_card(run_dir, metrics)
    return metrics


def picked_on_reported_split(metrics: dict) -> bool:
    return metrics.get("pick_split", metrics.get("val_split")) == metrics.get("val_split")


def pick_description(metrics: dict) -> str:
    if picked_on_reported_split(metrics):
        return f"`{metrics.get('val_split')}`"
    return f"`{metrics['pick_split']}` ({metrics.get('pick_rows', 0):,} faces, not trained on)"


def pick_note(metrics: dict) -> list[str]:
    """A warning on the card when the reported split also picked the best epoch."""
    if not picked_on_reported_split(metrics):
        return []
    return ["- Note: the reported split also picked the best epoch, so its accuracy is slightly optimistic; "
            "the withheld PrivateTest split is the independent score (train with `--holdout` > 0 to avoid this)."]


OPTIMIZER_NAMES = {"sgd": "SGD with Nesterov momentum 0.9", "adamw": "AdamW", "adam": "Adam"}


def optimizer_line(settings: dict | None) -> list[str]:
    """The card's optimizer line (none for runs recorded before metrics.json held the resolved settings)."""
    if not settings:
        return []
    schedule = ("cosine decay after one epoch of warm-up" if settings["schedule"] == "cosine"
                else "halved on a validation-loss plateau")
    return [f"- Optimizer: {OPTIMIZER_NAMES.get(settings['optimizer'], settings['optimizer'])}, learning rate "
            f"{settings['learning_rate']:g} ({schedule}), weight decay {settings['weight_decay']:g}; loss: "
            f"categorical cross-entropy, label smoothing {settings['label_smoothing']:g}."]


def write_card(run_dir: Path, metrics: dict) -> None:
    report = metrics["evaluation"]
    train = metrics.get("train", {})
    if report is None:  # --no-publictest: what the card would report is left for `ferkit evaluate`
        scored = (f"not scored on `{metrics.get('val_split')}` (trained with `--no-publictest`; "
                  f"`ferkit evaluate --model {run_dir} --data {metrics.get('data')}` scores it)")
        results = [f"- **{metrics.get('val_split')} accuracy: not scored yet** (`--no-publictest`); the best epoch "
                   f"read {metrics.get('pick_accuracy', 0):.2%} on {pick_description(metrics)}."]
        report_lines = []
    else:
        scored = f"scored on `{report['split']}` ({report['n']:,} faces)"
        results = [f"- **{report['split']} accuracy: {report['accuracy']:.2%}** (with test-time augmentation: "
                   f"{metrics['accuracy_tta']:.2%}); macro F1 {report['macro_f1']:.3f}.", *pick_note(metrics)]
        report_lines = ["```", format_report(report), "```", ""]
    lines = [
        f"# Model card: {run_dir.name}", "",
        f"- Architecture: `{metrics.get('model')}` ({metrics.get('parameters', 0):,} parameters), "
        "input 48x48 grayscale raw pixels (0..255), output 7 probabilities "
        "(angry, disgust, fear, happy, sad, surprise, neutral).",
        f"- Data: {metrics.get('data')} (labels: {train.get('labels', 'fer2013')}); "
        f"trained on `{metrics.get('train_split')}` ({metrics.get('train_rows', 0):,} faces), "
        f"best epoch chosen on {pick_description(metrics)}; {scored}.",
        f"- Command: `{metrics.get('command')}`",
        f"- Seed: {train.get('seed')}; precision {train.get('precision')}; batch size {train.get('batch_size')}; "
        f"augmentation {train.get('augment')}"
        + (f", mixup alpha {train['mixup']}" if train.get("mixup") else "")
        + ("; trained and picked as a two-view graph (the face and its mirror image, averaged)"
           if train.get("views", 1) == 2 else "")
        + (f"; distilled from `{train['teacher']}` ({train.get('distill_mode', 'fixed')}, weight "
           f"{train.get('distill_weight')})" if train.get("teacher") else "")
        + (f"; sharpness-aware (SAM, radius {train['sam']})" if train.get("sam") else "")
        + f"; class weights {train.get('class_weights')}.",
        *optimizer_line(metrics.get("optimizer")),
        f"- Epochs: {metrics.get('epochs_run')} run (of {train.get('epochs')} planned), best epoch "
        f"{metrics.get('best_epoch')}; training time {duration(metrics.get('train_seconds', 0))} "
        f"on {metrics.get('hardware', 'CPU')}.",
        *results,
        f"- Files: `model.json` + `model.weights.h5` (Keras), `model.onnx` ({metrics['onnx_bytes'] / 1e6:.1f} MB, "
        f"ONNX Runtime), `curves.png`, {'`confusion.png`, ' * bool(report)}`history.csv`, `metrics.json`.",
        "", *report_lines,
        "![training curves](curves.png)", "", *(["![confusion matrix](confusion.png)", ""] if report else []),
    ]
    (run_dir / CARD_FILE).write_text("\n".join(lines))
