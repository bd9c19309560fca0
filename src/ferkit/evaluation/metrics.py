"""Accuracy, per-class precision/recall/F1 and the confusion matrix, from labels alone (numpy)."""

from __future__ import annotations

import numpy as np

from ..labels import CLASS_NAMES, NUM_CLASSES


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true), np.asarray(predicted)), 1)
    return matrix


def classification_report(true: np.ndarray, predicted: np.ndarray, split: str = "") -> dict:
    """The JSON-ready summary that `ferkit evaluate --json` prints."""
    matrix = confusion_matrix(true, predicted)
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    precision = np.divide(tp, predicted_count, out=np.zeros_like(tp), where=predicted_count > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(tp), where=denominator > 0)
    n = int(matrix.sum())
    return {
        "split": split,
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
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
