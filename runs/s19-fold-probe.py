"""s19 probe (runs/s19-fold-plan.md): int8 graphs as before vs BatchNorm folded vs folded + float tail."""
import os, sys, tempfile
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from pathlib import Path
import numpy as np
sys.path.insert(0, "bench")
from bench_models import time_per_face
from ferkit.data import load_dataset
from ferkit.inference.classifier import FacialExpressionModel
from ferkit.training import quantize
from ferkit.training.ensemble import build_ensemble
from ferkit.training.quantize import calibration_faces, quantize_onnx

DATA = "../shared/data/fer2013/fer2013.csv.gz"
_, held = load_dataset(DATA, "fer2013").split("Training").holdout(0.1, 42)
faces = calibration_faces(DATA)
fold, tail = quantize.subtractions_as_additions, quantize.tail_nodes
VARIANTS = {"before": (lambda m: 0, lambda m: []), "fold": (fold, lambda m: []), "fold+tail": (fold, tail)}
# part 2 (after the (1, C) Gemm-bias fix): x5 was done in part 1, and "before" of the other two is known
# (m1+m12 v4 in part 1; the four-member mix in runs/m13-pick.txt), so only the new quantizer runs here.
VARIANTS = {"fold+tail": (fold, tail)}
MIXES = [(["m1-fast-e66-s42", "m12-m10-restart-s141"], 4),
         (["x5-fast-real-views-s21", "m11-m10-real-s131", "m12-m10-restart-s141", "m13-m12-restart-s151"], 2)]
out = Path("runs/s19-fold")
out.mkdir(exist_ok=True)
for names, views in MIXES:
    label = "+".join(n.split("-")[0] for n in names) + f"-v{views}"
    fl = build_ensemble([f"members/{n}" for n in names], out / f"{label}-float.onnx", None, views)
    fmodel = FacialExpressionModel(fl)
    fp = fmodel.predict_proba(held.images)
    print(f"{label}: float {np.mean(fp.argmax(1) == held.hard_labels):.2%}", flush=True)
    models = {}
    for variant, (f, t) in VARIANTS.items():
        quantize.subtractions_as_additions, quantize.tail_nodes = f, t
        path = quantize_onnx(fl, out / f"{label}-{variant}.onnx", faces, member_views=len(names) * views)
        models[variant] = FacialExpressionModel(path)
        p = models[variant].predict_proba(held.images)
        print(f"  {variant:10s} int8 {np.mean(p.argmax(1) == held.hard_labels):.2%}  agree with float "
              f"{np.mean(p.argmax(1) == fp.argmax(1)):.2%}  max |p - float| {np.abs(p - fp).max():.4f}  "
              f"{path.stat().st_size / 2**20:.1f} MiB", flush=True)
    for rnd in range(0):  # timed later with training paused  # interleaved: the machine is busy training
        print("  ms/face batch 1:", "  ".join(f"{v} {time_per_face(m, 1, 200):.2f}" for v, m in models.items()),
              flush=True)
