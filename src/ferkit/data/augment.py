"""Real-time augmentation of 48x48 faces in numpy/OpenCV (training batches only)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


LOWRES_SIDES = (14, 36)  # px, both ends drawn: the sizes real detectors find small faces at
JPEG_QUALITIES = (15, 75)  # both ends drawn: web photos and compressed video frames


def jpeg_round_trip(face: np.ndarray, quality: int) -> np.ndarray:
    """The uint8 face encoded as JPEG at `quality` and decoded."""
    _, data = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)


def shrink_and_enlarge(face: np.ndarray, side: int) -> np.ndarray:
    """The face shrunk to side x side (area averaging) and enlarged back (bilinear): a small face upscaled."""
    small = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, face.shape[::-1], interpolation=cv2.INTER_LINEAR)


def draw_where(rng: np.random.Generator, probability: float, bounds: tuple[int, int], n: int) -> np.ndarray:
    """Per face, an integer in `bounds` (both ends) with `probability`, else 0; draws nothing at 0, so
    that levels without the change keep their exact random stream."""
    if not probability:
        return np.zeros(n, int)
    return np.where(rng.random(n) < probability, rng.integers(*bounds, n, endpoint=True), 0)


def photometric(face: np.ndarray, offset: float, gain: float) -> np.ndarray:
    """uint8 face with its contrast scaled by `gain` around its mean, then `offset` added."""
    mean = face.mean()
    return np.clip((face.astype(np.float32) - mean) * gain + mean + offset, 0, 255).round().astype(np.uint8)


@dataclass(frozen=True)
class Augmentation:
    flip: bool = True  # mirror left-right half of the time
    rotation: float = 10.0  # max degrees either way
    shift: float = 0.1  # max shift as a fraction of the side
    zoom: float = 0.1  # scale drawn from [1 - zoom, 1 + zoom]
    erase: float = 0.0  # probability of blanking one random rectangle (random erasing)
    # Photometric and resolution changes, for real photos and footage (lighting, small faces upscaled):
    brightness: float = 0.0  # offset drawn from [-brightness, brightness] x 255
    contrast: float = 0.0  # deviations from the face's mean scaled by [1 - contrast, 1 + contrast]
    lowres: float = 0.0  # probability of shrinking to LOWRES_SIDES px (area) and back (bilinear)
    jpeg: float = 0.0  # probability of a JPEG round trip at a quality drawn from JPEG_QUALITIES

    def apply(self, faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment a batch (N, H, W) uint8 -> new (N, H, W) uint8; the input is not modified."""
        n, h, w = faces.shape
        out = np.empty_like(faces)
        angles = rng.uniform(-self.rotation, self.rotation, n)
        scales = rng.uniform(1 - self.zoom, 1 + self.zoom, n)
        shifts = rng.uniform(-self.shift, self.shift, (n, 2)) * (w, h)
        flips = rng.random(n) < 0.5 if self.flip else np.zeros(n, bool)
        erase = rng.random(n) < self.erase
        # drawn only when asked for, so that the levels without them keep their exact random stream
        offsets = rng.uniform(-self.brightness, self.brightness, n) * 255 if self.brightness else None
        gains = rng.uniform(1 - self.contrast, 1 + self.contrast, n) if self.contrast else None
        sides = draw_where(rng, self.lowres, LOWRES_SIDES, n)
        qualities = draw_where(rng, self.jpeg, JPEG_QUALITIES, n)
        for i in range(n):
            matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angles[i], scales[i])
            matrix[:, 2] += shifts[i]
            face = cv2.warpAffine(faces[i], matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            if offsets is not None or gains is not None:
                face = photometric(face, 0.0 if offsets is None else offsets[i], 1.0 if gains is None else gains[i])
            if sides[i]:
                face = shrink_and_enlarge(face, int(sides[i]))
            if qualities[i]:
                face = jpeg_round_trip(face, int(qualities[i]))
            out[i] = face[:, ::-1] if flips[i] else face
            if erase[i]:
                eh, ew = rng.integers(h // 8, h // 2, 2)
                y, x = rng.integers(0, h - eh), rng.integers(0, w - ew)
                out[i, y:y + eh, x:x + ew] = rng.integers(0, 256)
        return out


