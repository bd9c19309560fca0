"""Session 29 probe: would a learned combiner beat the arithmetic mean of accurate's members? Holdout only.

Reads the pick cache (each member's (4, N, 7) probabilities on the Training holdout); 5-fold CV inside the holdout.
"""
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, "scripts")
from ferkit.data import load_dataset  # noqa: E402
from ferkit.training.ensemble import member_onnx  # noqa: E402
from pick_ensemble import member_views  # noqa: E402

MIX = ["members/m1-fast-e66-s42", "members/m8-votes-real-s91", "members/x5-fast-real-views-s21",
       "members/m12-m10-restart-s141", "members/m13-m12-restart-s151", "members/m18-m17-restart-s201"]
held = load_dataset("../shared/data/fer2013/fer2013.csv.gz").split("Training").holdout(0.1, 42)[1]
y = held.hard_labels
P = np.stack([member_views(member_onnx(m), held.images, "holdout")[:2].mean(0) for m in MIX])  # (M, N, 7)
order = np.random.default_rng(0).permutation(len(y))
folds = np.array_split(order, 5)


def cv(fit_predict):
    right = 0
    for part in folds:
        rest = np.setdiff1d(order, part)
        right += int((fit_predict(rest, part) == y[part]).sum())
    return right / len(y)


print(f"mean of {len(MIX)} members, 2 views: {(P.mean(0).argmax(1) == y).mean():.2%}")
logp = np.log(np.clip(P, 1e-7, 1)).transpose(1, 0, 2).reshape(len(y), -1)  # (N, M*7)
for C in (0.01, 0.03, 0.1, 0.3, 1.0):
    acc = cv(lambda r, p: LogisticRegression(C=C, max_iter=2000).fit(logp[r], y[r]).predict(logp[p]))
    print(f"logistic regression on log-probs (C={C}): {acc:.2%} (5-fold CV)")
# class-prior correction: one bias per class on the mean's log-probs, fitted by log-loss
mean_log = np.log(np.clip(P.mean(0), 1e-7, 1))
for C in (0.1, 1.0, 10.0):
    def bias(r, p):
        def loss(b):
            z = mean_log[r] + b
            z -= z.max(1, keepdims=True)
            return float(-(z[np.arange(len(r)), y[r]] - np.log(np.exp(z).sum(1))).mean() + (b @ b) / (C * len(r)))
        b = minimize(loss, np.zeros(7)).x
        return (mean_log[p] + b).argmax(1)
    print(f"per-class bias on the mean (ridge 1/{C}): {cv(bias):.2%} (5-fold CV)")
