"""FER2013 in Kaggle's CSV format (emotion,pixels,Usage), plain or gzip-compressed."""

from __future__ import annotations

import csv
import gzip
import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..labels import IMAGE_SIZE, NUM_CLASSES
from .dataset import FaceDataset

PIXELS_PER_FACE = IMAGE_SIZE * IMAGE_SIZE
REQUIRED_COLUMNS = ("emotion", "pixels")


def open_text(path: Path):
    """Open a CSV as text, transparently un-gzipping `.gz` files. A byte-order mark (Excel's "CSV UTF-8") is
    dropped: it would stick to the first column's name."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    return open(path, "r", newline="", encoding="utf-8-sig")


def parse_pixels(text: str) -> np.ndarray | None:
    """2304 space-separated 0..255 values as a (48, 48) uint8 array, or None if malformed."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fromstring only warns on junk; make it fail
        try:
            values = np.fromstring(text, dtype=np.int32, sep=" ")
        except (ValueError, DeprecationWarning):
            return None
    if values.size != PIXELS_PER_FACE or values.min() < 0 or values.max() > 255:
        return None
    return values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)


def load_fer2013_csv(path: str | Path, splits: tuple[str, ...] | None = None) -> FaceDataset:
    """Read every row (or only rows of `splits`), checking each one; errors name file and line.

    A file without a Usage column is treated as one split called "Training".
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    images, labels, usage = [], [], []
    try:
        with open_text(path) as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: file is empty")
            header = [h.strip() for h in header]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise DataError(
                    f"{path}: line 1: missing column(s) {', '.join(missing)} "
                    f"(expected emotion,pixels,Usage; got {','.join(header)})"
                )
            i_label, i_pixels = header.index("emotion"), header.index("pixels")
            i_usage = header.index("Usage") if "Usage" in header else None
            for line_no, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise DataError(f"{path}: line {line_no}: expected {len(header)} fields, got {len(row)}")
                split = row[i_usage].strip() if i_usage is not None else "Training"
                if splits is not None and split not in splits:
                    continue
                label_text = row[i_label].strip()
                if not label_text.isdigit() or int(label_text) >= NUM_CLASSES:
                    raise DataError(f"{path}: line {line_no}: unknown emotion label {label_text!r} (expected 0..6)")
                face = parse_pixels(row[i_pixels])
                if face is None:
                    raise DataError(
                        f"{path}: line {line_no}: pixels must be {PIXELS_PER_FACE} integers in 0..255"
                    )
                images.append(face)
                labels.append(int(label_text))
                usage.append(split)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read as a CSV file ({exc})") from None
    if not images:
        wanted = f" in split {', '.join(splits)}" if splits else ""
        raise DataError(f"{path}: no rows{wanted}")
    return FaceDataset(
        np.stack(images), np.asarray(labels, dtype=np.int64), np.asarray(usage), str(path)
    )
