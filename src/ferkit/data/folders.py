"""Image folders laid out as <root>/<split>/<class>/*.png|jpg (any size or colour)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError
from ..labels import CLASS_NAMES, IMAGE_SIZE
from .dataset import FaceDataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


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


def load_image_folders(root: str | Path, splits: tuple[str, ...] | None = None) -> FaceDataset:
    """Every image under root/<split>/<class>/; class folders must be FER2013 class names."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    split_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if splits is not None:
        split_dirs = [p for p in split_dirs if p.name in splits]
    images, labels, usage = [], [], []
    for split_dir in split_dirs:
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            name = class_dir.name.lower()
            if name not in CLASS_NAMES:
                raise DataError(
                    f"{class_dir}: unknown class folder {class_dir.name!r} "
                    f"(expected one of {', '.join(CLASS_NAMES)})"
                )
            for file in sorted(class_dir.iterdir()):
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                image = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
                if image is None:
                    raise DataError(f"{file}: not a readable image")
                images.append(to_face_array(image))
                labels.append(CLASS_NAMES.index(name))
                usage.append(split_dir.name)
    if not images:
        if any(p.name.lower() in CLASS_NAMES for p in split_dirs):  # root/happy/*.png: the split level is missing
            raise DataError(f"{root}: holds class folders where split folders belong: put them in one, such as "
                            f"{root / 'train' / 'happy'}")
        wanted = f" for split {', '.join(splits)}" if splits else ""
        raise DataError(f"{root}: no images found{wanted} (expected <root>/<split>/<class>/ holding "
                        f"{', '.join(IMAGE_SUFFIXES)} files)")
    return FaceDataset(np.stack(images), np.asarray(labels, dtype=np.int64), np.asarray(usage), str(root))
