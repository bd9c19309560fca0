"""Image folders laid out as <root>/<split>/<class>/*.png|jpg (any size or colour)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError, MediaError
from ..inference.images import read_image
from ..labels import CLASS_NAMES, IMAGE_SIZE
from .dataset import FaceDataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# The split names ferkit looks for (default_splits, evaluate's default split), in their spelling: a folder named
# so in any case (Train, TEST) is that split, as class folders are matched in any case.
SPLIT_NAMES = ("Training", "PublicTest", "PrivateTest", "train", "test", "val", "validation")


def to_face_array(image: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, BGR or BGRA, any size) as a 48x48 uint8 grayscale face."""
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    if image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.shape != (IMAGE_SIZE, IMAGE_SIZE):
        interpolation = cv2.INTER_AREA if min(image.shape) > IMAGE_SIZE else cv2.INTER_LINEAR
        image = cv2.resize(image, (IMAGE_SIZE, IMAGE_SIZE), interpolation=interpolation)
    return image


def is_hidden(path: Path) -> bool:
    """Folders and files that tools leave in a tree, not faces: .ipynb_checkpoints, .DS_Store, macOS's
    __MACOSX and ._name copies in a zip."""
    return path.name.startswith(".") or path.name == "__MACOSX"


def split_name(folder: str) -> str:
    """A split folder's name, spelt as ferkit looks for it when it is one of SPLIT_NAMES in another case."""
    return next((name for name in SPLIT_NAMES if name.lower() == folder.lower()), folder)


def load_image_folders(root: str | Path, splits: tuple[str, ...] | None = None) -> FaceDataset:
    """Every image under root/<split>/<class>/; class folders must be FER2013 class names (any case), split
    folders are matched in any case too, and hidden folders and files (.name, __MACOSX) are skipped.

    Decoded as `ferkit predict` decodes a photo (read_image: EXIF orientation applied). Each split's rows
    interleave the classes (see interleave_classes), so its first N rows (`--limit N`) hold every class."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    split_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p))
    if splits is not None:
        wanted = {name.lower() for name in splits}
        split_dirs = [p for p in split_dirs if p.name.lower() in wanted]
    faces: dict[str, list[tuple[int, np.ndarray]]] = {}  # split -> (class id, face), split and class folders merged
    for split_dir in split_dirs:
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and not is_hidden(p)):
            name = class_dir.name.lower()
            if name not in CLASS_NAMES:
                raise DataError(
                    f"{class_dir}: unknown class folder {class_dir.name!r} "
                    f"(expected one of {', '.join(CLASS_NAMES)})"
                )
            for file in sorted(class_dir.iterdir()):
                if file.suffix.lower() not in IMAGE_SUFFIXES or is_hidden(file):
                    continue
                try:
                    image = read_image(file)
                except MediaError as exc:
                    raise DataError(str(exc)) from None
                faces.setdefault(split_name(split_dir.name), []).append((CLASS_NAMES.index(name), to_face_array(image)))
    if not faces:
        if any(p.name.lower() in CLASS_NAMES for p in split_dirs):  # root/happy/*.png: the split level is missing
            raise DataError(f"{root}: holds class folders where split folders belong: put them in one, such as "
                            f"{root / 'train' / 'happy'}")
        wanted = f" for split {', '.join(splits)}" if splits else ""
        raise DataError(f"{root}: no images found{wanted} (expected <root>/<split>/<class>/ holding "
                        f"{', '.join(IMAGE_SUFFIXES)} files)")
    images, labels, usage = [], [], []
    for split, rows in faces.items():
        split_labels = np.asarray([label for label, _ in rows], dtype=np.int64)
        for row in interleave_classes(split_labels):
            images.append(rows[row][1])
            labels.append(split_labels[row])
            usage.append(split)
    return FaceDataset(np.stack(images), np.asarray(labels, dtype=np.int64), np.asarray(usage), str(root))


def interleave_classes(labels: np.ndarray) -> np.ndarray:
    """An order of the rows in which each class keeps its own order and every prefix holds each class about in
    proportion to its count: the k-th of a class's n faces sorts at k/n (ties by class id), so the first rows are one
    face of each class. Listed class by class, `--limit 300` took a tree's first three classes alphabetically."""
    rank = np.zeros(len(labels))
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        rank[rows] = np.arange(len(rows)) / len(rows)
    return np.lexsort((labels, rank))
