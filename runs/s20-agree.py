"""Session 20: int8 graph vs its float mix (members x views, weights) on the Training holdout, on this CPU."""
import json, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, "src")
from ferkit.data import load_dataset
from ferkit.inference.classifier import FacialExpressionModel

held = load_dataset("../shared/data/fer2013/fer2013.csv.gz").split("Training").holdout(0.1, 42)[1]
y = held.hard_labels
graph, members = sys.argv[1], sys.argv[2:]
views = [FacialExpressionModel(p).predict_proba(held.images, calibrated=False) for p in members]
mirrored = [FacialExpressionModel(p).predict_proba(held.images[:, :, ::-1], calibrated=False) for p in members]
pf = np.mean([(a + b) / 2 for a, b in zip(views, mirrored)], axis=0)
pq = FacialExpressionModel(graph).predict_proba(held.images, calibrated=False)
print(f"{graph}: float {np.mean(pf.argmax(1) == y):.2%}  int8 {np.mean(pq.argmax(1) == y):.2%}  "
      f"agree {np.mean(pf.argmax(1) == pq.argmax(1)):.2%}  mean |dp| {np.abs(pf - pq).mean():.4f}", flush=True)
