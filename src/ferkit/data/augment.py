"""Real-time augmentation of 48x48 faces in numpy/OpenCV (training batches only)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Augmentation:
    flip: bool = True  # mirror left-right half of the time
    rotation: float = 10.0  # max degrees either way
    shift: float = 0.1  # max shift as a fraction of the side
    zoom: float = 0.1  # scale drawn from [1 - zoom, 1 + zoom]
    erase: float = 0.0  # probability of blanking one random rectangle (random erasing)

    def apply(self, faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment a batch (N, H, W) uint8 -> new (N, H, W) uint8; the input is not modified."""
        n, h, w = faces.shape
        out = np.empty_like(faces)
        angles = rng.uniform(-self.rotation, self.rotation, n)
        scales = rng.uniform(1 - self.zoom, 1 + self.zoom, n)
        shifts = rng.uniform(-self.shift, self.shift, (n, 2)) * (w, h)
        flips = rng.random(n) < 0.5 if self.flip else np.zeros(n, bool)
        erase = rng.random(n) < self.erase
        for i in range(n):
            matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angles[i], scales[i])
            matrix[:, 2] += shifts[i]
            face = cv2.warpAffine(faces[i], matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            out[i] = face[:, ::-1] if flips[i] else face
            if erase[i]:
                eh, ew = rng.integers(h // 8, h // 2, 2)
                y, x = rng.integers(0, h - eh), rng.integers(0, w - ew)
                out[i, y:y + eh, x:x + ew] = rng.integers(0, 256)
        return out


