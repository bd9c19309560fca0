"""runs/big-plan.md: one pre-registered uniform mix, scored as the pick scores its winner (no search)."""
import sys
from pathlib import Path

sys.path.insert(0, "scripts")
import numpy as np  # noqa: E402
import pick_ensemble as pe  # noqa: E402
from ferkit.data import load_dataset  # noqa: E402
from ferkit.inference.classifier import FacialExpressionModel  # noqa: E402
from ferkit.training.ensemble import build_int8_ensemble, member_onnx  # noqa: E402
from ferkit.training.quantize import calibration_faces  # noqa: E402
from ferkit.config import default_shared_dir  # noqa: E402

DATA = "../shared/data/fer2013/fer2013.csv.gz"
candidates = sys.argv[1:]
paths = [pe.single_network(member_onnx(c)) for c in candidates]
names = [p.parent.name for p in paths]
costs = pe.scaled_costs(paths, 0.3)
held = load_dataset(DATA).split("Training").holdout(0.1, 42)[1]
views = [pe.member_views(p, held.images, "holdout") for p in paths]
two_view = [pe.score(v[:2].mean(0), held.hard_labels)[0] for v in views]
order = sorted(range(len(paths)), key=lambda i: two_view[i])
members = list(range(len(paths)))
while sum(costs[i] for i in members) > 9.5:
    drop = next(i for i in order if i in members)
    print(f"dropped {names[drop]} (two views {two_view[drop]:.2%})")
    members.remove(drop)
subset = tuple(members)
print("mix:", " + ".join(names[i] for i in subset), f"nominal {sum(costs[i] for i in subset):.2f} ms")
kept = held.holdout_mask(pe.CONFIRM_FRACTION, pe.CONFIRM_SEED)
floors = pe.robust_floors("accurate", paths, held, ~kept)
floors["tw-faces"] = pe.real_floor("accurate", paths, default_shared_dir(), 0.01)
weights = pe.equal_if_none(None, len(subset))
for name, floor in floors.items():
    print(f"floor {name}: accurate {floor.accuracy:.2%}, mix (float) {floor.scored(subset, 1, weights):.2%}")
graph = build_int8_ensemble([paths[i] for i in subset], Path("runs/big/big-v1.onnx"), calibration_faces(DATA),
                            list(weights), 1)
model = FacialExpressionModel(graph)
search, confirm = held.select(~kept), held.select(kept)
float_search = pe.score(pe.mix([v[:, ~kept] for v in views], subset, 1, weights), search.hard_labels)[0]
int8_search = float((model.predict_proba(search.images).argmax(1) == search.hard_labels).mean())
print(f"search faces ({len(search)}): float {float_search:.2%}, int8 {int8_search:.2%}")
print(f"ms per face (int8, batch 1): {pe.time_per_face(model, batch=1, repeats=200):.2f}")
c = pe.paired_comparison(model.predict_proba(confirm.images),
                         FacialExpressionModel.load("accurate").predict_proba(confirm.images), confirm.hard_labels)
print(f"untouched {len(confirm)}: mix {c['winner']:.2%}, accurate {c['reference']:.2%}; only mix {c['only_winner']}, "
      f"only accurate {c['only_reference']}, p = {c['p']:.3f}")
