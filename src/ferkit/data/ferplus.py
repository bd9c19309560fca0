"""FER+ crowd votes (fer2013new.csv), row-aligned with the FER2013 CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..labels import NUM_CLASSES
from .dataset import FaceDataset
from .fer2013 import open_text

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
# FER+ column -> FER2013 class id; contempt, unknown and NF have no FER2013 class.
FERPLUS_TO_CLASS = {"anger": 0, "disgust": 1, "fear": 2, "happiness": 3, "sadness": 4, "surprise": 5, "neutral": 6}
LABEL_MODES = ("majority", "soft")


def load_ferplus_votes(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(votes (N, 10) float32 in VOTE_COLUMNS order, usage (N,)); errors name file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (FER+ votes; --ferplus-votes names another)")
    votes, usage = [], []
    try:
        with open_text(path) as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in ("Usage", *VOTE_COLUMNS) if c not in header]
            if missing:
                raise DataError(f"{path}: line 1: missing FER+ column(s) {', '.join(missing)}")
            columns = [header.index(c) for c in VOTE_COLUMNS]
            i_usage = header.index("Usage")
            for line_no, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    votes.append([float(row[i]) for i in columns])
                except (ValueError, IndexError):
                    raise DataError(f"{path}: line {line_no}: votes must be numbers") from None
                usage.append(row[i_usage].strip())
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read as a CSV file ({exc})") from None
    if not votes:
        raise DataError(f"{path}: no rows")
    return np.asarray(votes, dtype=np.float32), np.asarray(usage)


def votes_to_labels(votes: np.ndarray, mode: str = "majority") -> tuple[np.ndarray, np.ndarray]:
    """(labels, keep mask). `majority`: arg-max over all ten columns, rows whose winner is
    contempt, unknown or not-a-face dropped. `soft`: vote distribution over the 7 classes,
    rows with no vote for any of them dropped."""
    if mode not in LABEL_MODES:
        raise DataError(f"unknown FER+ label mode {mode!r} (expected {' or '.join(LABEL_MODES)})")
    to_class = np.full(len(VOTE_COLUMNS), -1)
    for column, class_id in FERPLUS_TO_CLASS.items():
        to_class[VOTE_COLUMNS.index(column)] = class_id
    if mode == "majority":
        winners = to_class[votes.argmax(axis=1)]
        keep = winners >= 0
        return winners[keep].astype(np.int64), keep
    soft = np.zeros((len(votes), NUM_CLASSES), dtype=np.float32)
    for column, class_id in FERPLUS_TO_CLASS.items():
        soft[:, class_id] = votes[:, VOTE_COLUMNS.index(column)]
    totals = soft.sum(axis=1)
    keep = totals > 0
    return soft[keep] / totals[keep, None], keep


def aligned_votes(dataset: FaceDataset, votes_path: str | Path) -> np.ndarray:
    """The FER+ votes of `dataset`'s rows; the two files must have the same rows and splits."""
    votes, usage = load_ferplus_votes(votes_path)
    if len(votes) != len(dataset):
        raise DataError(
            f"{votes_path}: {len(votes)} rows but {dataset.source} has {len(dataset)}: "
            "FER+ votes must be row-aligned with the full FER2013 CSV"
        )
    mismatch = np.flatnonzero(usage != dataset.usage)
    if mismatch.size:
        row = int(mismatch[0])
        raise DataError(
            f"{votes_path}: line {row + 2}: Usage {str(usage[row])!r} does not match {dataset.source} "
            f"({str(dataset.usage[row])!r}): the files are not row-aligned"
        )
    return votes


def apply_ferplus(dataset: FaceDataset, votes_path: str | Path, mode: str = "majority") -> FaceDataset:
    """Replace FER2013 labels by FER+ labels."""
    labels, keep = votes_to_labels(aligned_votes(dataset, votes_path), mode)
    return FaceDataset(dataset.images[keep], labels, dataset.usage[keep], f"{dataset.source} + FER+ {mode}")


def mix_ferplus_votes(dataset: FaceDataset, votes_path: str | Path, weight: float) -> FaceDataset:
    """FER2013 labels as distributions with a `weight` share moved to the FER+ vote distribution:
    ten annotators' view of each face as an auxiliary target. Below 0.5, each row's arg-max stays its
    FER2013 label (so the holdout draw and every score are unchanged); rows with no vote for any of
    the seven classes keep their one-hot label."""
    if not 0 <= weight < 0.5:
        raise DataError(f"FER+ vote weight {weight}: expected a share from 0 to below 0.5, such as 0.3")
    if dataset.labels.ndim != 1:
        raise DataError(f"{dataset.source}: FER+ votes mix into FER2013 class labels, not into distributions")
    soft, keep = votes_to_labels(aligned_votes(dataset, votes_path), "soft")
    mixed = np.eye(NUM_CLASSES, dtype=np.float32)[dataset.labels]
    mixed[keep] = (1 - weight) * mixed[keep] + weight * soft
    return FaceDataset(dataset.images, mixed, dataset.usage, f"{dataset.source} + {weight:g} FER+ votes")
