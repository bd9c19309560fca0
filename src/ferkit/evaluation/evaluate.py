"""Score a model on one split of a data set: the report behind `ferkit evaluate`."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np

from ..data import FaceDataset, load_dataset
from ..errors import DataError
from ..files import atomic_output, check_output_folder
from ..inference.classifier import FacialExpressionModel
from .metrics import classification_report, format_report
from .plots import plot_confusion

# Evaluated by default, first present wins: FER2013's validation split, else an image tree's held-out one.
DEFAULT_EVAL_SPLITS = ("PublicTest", "test", "val", "validation")
TRAINING_SPLITS = ("Training", "train")
OUTPUT_FILES = ("confusion.png", "report.txt")


def evaluate(data: str | Path, model: str | Path = "default", split: str | None = None, labels: str | None = None,
             ferplus_votes: str | Path | None = None, tta: bool = False, out: str | Path | None = None,
             uniform_prior: bool = False) -> dict:
    """classification_report() of `model` on `split` against `labels` (default: the label set the model was
    trained on), plus "model", "labels", "tta" and "uniform_prior"; with `out`, also writes confusion.png and
    report.txt there."""
    # Anything printed on the way goes to stderr: `ferkit evaluate --json` owns stdout.
    with contextlib.redirect_stdout(sys.stderr):
        classifier = FacialExpressionModel.load(model)  # before the data: a wrong name fails fast
        if uniform_prior:
            classifier.class_shares()  # and a model whose class shares are unknown
        if out:  # and an unusable --out before a whole split is scored
            check_output_folder(out, OUTPUT_FILES)
        # a FER+ model is scored on FER+ labels unless told otherwise; an image tree's labels are its folder names
        labels = labels or ("fer2013" if Path(data).is_dir() else classifier.labels)
        dataset = load_dataset(data, labels, ferplus_votes)
        split = split or default_eval_split(dataset)
        subset = dataset.split(split)
        predicted = classifier.predict_proba(subset.images, tta=tta, uniform_prior=uniform_prior).argmax(axis=1)
        name = classifier.name if str(model) == "default" else str(model)  # say which model "default" is
        report = {**classification_report(subset.hard_labels, predicted, split), "model": name, "labels": labels,
                  "tta": tta, "uniform_prior": uniform_prior}
        if out:
            write_outputs(report, Path(out))
    return report


def model_heading(report: dict) -> str:
    """"model NAME, LABELS labels", and how it was run where that is not plain: "with TTA", "with a uniform prior".
    The labels are said: the same model and split read 60% or 85% by the label set scored against."""
    ways = [way for key, way in (("tta", "TTA"), ("uniform_prior", "a uniform prior")) if report.get(key)]
    return f"model {report['model']}, {report['labels']} labels{' with ' + ' and '.join(ways) if ways else ''}"


def default_eval_split(dataset: FaceDataset) -> str:
    """PublicTest, test, val or validation; a data set with a single split is scored on it, unless that split is
    one models train on (its figure would flatter the model: naming it with --split says that is meant)."""
    present = dataset.splits
    for name in DEFAULT_EVAL_SPLITS:
        if name in present:
            return name
    if len(present) == 1 and present[0] not in TRAINING_SPLITS:
        return present[0]
    if len(present) == 1:
        raise DataError(f"{dataset.source}: its only split is {present[0]}, the one models train on; "
                        f"score it anyway with --split {present[0]}")
    raise DataError(f"{dataset.source}: no evaluation split among {', '.join(present)}; choose one with --split")


def write_outputs(report: dict, out: Path) -> None:
    """confusion.png and report.txt in `out` (created), each complete or absent."""
    heading = model_heading(report)
    with atomic_output(out / OUTPUT_FILES[0]) as partial:
        plot_confusion(np.asarray(report["confusion"]), partial,
                       f"{Path(report['model']).name} on {report['split']} ({report['labels']} labels): "
                       f"{report['accuracy']:.2%}")
    with atomic_output(out / OUTPUT_FILES[1]) as partial:
        partial.write_text(f"{heading}\n{format_report(report)}\n")
