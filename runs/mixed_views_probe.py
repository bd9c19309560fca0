"""Exploration (holdout only, PublicTest unread): do per-member view counts beat one count for all?
Each member of a subset gets its own view count in {1, 2, 4}; cost = sum(views_i * int8 ms per view_i)."""
import itertools, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, "scripts")
from pick_ensemble import member_views, score, single_network, scaled_costs
from ferkit.data import load_dataset
from ferkit.training.ensemble import member_onnx

cands = sys.argv[1:]
_, held = load_dataset("../shared/data/fer2013/fer2013.csv.gz").split("Training").holdout(0.1, 42)
paths = [single_network(member_onnx(c)) for c in cands]
names = [p.parent.name.split("-")[0] for p in paths]
costs = scaled_costs(paths, 0.5)   # int8 per view, from bench: fast 0.99 ms for 2 views
hv = [member_views(p, held.images, "holdout") for p in paths]
means = {(i, v): hv[i][:v].mean(0) for i in range(len(paths)) for v in (1, 2, 4)}
rows = []
for size in range(1, 5):
    for subset in itertools.combinations(range(len(paths)), size):
        for vs in itertools.product((1, 2, 4), repeat=size):
            cost = sum(v * costs[i] for i, v in zip(subset, vs))
            if cost > 9.5:
                continue
            acc, loss = score(sum(means[i, v] for i, v in zip(subset, vs)) / size, held.hard_labels)
            rows.append((acc, -loss, cost, " + ".join(f"{names[i]}x{v}" for i, v in zip(subset, vs)),
                         len(set(vs)) == 1))
rows.sort(reverse=True)
print("best mixed or uniform (cost = int8 ms estimate):")
for r in rows[:25]:
    print(f"  {r[0]:.2%}  loss {-r[1]:.4f}  {r[2]:5.2f} ms  {'uniform' if r[4] else 'mixed  '}  {r[3]}")
print("best uniform:")
for r in [r for r in rows if r[4]][:8]:
    print(f"  {r[0]:.2%}  loss {-r[1]:.4f}  {r[2]:5.2f} ms  {r[3]}")
