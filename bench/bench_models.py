"""Model table: parameters, multiply-adds, ms per face (ONNX Runtime), file size, accuracy.

    python bench/bench_models.py [--models fast accurate runs/x] [--repeats 300] [--threads 0]

Prints one Markdown row per model (the README's table is made from it). Timing is batch 1 on
this machine's CPU, after warm-up; the median of `repeats` calls is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import time

# Before torch loads (Keras counts the multiply-adds): with ACTIVE, torch's idle OpenMP threads
# spin and took CPU from the ONNX Runtime calls being timed (7 ms per face instead of 2.7).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from ferkit.inference.classifier import CALIBRATION_FILE, FacialExpressionModel, list_bundled_models


def count_macs(json_path) -> tuple[int, int]:
    """(parameters, multiply-adds per face) of a Keras model.json's conv and dense layers."""
    from ferkit.training.backend import setup_keras

    keras = setup_keras("float32")
    model = keras.models.model_from_json(json_path.read_text())
    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            macs += h * w * kh * kw * layer.input.shape[-1] * c_out
        elif isinstance(layer, keras.layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return model.count_params(), macs


def model_cost(classifier: FacialExpressionModel) -> tuple[int, int]:
    """(parameters, multiply-adds per face): an ensemble's are its members' summed, times its views."""
    card = classifier.card
    if "members" not in card:
        return count_macs(classifier.folder / "model.json")
    costs = [model_cost(FacialExpressionModel.load(member)) for member in card["members"]]
    views = card.get("views_in_graph", 1)
    views = views if isinstance(views, list) else [views] * len(costs)  # one count each, or one for all
    return sum(c[0] for c in costs), sum(c[1] * v for c, v in zip(costs, views))


def time_per_face(classifier: FacialExpressionModel, batch: int, repeats: int) -> float:
    faces = np.random.default_rng(0).integers(0, 256, (batch, 48, 48)).astype(np.uint8)
    for _ in range(20):
        classifier.predict_proba(faces)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        classifier.predict_proba(faces)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000 / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", help="bundled names or run folders (default: all bundled)")
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: its default)")
    args = parser.parse_args()
    print("| model | architecture | parameters | multiply-adds | epochs | PublicTest | with TTA | ECE before -> after "
          "| ms/face (batch 1) | ms/face (batch 16) | ONNX size |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models or list_bundled_models():
        classifier = FacialExpressionModel.load(name, threads=args.threads or None)
        card = classifier.card
        params, macs = model_cost(classifier)
        one, sixteen = time_per_face(classifier, 1, args.repeats), time_per_face(classifier, 16, args.repeats // 4)
        size = classifier.path.stat().st_size / 1e6
        accuracy = f"{card['accuracy']:.2%}" if "accuracy" in card else "?"
        tta = f"{card['accuracy_tta']:.2%}" if "accuracy_tta" in card else (
            "(inside)" if card.get("views_in_graph", 1) != 1 else "?")
        calibration = json.loads(calibration_file.read_text()) if (
            calibration_file := classifier.folder / CALIBRATION_FILE).is_file() else {}
        ece = f"{calibration['ece_before']:.2%} -> {calibration['ece_after']:.2%}" if calibration else "?"
        print(f"| {name} | {card.get('model', '?')} | {params / 1e6:.2f} M | {macs / 1e6:.0f} M | "
              f"{card.get('epochs_run', '?')} | {accuracy} | {tta} | {ece} | {one:.2f} | {sixteen:.2f} | {size:.1f} MB |")
        print(json.dumps({"model": name, "ms_per_face_batch1": round(one, 3), "ms_per_face_batch16": round(sixteen, 3)}),
              flush=True)


if __name__ == "__main__":
    main()
