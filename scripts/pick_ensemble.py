"""Pick the `accurate` ensemble's members and test-time views on the Training holdout (issue 13).

    python scripts/pick_ensemble.py fast runs-gpu/g*/ --data ../shared/data/fer2013/fer2013.csv.gz \
        --budget-ms 9.5

Every subset of the candidates, with 1, 2 or 4 views each (as is; + mirrored; + zoomed and
zoomed-mirrored), equal weights, is scored on the holdout that no member trained on; those whose
batch-1 cost (the members' measured ms per face, times the views) fits the budget are ranked by
holdout accuracy (log-loss breaks ties). Only the winner is then scored on PublicTest, once.
Members' probabilities per view are cached in runs/pick-cache/ (keyed by the ONNX file's size and
time), so re-ranking with another budget takes seconds.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench/bench_models.py: fair ONNX Runtime timings

import numpy as np

from ferkit.data import load_dataset
from ferkit.inference.classifier import FacialExpressionModel, tta_views
from ferkit.training.ensemble import member_onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bench_models import time_per_face  # noqa: E402  (the model table's own batch-1 timing)

VIEWS = (1, 2, 4)
CACHE = Path("runs/pick-cache")


def member_views(onnx_path: Path, faces: np.ndarray, tag: str) -> np.ndarray:
    """(4, N, 7) uncalibrated probabilities of one member on the four views of `faces`."""
    stat = onnx_path.stat()
    key = CACHE / f"{onnx_path.parent.name}-{stat.st_size}-{int(stat.st_mtime)}-{tag}.npy"
    if key.exists():
        return np.load(key)
    model = FacialExpressionModel(onnx_path)
    batch = faces[..., None].astype(np.float32)
    probs = np.concatenate([model._run(tta_views(batch[i:i + 256])).reshape(4, -1, 7)
                            for i in range(0, len(batch), 256)], axis=1)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(key, probs)
    return probs


def score(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean log-loss)."""
    accuracy = float((probs.argmax(1) == labels).mean())
    return accuracy, float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates", nargs="+", help="bundled model names or run folders")
    parser.add_argument("--data", required=True)
    parser.add_argument("--budget-ms", type=float, default=9.5, help="batch-1 ms per face the ensemble may cost")
    parser.add_argument("--max-members", type=int, default=6)
    parser.add_argument("--show", type=int, default=12, help="how many of the best to list")
    args = parser.parse_args()

    dataset = load_dataset(args.data)
    _, held = dataset.split("Training").holdout(0.1, 42)
    test = dataset.split("PublicTest")
    paths = [member_onnx(c) for c in args.candidates]
    names = [p.parent.name for p in paths]
    costs = [time_per_face(FacialExpressionModel(p), batch=1, repeats=200) for p in paths]
    held_views = [member_views(p, held.images, "holdout") for p in paths]
    print("candidate                  ms/face  holdout: plain  2 views  4 views")
    for name, cost, views in zip(names, costs, held_views):
        accs = [score(views[:v].mean(0), held.hard_labels)[0] for v in VIEWS]
        print(f"{name:26s} {cost:7.2f}  " + "  ".join(f"{a:13.2%}" for a in accs))

    ranked = []
    for size in range(1, min(args.max_members, len(paths)) + 1):
        for subset in itertools.combinations(range(len(paths)), size):
            for v in VIEWS:
                cost = v * sum(costs[i] for i in subset)
                if cost > args.budget_ms:
                    continue
                probs = np.mean([held_views[i][:v].mean(0) for i in subset], axis=0)
                accuracy, loss = score(probs, held.hard_labels)
                ranked.append((accuracy, -loss, subset, v, cost))
    ranked.sort(reverse=True)
    print(f"\nbest within {args.budget_ms} ms per face, on the Training holdout ({len(held)} faces):")
    for accuracy, neg_loss, subset, v, cost in ranked[:args.show]:
        print(f"  {accuracy:.2%}  log-loss {-neg_loss:.4f}  {v} view(s)  {cost:5.2f} ms  "
              + " + ".join(names[i] for i in subset))
    accuracy, _, subset, v, cost = ranked[0]
    probs = np.mean([member_views(paths[i], test.images, "publictest")[:v].mean(0) for i in subset], axis=0)
    print(f"\npicked: {' '.join(args.candidates[i] for i in subset)} with {v} view(s), {cost:.2f} ms per face; "
          f"holdout {accuracy:.2%}, PublicTest {score(probs, test.hard_labels)[0]:.2%} (scored once, after picking)")


if __name__ == "__main__":
    main()
