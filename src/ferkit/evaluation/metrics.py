"""Accuracy, per-class precision/recall/F1 and the confusion matrix, from labels alone (scikit-learn)."""

from __future__ import annotations

import numpy as np

from ..errors import FerkitError
from ..labels import CLASS_NAMES, NUM_CLASSES


def _sklearn_metrics():
    try:
        from sklearn import metrics
    except ImportError:  # scikit-learn comes with the train extra
        raise FerkitError("scoring a model needs scikit-learn: pip install \"ferkit[train]\"") from None
    return metrics


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    return _sklearn_metrics().confusion_matrix(true, predicted, labels=np.arange(num_classes)).astype(np.int64)


def classification_report(true: np.ndarray, predicted: np.ndarray, split: str = "") -> dict:
    """The JSON-ready summary that `ferkit evaluate --json` prints. Classes without faces score 0
    and are left out of the macro F1."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    n = len(true)
    matrix = confusion_matrix(true, predicted) if n else np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    support = matrix.sum(axis=1)
    if n:
        precision, recall, f1, _ = _sklearn_metrics().precision_recall_fscore_support(
            true, predicted, labels=np.arange(NUM_CLASSES), zero_division=0)
    else:
        precision = recall = f1 = np.zeros(NUM_CLASSES)
    return {
        "split": split,
        "n": n,
        "accuracy": float(np.trace(matrix) / n) if n else 0.0,
        "macro_f1": float(f1[support > 0].mean()) if (support > 0).any() else 0.0,
        "per_class": {
            name: {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4),
                   "support": int(s)}
            for name, p, r, f, s in zip(CLASS_NAMES, precision, recall, f1, support)
        },
        "classes": list(CLASS_NAMES),
        "confusion": matrix.tolist(),
    }


def format_report(report: dict) -> str:
    """A plain-text table of the report, for the terminal and model cards."""
    lines = [f"split {report['split']}: accuracy {report['accuracy']:.4f} on {report['n']} faces, "
             f"macro F1 {report['macro_f1']:.4f}", "",
             f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, row in report["per_class"].items():
        lines.append(f"{name:<10}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['f1']:>10.3f}{row['support']:>10d}")
    lines += ["", "confusion (rows true, columns predicted):", format_confusion(np.asarray(report["confusion"]))]
    return "\n".join(lines)


def format_confusion(matrix: np.ndarray) -> str:
    short = [name[:8] for name in CLASS_NAMES]
    lines = [" " * 10 + "".join(f"{s:>9}" for s in short)]
    for name, row in zip(short, matrix):
        lines.append(f"{name:<10}" + "".join(f"{v:>9d}" for v in row))
    return "\n".join(lines)
