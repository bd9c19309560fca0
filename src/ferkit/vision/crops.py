"""Face crops prepared the way FER2013 was: grayscale, square around the face, 48x48."""

from __future__ import annotations

import cv2
import numpy as np

from ..labels import IMAGE_SIZE


def to_gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY)


def square_box(box, margin: float) -> tuple[int, int, int]:
    """(x0, y0, side) of the square centred on `box`, grown by `margin` of its side on every edge."""
    x, y, w, h = (float(v) for v in box[:4])
    side = max(w, h) * (1 + 2 * margin)
    return round(x + w / 2 - side / 2), round(y + h / 2 - side / 2), max(1, round(side))


def crop_faces(gray: np.ndarray, boxes, margin: float = 0.0) -> np.ndarray:
    """(N, 48, 48) uint8 crops of a grayscale frame; boxes past the frame edge are padded by replication."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    crops = np.empty((len(boxes), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    height, width = gray.shape[:2]
    for i, box in enumerate(boxes):
        x0, y0, side = square_box(box, margin)
        x1, y1 = x0 + side, y0 + side
        patch = gray[max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)]
        if patch.size == 0:
            crops[i] = 0
            continue
        pad = (max(0, -y0), max(0, y1 - height), max(0, -x0), max(0, x1 - width))
        if any(pad):
            patch = cv2.copyMakeBorder(patch, *pad, cv2.BORDER_REPLICATE)
        interpolation = cv2.INTER_AREA if side > IMAGE_SIZE else cv2.INTER_LINEAR
        crops[i] = cv2.resize(patch, (IMAGE_SIZE, IMAGE_SIZE), interpolation=interpolation)
    return crops
