"""Data: loaders (CSV, folders, FER+ votes), the FaceDataset they return, training batches."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .dataset import FaceDataset, class_weights
from .fer2013 import load_fer2013_csv
from .ferplus import apply_ferplus, load_ferplus_votes, mix_ferplus_votes, votes_to_labels
from .folders import load_image_folders

__all__ = [
    "FaceDataset", "class_weights", "load_dataset", "load_fer2013_csv", "load_image_folders",
    "apply_ferplus", "load_ferplus_votes", "mix_ferplus_votes", "votes_to_labels", "default_splits",
]


def load_dataset(path: str | Path, labels: str = "fer2013", ferplus_votes: str | Path | None = None,
                 ferplus_mode: str = "majority", splits: tuple[str, ...] | None = None,
                 ferplus_weight: float = 0.0) -> FaceDataset:
    """Load a CSV (.csv/.csv.gz) or an image-folder tree; with labels="ferplus", swap in FER+ labels;
    with FER2013 labels and ferplus_weight > 0, mix that share of the FER+ vote distribution into them.

    FER+ votes default to `ferplus/fer2013new.csv` beside the CSV's folder (the shared layout).
    """
    path = Path(path)
    if path.is_dir():
        if labels == "ferplus" or ferplus_weight:
            raise DataError(f"{path}: FER+ labels need the FER2013 CSV, not an image folder")
        return load_image_folders(path, splits)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if labels not in ("fer2013", "ferplus"):
        raise DataError(f"unknown label set {labels!r} (expected fer2013 or ferplus)")
    if labels == "fer2013" and not ferplus_weight:
        return load_fer2013_csv(path, splits)
    if labels == "ferplus" and ferplus_weight:
        raise DataError("a FER+ vote weight mixes votes into FER2013 labels; with FER+ labels it has no meaning")
    # resolved: "data.csv" has no parent folder to climb out of as written
    votes = Path(ferplus_votes) if ferplus_votes else path.resolve().parent.parent / "ferplus" / "fer2013new.csv"
    # FER+ rows align with the whole file, so load every split before selecting.
    dataset = load_fer2013_csv(path)
    if labels == "ferplus":
        dataset = apply_ferplus(dataset, votes, ferplus_mode)
    else:
        dataset = mix_ferplus_votes(dataset, votes, ferplus_weight)
    return dataset.split(*splits) if splits else dataset


def default_splits(dataset: FaceDataset) -> tuple[str, str]:
    """(training split, reported split): FER2013's Training/PublicTest, else train and test, val or validation, in
    the order `ferkit evaluate` scores them by default (so a run reports the split evaluate scores)."""
    present = dataset.splits
    for train, vals in (("Training", ("PublicTest",)), ("train", ("test", "val", "validation"))):
        if train in present:
            for val in vals:
                if val in present:
                    return train, val
    raise DataError(
        f"{dataset.source}: cannot tell the training and validation splits apart "
        f"(present: {', '.join(present)}); name them with --train-split and --val-split"
    )
