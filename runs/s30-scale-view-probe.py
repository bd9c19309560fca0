"""Session 30 probe: `accurate`'s six members, each also shown the face upscaled to 56x56 (bilinear; the members'
ONNX graphs with their input size made free) as two more views, averaged with the 48 px face and its mirror. Holdout
only: the pick's 2,298 search faces and the 574 untouched, separately. Float graphs (the pick's int8 step not run)."""
import sys

import cv2
import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, "scripts")
from ferkit.data import load_dataset  # noqa: E402
from ferkit.training.ensemble import member_onnx  # noqa: E402
from pick_ensemble import CONFIRM_FRACTION, CONFIRM_SEED, member_views  # noqa: E402

MIX = ["members/m1-fast-e66-s42", "members/m8-votes-real-s91", "members/x5-fast-real-views-s21",
       "members/m12-m10-restart-s141", "members/m13-m12-restart-s151", "members/m18-m17-restart-s201"]
held = load_dataset("../shared/data/fer2013/fer2013.csv.gz").split("Training").holdout(0.1, 42)[1]
y = held.hard_labels
kept = held.holdout_mask(CONFIRM_FRACTION, CONFIRM_SEED)
faces = held.images.reshape(-1, 48, 48)


def free_size(path):
    model = onnx.load(str(path))
    for axis in (1, 2):
        model.graph.input[0].type.tensor_type.shape.dim[axis].dim_param = f"side{axis}"
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(model.SerializeToString(), opts)


def predict(session, x):
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + 256]})[0] for i in range(0, len(x), 256)])


big = np.stack([cv2.resize(f, (56, 56), interpolation=cv2.INTER_LINEAR) for f in faces]).astype(np.float32)[..., None]
V48 = [member_views(member_onnx(m), held.images, "holdout")[:2].mean(0) for m in MIX]
V56 = []
for i, m in enumerate(MIX):
    s = free_size(member_onnx(m))
    V56.append((predict(s, big) + predict(s, np.ascontiguousarray(big[:, :, ::-1]))) / 2)
    right = V56[-1].argmax(1) == y
    print(f"{m.split('/')[1]:28s} 48 px 2 views {np.mean(V48[i].argmax(1) == y):.2%}  56 px 2 views {right.mean():.2%}",
          flush=True)
for label, p in (("48 px, 2 views (accurate's graph, float)", np.mean(V48, 0)),
                 ("56 px, 2 views", np.mean(V56, 0)),
                 ("48 + 56 px, 4 views", (np.mean(V48, 0) + np.mean(V56, 0)) / 2)):
    right = p.argmax(1) == y
    print(f"{label:42s} search {right[~kept].mean():.2%}  fifth {right[kept].mean():.2%}  all {right.mean():.2%}")
