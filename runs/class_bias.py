"""Session 23 exploration: per-class log-bias on the pick winner's mix (x5 + m12 + m14, 2 views, equal weights),
fitted by log-loss on 4 folds of the holdout, scored on the 5th. Decides nothing by itself."""
import glob
import numpy as np
from scipy.optimize import minimize
from ferkit.data import load_dataset

held = load_dataset("../shared/data/fer2013/fer2013.csv.gz").split("Training").holdout(0.1, 42)[1]
y = held.hard_labels
mix = sum(np.load(sorted(glob.glob(f"runs/pick-cache/{n}-*-holdout.npy"))[0])[:2].mean(0)
          for n in ("x5-fast-real-views-s21", "m12-m10-restart-s141", "m14-medium-real-mixup-s161")) / 3
logp = np.log(np.clip(mix, 1e-9, 1))

def nll(b, lp, t):
    z = lp + b
    z = z - z.max(1, keepdims=True)
    return -(z[np.arange(len(t)), t] - np.log(np.exp(z).sum(1))).mean()

folds = np.random.default_rng(0).permutation(len(y)) % 5
for seed in range(3):
    folds = np.random.default_rng(seed).permutation(len(y)) % 5
    base = fitted = 0
    for k in range(5):
        tr, te = folds != k, folds == k
        b = minimize(nll, np.zeros(7), args=(logp[tr], y[tr]), method="L-BFGS-B").x
        base += (logp[te].argmax(1) == y[te]).sum()
        fitted += ((logp[te] + b).argmax(1) == y[te]).sum()
    print(f"split seed {seed}: plain {base / len(y):.2%}  with a fitted class bias {fitted / len(y):.2%}")
