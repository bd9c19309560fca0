"""Session 42, step 1 of runs/s42-plan.md: per-member test-time views against one view count for all.

Scores equal-weight float mixes on the pick's search faces (the holdout less the fifth `--confirm` keeps back,
which is not read here). One-count mixes: every subset of up to 6 candidates with 1, 2 or 4 views for all. Per-member
mixes: the subsets of the best TOP one-count mixes, each with every assignment of 1, 2 or 4 views per member, under
the budget. Costs: pick_ensemble's `--member-ms 0.3` scaling.

    KERAS_BACKEND=torch python3 runs/s42_views_mix.py members/m1-... > runs/s42-views-mix.txt
"""
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, "scripts")
from pick_ensemble import (CONFIRM_FRACTION, CONFIRM_SEED, VIEWS, member_views, scaled_costs,  # noqa: E402
                           single_network)

from ferkit.data import load_dataset  # noqa: E402
from ferkit.training.ensemble import member_onnx  # noqa: E402

BUDGET, TOP, MAX_MEMBERS = 9.5, 3000, 6

paths = [single_network(member_onnx(c)) for c in sys.argv[1:]]
names = [p.parent.name.split("-")[0] for p in paths]
costs = scaled_costs(paths, 0.3)
_, held = load_dataset("../shared/data/fer2013/fer2013.csv.gz").split("Training").holdout(0.1, 42)
kept = held.holdout_mask(CONFIRM_FRACTION, CONFIRM_SEED)
labels = held.hard_labels[~kept]
views = [member_views(p, held.images, "holdout")[:, ~kept] for p in paths]
P = {(i, v): views[i][:v].mean(0) for i in range(len(paths)) for v in VIEWS}  # (N, 7) per member and count
print(f"{len(labels)} search faces; candidates: " + ", ".join(f"{n} {c:.2f} ms" for n, c in zip(names, costs)))


def accuracy(subset, counts):
    probs = sum(P[i, v] for i, v in zip(subset, counts))
    return float((probs.argmax(1) == labels).mean())


ranked = []
for size in range(1, MAX_MEMBERS + 1):
    for subset in itertools.combinations(range(len(paths)), size):
        for v in VIEWS:
            cost = v * sum(costs[i] for i in subset)
            if cost <= BUDGET:
                ranked.append((accuracy(subset, (v,) * size), subset, (v,) * size, cost))
ranked.sort(key=lambda r: r[0], reverse=True)
print(f"{len(ranked)} one-count mixes within {BUDGET} ms")


def show(title, rows):
    print(title)
    for acc, subset, counts, cost in rows[:10]:
        print(f"  {acc:.2%}  {cost:5.2f} ms  " + " + ".join(f"{names[i]}x{v}" for i, v in zip(subset, counts)))


show("best one-count mixes:", ranked)
subsets = list(dict.fromkeys(r[1] for r in ranked[:TOP]))
per_member = []
for subset in subsets:
    for counts in itertools.product(VIEWS, repeat=len(subset)):
        cost = sum(v * costs[i] for i, v in zip(subset, counts))
        if cost <= BUDGET and len(set(counts)) > 1:
            per_member.append((accuracy(subset, counts), subset, counts, cost))
per_member.sort(key=lambda r: r[0], reverse=True)
print(f"{len(per_member)} per-member mixes (the {len(subsets)} subsets of the best {TOP} one-count mixes)")
show("best per-member mixes:", per_member)
gain = per_member[0][0] - ranked[0][0]
print(f"gain of the best per-member mix over the best one-count mix: {gain * 100:+.2f} points "
      f"({round(gain * len(labels)):+d} faces); the rule asks >= +0.15")
