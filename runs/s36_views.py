"""Holdout accuracy of run folders, plain / two views / four views (the keep rules of runs/m31-plan.md)."""
import sys
sys.path.insert(0, "scripts")
import pick_ensemble as pe  # noqa: E402
from ferkit.data import load_dataset  # noqa: E402
from ferkit.training.ensemble import member_onnx  # noqa: E402

held = load_dataset("../shared/data/fer2013/fer2013.csv.gz").split("Training").holdout(0.1, 42)[1]
for folder in sys.argv[1:]:
    views = pe.member_views(member_onnx(folder), held.images, "holdout")
    figures = [pe.score(views[:v].mean(0), held.hard_labels)[0] for v in (1, 2, 4)]
    print(folder, " ".join(f"{v} view(s) {a:.2%}" for v, a in zip((1, 2, 4), figures)))
