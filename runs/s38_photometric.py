"""Session 38 probe: does a photometric normalisation of the 48x48 crop help real faces (tw-faces, the dev set)
without costing FER2013 (the Training holdout)? Prints accuracy per transform and model."""
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, "bench")
from bench_real_faces import tw_faces  # noqa: E402

from ferkit.data import load_dataset  # noqa: E402
from ferkit.inference.classifier import FacialExpressionModel  # noqa: E402

shared = Path("../shared")
crops, labels, total = tw_faces(shared)
data = load_dataset(shared / "data/fer2013/fer2013.csv.gz")
_, held = data.split("Training").holdout(0.1, 42)
clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))


def stretch(face, lo=1, hi=99):
    a, b = np.percentile(face, [lo, hi])
    return np.clip((face.astype(np.float32) - a) * 255.0 / max(b - a, 1.0), 0, 255).astype(np.uint8)


def standardise_to_fer(face, mean=129.0, std=65.0):  # FER2013 Training's typical per-face mean/std, set below
    f = face.astype(np.float32)
    return np.clip((f - f.mean()) / max(f.std(), 1.0) * std + mean, 0, 255).astype(np.uint8)


fer_means = held.images.reshape(len(held.images), -1).mean(1)
fer_stds = held.images.reshape(len(held.images), -1).std(1)
tw_means, tw_stds = crops.reshape(len(crops), -1).mean(1), crops.reshape(len(crops), -1).std(1)
print(f"per-face mean/std: FER holdout {fer_means.mean():.1f}/{fer_stds.mean():.1f} (median std {np.median(fer_stds):.1f}); "
      f"tw crops {tw_means.mean():.1f}/{tw_stds.mean():.1f} (median std {np.median(tw_stds):.1f})")
M, S = float(np.median(fer_means)), float(np.median(fer_stds))
TRANSFORMS = {
    "none": lambda f: f,
    "equalizeHist": cv2.equalizeHist,
    "clahe2": clahe.apply,
    "stretch1-99": stretch,
    "standardise": lambda f: standardise_to_fer(f, M, S),
}
for model_name in sys.argv[1:] or ["accurate", "fast"]:
    model = FacialExpressionModel.load(model_name)
    for name, fn in TRANSFORMS.items():
        tw = np.stack([fn(c) for c in crops])
        fer = np.stack([fn(c) for c in held.images])
        tw_right = int((model.predict_proba(tw).argmax(1) == labels).sum())
        tw_uni = int((model.predict_proba(tw, uniform_prior=True).argmax(1) == labels).sum())
        fer_acc = float((model.predict_proba(fer).argmax(1) == held.hard_labels).mean())
        print(f"{model_name:9s} {name:13s} tw {tw_right / total:.2%} ({tw_right}/{total})  tw uniform {tw_uni / total:.2%}"
              f"  FER holdout {fer_acc:.2%}", flush=True)
