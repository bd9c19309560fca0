"""s19 pick rule: the winner's int8 graph against today's `accurate`, batch 1, same run, idle machine, alternating."""
import os, sys
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, "bench")
from bench_models import time_per_face
from ferkit.inference.classifier import FacialExpressionModel
GRAPHS = {"accurate (shipped)": "src/ferkit/assets/models/accurate/model.onnx",
          "winner m1+m12+m13 x4": "runs/pick-int8/m1+m12+m13-v4.onnx",
          "fast (shipped)": "src/ferkit/assets/models/fast/model.onnx"}
models = {k: FacialExpressionModel(v) for k, v in GRAPHS.items()}
for rnd in range(int(sys.argv[1]) if len(sys.argv) > 1 else 4):
    print(f"round {rnd}: " + "  ".join(f"{k} {time_per_face(m, 1, 300):.2f} ms" for k, m in models.items()), flush=True)
