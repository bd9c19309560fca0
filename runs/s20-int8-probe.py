"""Session 20: int8 graphs of the pick lost 1.5 points against float; which member does it?"""
import sys
from pathlib import Path
import numpy as np
sys.path.insert(0, "src")
from ferkit.data import load_dataset
from ferkit.inference.classifier import FacialExpressionModel
from ferkit.training.ensemble import build_int8_ensemble, build_ensemble
from ferkit.training.quantize import calibration_faces

CSV = "../shared/data/fer2013/fer2013.csv.gz"
held = load_dataset(CSV).split("Training").holdout(0.1, 42)[1]
faces = calibration_faces(CSV)
mixes = {"g13": ["runs-gpu/g13-medium-real-s62"], "g12": ["runs-gpu/g12-vgg-real-s61"],
         "accurate-recipe": ["members/x5-fast-real-views-s21", "members/m11-m10-real-s131", "members/m12-m10-restart-s141"]}
for name in sys.argv[1:]:
    paths = [Path(p) for p in mixes[name]]
    w = [1 / len(paths)] * len(paths)
    f = build_ensemble(paths, Path(f"runs/s20-probe/{name}-float.onnx"), w, 2) if False else None
    q = build_int8_ensemble(paths, Path(f"runs/s20-probe/{name}-int8.onnx"), faces, w, 2)
    pq = FacialExpressionModel(q).predict_proba(held.images)
    views = [FacialExpressionModel(p).predict_proba(held.images) for p in paths]
    mirrored = [FacialExpressionModel(p).predict_proba(held.images[:, :, ::-1]) for p in paths]
    pf = np.mean([(a + b) / 2 for a, b in zip(views, mirrored)], axis=0)
    y = held.hard_labels
    print(f"{name}: float 2 views {np.mean(pf.argmax(1) == y):.2%}  int8 {np.mean(pq.argmax(1) == y):.2%}  "
          f"agree {np.mean(pf.argmax(1) == pq.argmax(1)):.2%}  mean |dp| {np.abs(pf - pq).mean():.4f}", flush=True)
