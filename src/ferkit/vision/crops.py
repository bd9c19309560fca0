"""Face crops prepared the way FER2013 was: grayscale, 48x48, framed like its faces.

`crop_faces` is the one crop function every front end uses (through Pipeline.classify):

- with YuNet's five landmarks (the default detector), each face is aligned: rotated so the eyes
  are level, then scaled and placed so its landmarks fall, in the least-squares sense, on the
  median landmarks of FER2013's own faces (`FER2013_LANDMARKS`, measured);
- without landmarks (Haar), the square around the box, as FER2013's Haar-based crops were.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..labels import IMAGE_SIZE

# Where FER2013 puts a face's landmarks in its 48x48 crops: the median, over 3,736 faces of a
# seeded sample of 4,000 Training faces that YuNet found (each upscaled 4x with a replicated
# border), of YuNet's five landmarks. Order: the subject's right eye (image left), left eye, nose
# tip, right and left mouth corners. Measured with `bench/bench_real_faces.py --calibrate`.
# The eyes' median heights (18.26, 18.28) are set to their mean, so the template is level as
# the aligned faces are. Eyes 17.6 px apart (37% of the crop), eye line at 38% of the height,
# mouth at 75%.
FER2013_LANDMARKS = np.array([[14.94, 18.27], [32.56, 18.27], [23.19, 28.63], [16.61, 35.92], [30.86, 36.01]],
                             np.float64)


def to_gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY)


def square_box(box, margin: float) -> tuple[int, int, int]:
    """(x0, y0, side) of the square centred on `box`, grown by `margin` of its side on every edge."""
    x, y, w, h = (float(v) for v in box[:4])
    side = max(w, h) * (1 + 2 * margin)
    return round(x + w / 2 - side / 2), round(y + h / 2 - side / 2), max(1, round(side))


def alignment_matrix(landmarks, scale: float = 1.0, shift_y: float = 0.0,
                     template: np.ndarray = FER2013_LANDMARKS) -> np.ndarray:
    """2x3 affine matrix from frame pixels to the 48x48 crop for a face with these (5, 2) landmarks.

    Rotation: the eye line becomes level. Scale and position: the least-squares fit of the
    rotated landmarks onto `template`. `scale` > 1 shows more around the face (the face smaller in
    the crop), < 1 less; `shift_y` moves the face down by that share of the crop's height.
    """
    points = np.asarray(landmarks, np.float64).reshape(5, 2)
    dx, dy = points[1] - points[0]
    angle = np.arctan2(dy, dx)
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, sin], [-sin, cos]])  # turns the eye line onto the x axis
    centre = np.array([IMAGE_SIZE / 2, IMAGE_SIZE / 2])
    target = centre + (np.asarray(template, np.float64) - centre) / scale + [0.0, shift_y * IMAGE_SIZE]
    rotated = points @ rotation.T
    p0, t0 = rotated - rotated.mean(0), target - target.mean(0)
    factor = float((p0 * t0).sum() / max((p0 ** 2).sum(), 1e-9))
    linear = factor * rotation
    offset = target.mean(0) - linear @ points.mean(0)
    return np.hstack([linear, offset[:, None]])


def aligned_crop(gray: np.ndarray, landmarks, scale: float = 1.0, shift_y: float = 0.0) -> np.ndarray | None:
    """A 48x48 aligned crop (see alignment_matrix); pixels past the frame edge replicate the edge.
    None for degenerate landmarks (all in one point)."""
    matrix = alignment_matrix(landmarks, scale, shift_y)
    zoom = float(np.hypot(*matrix[0, :2]))  # crop pixels per frame pixel
    if not np.isfinite(matrix).all() or zoom < 1e-3:
        return None
    # Shrinking a large face in one warp would alias (warpAffine samples, it does not average):
    # warp to an intermediate size near the face's own resolution, then area-resize to 48.
    side = int(min(8 * IMAGE_SIZE, max(IMAGE_SIZE, round(IMAGE_SIZE / zoom)))) if zoom < 0.5 else IMAGE_SIZE
    matrix = matrix * (side / IMAGE_SIZE)
    crop = cv2.warpAffine(gray, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if side != IMAGE_SIZE:
        crop = cv2.resize(crop, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return crop


def box_crop(gray: np.ndarray, box, margin: float = 0.0) -> np.ndarray:
    """The 48x48 square around a box; a box past the frame edge is padded by replication."""
    height, width = gray.shape[:2]
    x0, y0, side = square_box(box, margin)
    x1, y1 = x0 + side, y0 + side
    patch = gray[max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)]
    if patch.size == 0:
        return np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    pad = (max(0, -y0), max(0, y1 - height), max(0, -x0), max(0, x1 - width))
    if any(pad):
        patch = cv2.copyMakeBorder(patch, *pad, cv2.BORDER_REPLICATE)
    interpolation = cv2.INTER_AREA if side > IMAGE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(patch, (IMAGE_SIZE, IMAGE_SIZE), interpolation=interpolation)


def crop_faces(gray: np.ndarray, boxes, margin: float = 0.0, landmarks=None, align: bool = True,
               scale: float = 1.0, shift_y: float = 0.0) -> np.ndarray:
    """(N, 48, 48) uint8 crops of a grayscale frame.

    A face with landmarks ((N, 5, 2), NaN rows for none) is aligned when `align` is set (`scale`:
    see alignment_matrix, like `shift_y`); any other face is the square around its box grown by `margin`.
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    points = None if landmarks is None else np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    crops = np.empty((len(boxes), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for i, box in enumerate(boxes):
        aligned = None
        if align and points is not None and np.isfinite(points[i]).all():
            aligned = aligned_crop(gray, points[i], scale, shift_y)
        crops[i] = box_crop(gray, box, margin) if aligned is None else aligned
    return crops
