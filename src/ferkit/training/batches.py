"""Training batches as a keras.utils.PyDataset (no TensorFlow needed), augmented on the fly."""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np

from ..data.augment import Augmentation


class FaceBatches(keras.utils.PyDataset):
    """Batches of (faces (B, 48, 48, 1) float32 0..255, targets (B, 7)), reshuffled every epoch.

    Each epoch's order and augmentation come from (seed, epoch), so a resumed run sees the
    same batches it would have seen without the interruption.

    `mixup` > 0 (the Beta distribution's alpha) blends each face with another of its batch, and the
    targets and sample weights alike (Zhang et al. 2018). The face's own share is max(l, 1 - l), so
    it stays the larger part; the blend draws from its own generator, so the augmentation is unchanged.

    `teacher` (a function from faces to probabilities) makes the targets `distill_weight` x the teacher's
    scores of the batch exactly as the student sees it (augmented, blended) + the rest x the labels:
    "consistent" distillation (Beyer et al. 2022). Targets precomputed on the clean faces repeat what the
    teacher memorised of them (docs/models.md, seventh session); a view it never saw does not.
    """

    def __init__(self, images: np.ndarray, targets: np.ndarray, batch_size: int = 64,
                 augmentation: Augmentation | None = None, shuffle: bool = True, seed: int = 0,
                 sample_weights: np.ndarray | None = None, mixup: float = 0.0,
                 teacher: Callable[[np.ndarray], np.ndarray] | None = None, distill_weight: float = 1.0):
        super().__init__(workers=1, use_multiprocessing=False)
        self.images, self.targets = images, targets
        self.batch_size, self.augmentation, self.shuffle, self.seed = batch_size, augmentation, shuffle, seed
        self.sample_weights, self.mixup = sample_weights, mixup
        self.teacher, self.distill_weight = teacher, distill_weight
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.rng = np.random.default_rng([self.seed, epoch])
        self.order = self.rng.permutation(len(self.images)) if self.shuffle else np.arange(len(self.images))

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        faces = self.images[rows]
        if self.augmentation is not None:
            # per-batch generator: the same (seed, epoch, batch) always gives the same batch
            faces = self.augmentation.apply(faces, np.random.default_rng([self.seed, self.epoch, index]))
        x = faces[..., None].astype(np.float32)
        y = self.targets[rows]
        w = None if self.sample_weights is None else self.sample_weights[rows]
        if self.mixup > 0:
            x, y, w = self._blend(x, y, w, np.random.default_rng([self.seed, self.epoch, index, 1]))
        if self.teacher is not None:
            y = (self.distill_weight * self.teacher(x) + (1 - self.distill_weight) * y).astype(np.float32)
        return (x, y) if w is None else (x, y, w)

    def _blend(self, x, y, w, rng):
        share = rng.beta(self.mixup, self.mixup, len(x))
        share = np.maximum(share, 1 - share).astype(np.float32)
        other = rng.permutation(len(x))
        x = share[:, None, None, None] * x + (1 - share[:, None, None, None]) * x[other]
        y = share[:, None] * y + (1 - share[:, None]) * y[other]
        if w is not None:
            w = share * w + (1 - share) * w[other]
        return x, y.astype(np.float32), w

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)
