"""The in-memory data set every loader returns: 48x48 uint8 faces, labels and split names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError, FerkitError
from ..labels import CLASS_NAMES, NUM_CLASSES


def check_holdout(holdout: float) -> None:
    """--holdout, for `train` and `calibrate` alike: a share from 0 to below 1 (NaN is none of these)."""
    if not 0 <= holdout < 1:
        raise FerkitError(f"--holdout {holdout}: expected a share from 0 to below 1, such as 0.1")


@dataclass
class FaceDataset:
    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64 class ids, or (N, 7) float32 label distributions
    usage: np.ndarray  # (N,) split name of each row ("Training", "PublicTest", ...)
    source: str  # where it came from, for error messages and model cards

    def __len__(self) -> int:
        return len(self.images)

    @property
    def hard_labels(self) -> np.ndarray:
        """Class ids, whether the labels are ids or distributions."""
        return self.labels if self.labels.ndim == 1 else self.labels.argmax(axis=1)

    @property
    def splits(self) -> list[str]:
        return list(dict.fromkeys(self.usage.tolist()))

    def select(self, mask: np.ndarray) -> "FaceDataset":
        return FaceDataset(self.images[mask], self.labels[mask], self.usage[mask], self.source)

    def split(self, *names: str) -> "FaceDataset":
        """Rows whose split is one of `names`, in any case (a tree's `Test/` folder is read as `test`); a clear error
        when none are there."""
        mask = np.isin(np.char.lower(self.usage.astype(str)), [name.lower() for name in names])
        if not mask.any():
            raise DataError(
                f"{self.source}: split {' or '.join(names)!s} is empty or absent "
                f"(present: {', '.join(self.splits) or 'none'})"
            )
        return self.select(mask)

    def holdout_mask(self, fraction: float, seed: int) -> np.ndarray:
        """(N,) bool: a seeded, class-stratified `fraction` of the rows, True where held out."""
        rng = np.random.default_rng(seed)
        held = np.zeros(len(self), bool)
        for label in np.unique(self.hard_labels):
            rows = np.flatnonzero(self.hard_labels == label)
            held[rng.permutation(rows)[:round(len(rows) * fraction)]] = True
        if held.all() or not held.any():
            raise DataError(f"{self.source}: holding out {fraction:.0%} of {len(self)} faces leaves a split empty")
        return held

    def holdout(self, fraction: float, seed: int) -> tuple["FaceDataset", "FaceDataset"]:
        """(rest, held out): a seeded, class-stratified `fraction` of the rows set aside."""
        held = self.holdout_mask(fraction, seed)
        return self.select(~held), self.select(held)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.hard_labels, minlength=NUM_CLASSES)
        return {name: int(c) for name, c in zip(CLASS_NAMES, counts)}

    def one_hot(self) -> np.ndarray:
        """Labels as (N, 7) float32 targets (distributions pass through)."""
        if self.labels.ndim == 2:
            return self.labels.astype(np.float32)
        return np.eye(NUM_CLASSES, dtype=np.float32)[self.labels]


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Weights inversely proportional to class frequency (mean weight 1), for `fit(class_weight=)`."""
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(np.float64)
    weights = counts.sum() / (NUM_CLASSES * np.maximum(counts, 1))
    return {i: float(w) for i, w in enumerate(weights)}
