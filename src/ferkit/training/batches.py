"""Training batches as a keras.utils.PyDataset (no TensorFlow needed), augmented on the fly."""

from __future__ import annotations

import math

import keras
import numpy as np

from ..data.augment import Augmentation


class FaceBatches(keras.utils.PyDataset):
    """Batches of (faces (B, 48, 48, 1) float32 0..255, targets (B, 7)), reshuffled every epoch.

    Each epoch's order and augmentation come from (seed, epoch), so a resumed run sees the
    same batches it would have seen without the interruption.
    """

    def __init__(self, images: np.ndarray, targets: np.ndarray, batch_size: int = 64,
                 augmentation: Augmentation | None = None, shuffle: bool = True, seed: int = 0,
                 sample_weights: np.ndarray | None = None):
        super().__init__(workers=1, use_multiprocessing=False)
        self.images, self.targets = images, targets
        self.batch_size, self.augmentation, self.shuffle, self.seed = batch_size, augmentation, shuffle, seed
        self.sample_weights = sample_weights
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
        if self.sample_weights is not None:
            return x, self.targets[rows], self.sample_weights[rows]
        return x, self.targets[rows]

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)
