"""Session 23 exploration: the pick's top mixes averaged as probabilities (the graph today) or as log-probabilities
(a geometric mean). Decides nothing by itself."""
import glob
import numpy as np
from ferkit.data import load_dataset

held = load_dataset("../shared/data/fer2013/fer2013.csv.gz").split("Training").holdout(0.1, 42)[1]
y = held.hard_labels
load = lambda n: np.load(sorted(glob.glob(f"runs/pick-cache/{n}-*-holdout.npy"))[0])
for mix in [("x5-fast-real-views-s21", "m12-m10-restart-s141", "m14-medium-real-mixup-s161"),
            ("x1-fast-real-s21", "m8-votes-real-s91", "x5-fast-real-views-s21", "m11-m10-real-s131", "m12-m10-restart-s141"),
            ("m8-votes-real-s91", "x5-fast-real-views-s21", "m12-m10-restart-s141"),
            ("x5-fast-real-views-s21", "m11-m10-real-s131", "m12-m10-restart-s141")]:
    for v in (2, 4):
        p = np.stack([load(n)[:v] for n in mix])  # members, views, N, 7
        arith = (p.mean((0, 1)).argmax(1) == y).mean()
        geo = (np.log(np.clip(p, 1e-9, 1)).mean((0, 1)).argmax(1) == y).mean()
        print(f"{v} views  arithmetic {arith:.2%}  geometric {geo:.2%}  " + " + ".join(mix))
