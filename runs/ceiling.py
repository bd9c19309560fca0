"""Exploration only (decides nothing): how far the cached compact candidates go on the holdout without a budget,
and whether a per-class bias fitted by cross-validation inside the holdout adds anything."""
import numpy as np, sys
sys.path.insert(0, "scripts")
from pick_ensemble import score, fit_weights, cross_validated_accuracy
from ferkit.data import load_dataset
from pathlib import Path
_, held = load_dataset("../shared/data/fer2013/fer2013.csv.gz").split("Training").holdout(0.1, 42)
y = held.hard_labels
cache = {p.name.split("-4712641")[0]: np.load(p) for p in sorted(Path("runs/pick-cache").glob("*holdout.npy"))}
for v in (1, 2, 4):
    allm = np.stack([c[:v].mean(0) for c in cache.values()])
    print(f"all {len(cache)} equal, {v} views: {score(allm.mean(0), y)[0]:.2%}   fitted CV: {cross_validated_accuracy(allm, y):.2%}")
shipped = np.stack([cache[n][:2].mean(0) for n in ("m1-fast-e66-s42", "m2-compact-sgd-s7", "m3-g6ft-ema-s16")])
p = np.tensordot([0.421, 0.267, 0.312], shipped, 1)
print("accurate (float):", f"{score(p, y)[0]:.2%}")
# per-class log-bias, 5-fold CV inside the holdout
from scipy.optimize import minimize
def fit_bias(lp, yy):
    def loss(b):
        z = lp + b; z = z - z.max(1, keepdims=True); e = np.exp(z); q = e / e.sum(1, keepdims=True)
        g = q.copy(); g[np.arange(len(yy)), yy] -= 1
        return float(-np.log(np.clip(q[np.arange(len(yy)), yy], 1e-9, 1)).mean()), g.mean(0)
    return minimize(loss, np.zeros(7), jac=True).x
order = np.random.default_rng(0).permutation(len(y)); correct = 0
lp = np.log(np.clip(p, 1e-9, 1))
for part in np.array_split(order, 5):
    rest = np.setdiff1d(order, part); b = fit_bias(lp[rest], y[rest])
    correct += int(((lp[part] + b).argmax(1) == y[part]).sum())
print(f"accurate + per-class bias (CV): {correct/len(y):.2%}")
