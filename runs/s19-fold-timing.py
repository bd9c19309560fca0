"""s19: batch-1 ms/face of int8 graphs as before vs with BatchNorm folded and float tail (training paused)."""
import os, sys
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, "bench")
from bench_models import time_per_face
from ferkit.inference.classifier import FacialExpressionModel
GRAPHS = ["src/ferkit/assets/models/fast/model.onnx", "runs/s19-fold/x5-v2-before.onnx", "runs/s19-fold/x5-v2-fold+tail.onnx",
          "runs/s19-fold/m1+m12-v4-before.onnx", "runs/s19-fold/m1+m12-v4-fold+tail.onnx",
          "src/ferkit/assets/models/accurate/model.onnx", "runs/s19-fold/x5+m11+m12+m13-v2-fold+tail.onnx"]
models = [FacialExpressionModel(g) for g in GRAPHS]
for rnd in range(2):
    for g, m in zip(GRAPHS, models):
        print(f"round {rnd}: {time_per_face(m, 1, 300):5.2f} ms/face batch 1  {g}", flush=True)
