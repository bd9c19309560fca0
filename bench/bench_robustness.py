"""How each model holds up under the conditions of real photos and footage, on the Training holdout.

    python bench/bench_robustness.py [--models fast accurate runs/x] [--data ../shared/data/fer2013/fer2013.csv.gz]

The 2,872 Training-holdout faces (10%, seed 42: no shipped model trains on them) are degraded one way
at a time and classified (ONNX Runtime, calibrated, no extra views): small faces enlarged (shrunk to
16/24/32 px with area averaging, enlarged back bilinearly: what the pipeline does to a face a detector
finds at that size), JPEG at quality 20, Gaussian blur, darker/brighter (-/+ 60 grey levels) and
flattened contrast (x 0.5 about the face's mean). Prints one Markdown row per model: accuracy on the
clean faces and under each condition. The holdout, not PublicTest, so the figures may steer training
(`--augment real` was made for these columns).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2
import numpy as np

from ferkit.data import load_dataset
from ferkit.data.augment import jpeg_round_trip, photometric, shrink_and_enlarge
from ferkit.inference.classifier import FacialExpressionModel


CONDITIONS = {
    "clean": lambda f: f,
    "16 px": lambda f: shrink_and_enlarge(f, 16),
    "24 px": lambda f: shrink_and_enlarge(f, 24),
    "32 px": lambda f: shrink_and_enlarge(f, 32),
    "JPEG q20": lambda f: jpeg_round_trip(f, 20),
    "blur s1.5": lambda f: cv2.GaussianBlur(f, (0, 0), 1.5),
    "dark -60": lambda f: photometric(f, -60.0, 1.0),
    "bright +60": lambda f: photometric(f, 60.0, 1.0),
    "contrast x0.5": lambda f: photometric(f, 0.0, 0.5),
}


def degraded_accuracy(model: FacialExpressionModel, faces: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy on `faces` (N, 48, 48) uint8 under each condition."""
    scores = {}
    for name, degrade in CONDITIONS.items():
        batch = np.stack([degrade(face) for face in faces])
        predicted = np.concatenate([model.predict_proba(batch[i:i + 256]).argmax(1) for i in range(0, len(batch), 256)])
        scores[name] = float((predicted == labels).mean())
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["fast", "accurate"], help="bundled names or run folders")
    parser.add_argument("--data", default="../shared/data/fer2013/fer2013.csv.gz")
    args = parser.parse_args()
    _, held = load_dataset(args.data).split("Training").holdout(0.1, 42)
    print(f"Training holdout, {len(held)} faces: accuracy per condition\n")
    print("| model | " + " | ".join(CONDITIONS) + " |")
    print("|---|" + "---|" * len(CONDITIONS))
    for spec in args.models:
        scores = degraded_accuracy(FacialExpressionModel.load(spec), held.images, held.hard_labels)
        print(f"| {spec} | " + " | ".join(f"{scores[c]:.2%}" for c in CONDITIONS) + " |", flush=True)


if __name__ == "__main__":
    main()
