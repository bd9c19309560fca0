"""s19, after the rebuild read PublicTest 70.94% (old 71.41%): the paired difference on PublicTest and the holdout."""
import numpy as np
from ferkit.data import load_dataset
from ferkit.inference.classifier import FacialExpressionModel
DATA = "../shared/data/fer2013/fer2013.csv.gz"
ds = load_dataset(DATA, "fer2013")
_, held = ds.split("Training").holdout(0.1, 42)
pt = ds.split("PublicTest")
old = FacialExpressionModel("/tmp/old-accurate/src/ferkit/assets/models/accurate/model.onnx")
new = FacialExpressionModel("src/ferkit/assets/models/accurate/model.onnx")
for name, split in [("holdout", held), ("PublicTest", pt)]:
    a = old.predict_proba(split.images).argmax(1) == split.hard_labels
    b = new.predict_proba(split.images).argmax(1) == split.hard_labels
    only_old, only_new = int((a & ~b).sum()), int((~a & b).sum())
    from math import comb
    n = only_old + only_new
    p = min(1.0, 2 * sum(comb(n, k) for k in range(min(only_old, only_new) + 1)) / 2 ** n)
    print(f"{name}: old {a.mean():.2%} new {b.mean():.2%}; right only with old {only_old}, only with new {only_new}; "
          f"exact McNemar p = {p:.3f}")
