"""Assemble `fast` from x5 (runs/x5-plan.md's rules met): the int8 two-view graph (built by `ferkit ensemble`,
byte-identical to the one the rules scored) + x5's Keras network; m1's Keras files move to members/m1."""
import json
import shutil
from pathlib import Path

FAST, X5, M1 = Path("src/ferkit/assets/models/fast"), Path("members/x5-fast-real-views-s21"), Path("members/m1-fast-e66-s42")
GRAPH = Path("/tmp/x5fast")
for name in ("model.json", "model.weights.h5"):  # m1's Keras network stays reproducible (x5 starts from it)
    shutil.copy(FAST / name, M1 / name)
shutil.move("runs/x5-fast-real-views-s21", X5)
(X5 / "checkpoint.weights.h5").unlink()
net, graph = json.loads((X5 / "metrics.json").read_text()), json.loads((GRAPH / "metrics.json").read_text())
for name in ("model.json", "model.weights.h5", "curves.png", "history.csv", "train_config.json"):
    shutil.copy(X5 / name, FAST / name)
for name in ("model.onnx", "calibration.json", "confusion.png"):
    shutil.copy(GRAPH / name, FAST / name)
metrics = {**net, **{k: graph[k] for k in ("evaluation", "accuracy", "onnx_bytes", "exported", "weights",
                                          "views_in_graph", "int8", "calibration")},
           "accuracy_tta": 0.6999164112566174,  # ferkit evaluate --model fast --tta (zoomed views added)
           "members": [str(X5)],
           "network": {"accuracy": net["accuracy"], "accuracy_tta": net["accuracy_tta"],
                       "onnx_bytes": net["onnx_bytes"], "folder": str(X5)},
           "graph_command": f"ferkit ensemble {X5} --views 2 --int8 --data ../shared/data/fer2013/fer2013.csv.gz "
                            f"--out {FAST}",
           "holdout_accuracy": 0.7044, "ferplus_accuracy": 0.6636440918107113,
           "ferplus_accuracy_tta": 0.6582601303485407}
(FAST / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(metrics["accuracy"], metrics["network"])
