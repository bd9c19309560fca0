#!/usr/bin/env bash
# m13 (runs/m13-plan.md, runs/s18-pick-plan.md): stop at the first epoch boundary after 13:20 UTC unless it has
# ended, export the best epoch as `ferkit train` does, then the pick; PublicTest stays unread.
cd /work/main
export KERAS_BACKEND=torch OMP_WAIT_POLICY=ACTIVE
R=runs/m13-m12-restart-s151
until [ "$(date -u +%H%M)" -ge 1320 ] || ! pgrep -f "name m13-m12" >/dev/null; do sleep 20; done
if pgrep -f "name m13-m12" >/dev/null; then
  rows=$(wc -l < $R/history.csv)
  while [ "$(wc -l < $R/history.csv)" -eq "$rows" ]; do sleep 2; done
  sleep 3; pkill -f "name m13-m12"; sleep 5
  echo "stopped after $(($(wc -l < $R/history.csv) - 1)) epochs at $(date -u)" > runs/m13-stop.txt
  python3 - > runs/m13-export.log 2>&1 <<'PY'
import json, shutil, sys
sys.path.insert(0, "bench")
from bench_models import count_macs
from pathlib import Path
from ferkit.data import load_dataset
from ferkit.training.export import export_run, score_run
from ferkit.training.callbacks import read_history
run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/m13-m12-restart-s151")
history = read_history(run / "history.csv")
val = history["val_accuracy"]
cfg = json.loads((run / "train_config.json").read_text())
export_run(run, "medium", 1)
shutil.rmtree(run / "backup", ignore_errors=True)
params = count_macs(run / "model.json")[0]
test = load_dataset(cfg["data"]).split("PublicTest")
info = {"model": "medium", "parameters": int(params), "data": cfg["data"], "train_split": "Training", "val_split": "PublicTest",
        "pick_split": "Training holdout (10%, seed 42)", "epochs_run": len(val),
        "best_epoch": int(max(range(len(val)), key=val.__getitem__)) + 1,
        "train_seconds": round(sum(history["epoch_seconds"])), "stopped_by_clock": True,
        "command": cfg["command"], "train": {k: v for k, v in cfg.items() if k != "command"}}
m = score_run(run, test.images, test.hard_labels, "PublicTest", info)
print(f"{run}: best epoch {info['best_epoch']}, PublicTest accuracy {m['accuracy']:.4f} (TTA {m['accuracy_tta']:.4f})")
PY
fi
python3 scripts/pick_ensemble.py members/m1-fast-e66-s42 members/m2-compact-sgd-s7 members/m3-g6ft-ema-s16 \
  members/m5-kd-compact-s23 members/m6-votes-compact-s31 members/x1-fast-real-s21 members/m8-votes-real-s91 \
  members/c3-patient-kd-s112 members/x5-fast-real-views-s21 members/m11-m10-real-s131 members/m12-m10-restart-s141 $R \
  --data ../shared/data/fer2013/fer2013.csv.gz --member-ms 0.5 --budget-ms 9.5 --fit-weights 40 --int8 3 \
  --no-publictest > runs/m13-pick.txt 2>&1
echo done >> runs/m13-pick.txt
