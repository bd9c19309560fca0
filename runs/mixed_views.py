"""Session 23 (robust floors as the pick's --robust-floor accurate; only mixes above 72.04% listed) exploration: per-member view counts (compact at 2, medium at 4, ...) on the cached holdout views.
Equal weights; cost = views x (0.3 ms compact, 0.67 ms medium), budget 9.5 ms. Decides nothing by itself."""
import glob, itertools, sys
import numpy as np
from ferkit.data import load_dataset

held = load_dataset("../shared/data/fer2013/fer2013.csv.gz").split("Training").holdout(0.1, 42)[1]
y = held.hard_labels
names = sys.argv[1:]
FLOORS = {"24px": 0.6626, "blurs15": 0.5634}  # the shipped `accurate` on the holdout (runs/m15-pick.txt)
views, cost = {}, {}
for n in names:
    f = [p for p in glob.glob(f"runs/pick-cache/{n}-*-holdout.npy")]
    f = sorted(f)[0]  # m14 is cached twice (members/ and runs/): same network
    views[n] = {v: np.load(f)[:v].mean(0) for v in (1, 2, 4)}
    for t in ("24px", "blurs15"):
        views[n, t] = {v: np.load(f.replace("holdout", "holdout-" + t))[:v].mean(0) for v in (1, 2, 4)}
    cost[n] = 0.67 if ("m1" in n[:2] and n[:3] in ("m11", "m12", "m13", "m14", "m15", "m16")) else 0.3
rows = []
for k in range(1, 5):
    for sub in itertools.combinations(names, k):
        for vs in itertools.product((1, 2, 4), repeat=k):
            c = sum(cost[n] * v for n, v in zip(sub, vs))
            if c > 9.5:
                continue
            p = sum(views[n][v] for n, v in zip(sub, vs))
            acc = (p.argmax(1) == y).mean()
            if acc < 0.7204:
                continue
            if any((sum(views[n, t][v] for n, v in zip(sub, vs)).argmax(1) == y).mean() < floor
                   for t, floor in FLOORS.items()):
                continue
            rows.append((acc, c, sub, vs, len(set(vs)) == 1))
rows.sort(key=lambda r: -r[0])
for r in rows[:15]:
    print(f"{r[0]:.2%} {r[1]:5.2f} ms uniform={r[4]} " + " + ".join(f"{n}x{v}" for n, v in zip(r[2], r[3])))
print("best uniform:", next(f"{r[0]:.2%} {r[2]} {r[3]}" for r in rows if r[4]))
