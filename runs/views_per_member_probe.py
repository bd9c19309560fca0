"""Session 29 probe: accurate's six members, each with its own number of test-time views (1, 2 or 4), instead of
one count for all. Holdout only: the pick's four fifths and the untouched fifth, separately."""
import itertools
import sys

import numpy as np

sys.path.insert(0, "scripts")
from ferkit.data import load_dataset  # noqa: E402
from ferkit.training.ensemble import member_onnx  # noqa: E402
from pick_ensemble import CONFIRM_FRACTION, CONFIRM_SEED, member_views, scaled_costs  # noqa: E402

MIX = ["members/m1-fast-e66-s42", "members/m8-votes-real-s91", "members/x5-fast-real-views-s21",
       "members/m12-m10-restart-s141", "members/m13-m12-restart-s151", "members/m18-m17-restart-s201"]
held = load_dataset("../shared/data/fer2013/fer2013.csv.gz").split("Training").holdout(0.1, 42)[1]
y = held.hard_labels
kept = held.holdout_mask(CONFIRM_FRACTION, CONFIRM_SEED)
V = [member_views(member_onnx(m), held.images, "holdout") for m in MIX]
COST = scaled_costs([member_onnx(m) for m in MIX], 0.3)  # ms a view, as the pick's --member-ms 0.3
rows = []
for views in itertools.product((1, 2, 4), repeat=len(MIX)):
    cost = sum(c * v for c, v in zip(COST, views))
    if cost > 9.5:
        continue
    p = np.mean([V[i][:v].mean(0) for i, v in enumerate(views)], 0)
    right = p.argmax(1) == y
    rows.append((right[~kept].mean(), right[kept].mean(), cost, views))
rows.sort(reverse=True)
base = [r for r in rows if r[3] == (2,) * 6][0]
print(f"all at 2 views: search {base[0]:.2%}  fifth {base[1]:.2%}  {base[2]:.2f} ms")
for r in rows[:10]:
    print(f"search {r[0]:.2%}  fifth {r[1]:.2%}  {r[2]:.2f} ms  views {r[3]}")
