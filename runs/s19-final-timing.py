"""s19: batch-1 ms/face, alternating rounds, the shipped graphs before and after this session's quantizer."""
import os, sys
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, "bench")
from bench_models import time_per_face
from ferkit.inference.classifier import FacialExpressionModel
GRAPHS = {"accurate (session 19)": "src/ferkit/assets/models/accurate/model.onnx",
          "accurate (before)": "/tmp/old-accurate/src/ferkit/assets/models/accurate/model.onnx",
          "fast (session 19)": "src/ferkit/assets/models/fast/model.onnx",
          "fast (before)": "/tmp/old-fast/model.onnx"}
models = {k: FacialExpressionModel(v) for k, v in GRAPHS.items()}
for rnd in range(int(sys.argv[1]) if len(sys.argv) > 1 else 4):
    print(f"round {rnd}: " + "  ".join(f"{k} {time_per_face(m, 1, 300):.2f} ms" for k, m in models.items()), flush=True)
