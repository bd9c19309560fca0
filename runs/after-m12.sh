#!/usr/bin/env bash
# m12 (runs/m12-plan.md): holdout figures and the pick as soon as training ends; PublicTest stays unread.
cd /work/main
export KERAS_BACKEND=torch OMP_WAIT_POLICY=ACTIVE
R=runs/m12-m10-restart-s141
while pgrep -f "name m12-m10" >/dev/null; do sleep 20; done
python3 runs/holdout_score.py $R > runs/after-m12.txt 2>&1
python3 scripts/pick_ensemble.py members/m1-fast-e66-s42 members/m2-compact-sgd-s7 members/m3-g6ft-ema-s16 \
  members/m5-kd-compact-s23 members/m6-votes-compact-s31 members/x1-fast-real-s21 members/m8-votes-real-s91 \
  runs/c1-consistent-kd-s111 members/c3-patient-kd-s112 members/x5-fast-real-views-s21 runs/m10-medium-votes-s121 runs/m11-m10-real-s131 $R \
  --data ../shared/data/fer2013/fer2013.csv.gz --member-ms 0.83 --budget-ms 9.5 --fit-weights 40 --int8 3 \
  --no-publictest > runs/m12-pick.txt 2>&1
