"""Session 23 exploration: each member at its own best view count (its single-network holdout, ties to fewer),
subsets of up to 5, equal weights, robust floors as the pick's (--robust-floor accurate), budget 9.5 ms."""
import glob, itertools, sys
import numpy as np
from ferkit.data import load_dataset

held = load_dataset("../shared/data/fer2013/fer2013.csv.gz").split("Training").holdout(0.1, 42)[1]
y = held.hard_labels
FLOORS = {"24px": 0.6626, "blurs15": 0.5634}
names = sys.argv[1:]
V, best_v, cost = {}, {}, {}
for n in names:
    f = sorted(glob.glob(f"runs/pick-cache/{n}-*-holdout.npy"))[0]
    raw = {t: np.load(f if t == "" else f.replace("holdout", "holdout-" + t)) for t in ("", "24px", "blurs15")}
    accs = {v: (raw[""][:v].mean(0).argmax(1) == y).mean() for v in (1, 2, 4)}
    best_v[n] = max((1, 2, 4), key=lambda v: (accs[v], -v))
    V[n] = {t: a[:best_v[n]].mean(0) for t, a in raw.items()}
    cost[n] = (0.67 if n[:3] in ("m11", "m12", "m13", "m14", "m15", "m16") else 0.3) * best_v[n]
    print(f"{n:28s} views {best_v[n]}  {accs[best_v[n]]:.2%}")
rows = []
for k in range(1, 6):
    for sub in itertools.combinations(names, k):
        c = sum(cost[n] for n in sub)
        if c > 9.5:
            continue
        acc = (sum(V[n][""] for n in sub).argmax(1) == y).mean()
        if any((sum(V[n][t] for n in sub).argmax(1) == y).mean() < fl for t, fl in FLOORS.items()):
            continue
        rows.append((acc, c, sub))
rows.sort(key=lambda r: -r[0])
for acc, c, sub in rows[:12]:
    print(f"{acc:.2%} {c:5.2f} ms " + " + ".join(f"{n}x{best_v[n]}" for n in sub))
