"""Session 30 probe: medium members fed faces upscaled to S x S (bilinear), no training: does a larger
input (final feature map 4x4 instead of 3x3) change holdout accuracy? Keras weights are size-free (GAP)."""
import os
import sys
import cv2
import numpy as np
os.environ.setdefault("KERAS_BACKEND", "torch")
from ferkit.data import load_dataset
from ferkit.models.registry import create_model

held = load_dataset("../shared/data/fer2013/fer2013.csv.gz").split("Training").holdout(0.1, 42)[1]
y = held.hard_labels
imgs = held.images
print(imgs.shape, imgs.dtype)
for run in sys.argv[1:]:
    for S in (48, 56, 64):
        m = create_model("medium", input_shape=(S, S, 1))
        m.load_weights(f"{run}/model.weights.h5")
        x = imgs.reshape(len(imgs), 48, 48).astype(np.float32)
        if S != 48:
            x = np.stack([cv2.resize(i, (S, S), interpolation=cv2.INTER_LINEAR) for i in x])
        x = x[..., None]
        p1 = m.predict(x, batch_size=256, verbose=0)
        p = p1 + m.predict(x[:, :, ::-1], batch_size=256, verbose=0)
        print(f"{run} S={S}: plain {np.mean(p1.argmax(1) == y):.2%}  2 views {np.mean(p.argmax(1) == y):.2%}", flush=True)
