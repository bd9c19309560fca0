"""Exploration (holdout only): which extra test-time views help single members beyond the 4 shipped ones?"""
import sys, itertools
import cv2, numpy as np
from ferkit.data import load_dataset
from ferkit.inference.classifier import FacialExpressionModel
from ferkit.training.ensemble import member_onnx

_, held = load_dataset("../shared/data/fer2013/fer2013.csv.gz").split("Training").holdout(0.1, 42)
faces = held.images.astype(np.float32)
S = 48
def crop(f, y0, x0, size):
    return np.stack([cv2.resize(x[y0:y0 + size, x0:x0 + size], (S, S)) for x in f])
views = {"id": faces}
for c in (1, 2, 3, 4):
    views[f"z{c}"] = crop(faces, c, c, S - 2 * c)
for (y, x) in ((0, 0), (0, 4), (4, 0), (4, 4)):
    views[f"c{y}{x}"] = crop(faces, y, x, 44)
views = {**views, **{k + "m": v[:, :, ::-1] for k, v in views.items()}}
labels = held.hard_labels
for spec in sys.argv[1:]:
    model = FacialExpressionModel(member_onnx(spec))
    p = {k: np.concatenate([model._run(np.ascontiguousarray(v[i:i + 256, ..., None])) for i in range(0, len(v), 256)])
         for k, v in views.items()}
    np.save(f"runs/views-probe-{model.folder.name}.npy", np.stack([p[k] for k in views]))
    acc = lambda ks: float((sum(p[k] for k in ks).argmax(1) == labels).mean())
    print(model.folder.name)
    print("  single:", "  ".join(f"{k} {acc([k]):.2%}" for k in views))
    sets = {"2 shipped": ["id", "idm"], "4 shipped": ["id", "idm", "z2", "z2m"],
            "4 z1": ["id", "idm", "z1", "z1m"], "4 z3": ["id", "idm", "z3", "z3m"],
            "6 z2 z4": ["id", "idm", "z2", "z2m", "z4", "z4m"], "6 z1 z2": ["id", "idm", "z1", "z1m", "z2", "z2m"],
            "6 z2 z3": ["id", "idm", "z2", "z2m", "z3", "z3m"],
            "8 z1-3": ["id", "idm", "z1", "z1m", "z2", "z2m", "z3", "z3m"],
            "10 ten-crop": ["id", "idm", "z2", "z2m", "c00", "c00m", "c04", "c04m", "c40", "c40m", "c44", "c44m"][:10],
            "12 ten-crop+z2": ["id", "idm", "z2", "z2m", "c00", "c00m", "c04", "c04m", "c40", "c40m", "c44", "c44m"],
            "all": list(views)}
    for name, ks in sets.items():
        print(f"  {name:16s} {acc(ks):.2%}")
