#!/usr/bin/env bash
# s19, exploratory (decides nothing; PublicTest unread): which mixes of today's members meet --robust-floor accurate
cd /work/main
export KERAS_BACKEND=torch OMP_WAIT_POLICY=ACTIVE
python3 scripts/pick_ensemble.py members/m1-fast-e66-s42 members/m2-compact-sgd-s7 members/m3-g6ft-ema-s16 \
  members/m5-kd-compact-s23 members/m6-votes-compact-s31 members/x1-fast-real-s21 members/m8-votes-real-s91 \
  members/c3-patient-kd-s112 members/x5-fast-real-views-s21 members/m11-m10-real-s131 members/m12-m10-restart-s141 \
  members/m13-m12-restart-s151 \
  --data ../shared/data/fer2013/fer2013.csv.gz --member-ms 0.3 --budget-ms 9.5 --fit-weights 40 --robust-floor accurate \
  --show 20 --no-publictest > runs/s19-robust-pick.txt 2>&1
