#!/usr/bin/env bash
# session 41: one pick over runs/pick-soupF.sh's candidates that this checkout holds (runs/m30 and runs/m33 lived
# in an earlier checkout's ignored runs/) and the m27 + m42 soup, run only if the soup passes runs/soup41-plan.md.
cd /work/main
export KERAS_BACKEND=torch OMP_WAIT_POLICY=ACTIVE
date > runs/s41-pick.time
python3 scripts/pick_ensemble.py members/m1-fast-e66-s42 members/m2-compact-sgd-s7 members/m3-g6ft-ema-s16 \
  members/m5-kd-compact-s23 members/m6-votes-compact-s31 members/x1-fast-real-s21 members/m8-votes-real-s91 \
  members/c3-patient-kd-s112 members/x5-fast-real-views-s21 members/m11-m10-real-s131 members/m12-m10-restart-s141 \
  members/m13-m12-restart-s151 members/m14-medium-real-mixup-s161 members/m15-m12-kd-s171 members/m16-m14-restart-s181 \
  members/m17-m16-restart-s191 members/m18-m17-restart-s201 members/m19-m12-real-s211 members/m25-m18-sgd-s271 \
  members/m27-m12-wide-s291 members/m28-m25-wide-s301 members/m29-m27-sgd-s311 \
  members/m31-m15-wide-s331 runs/soup41/m27+m42 \
  --data ../shared/data/fer2013/fer2013.csv.gz --member-ms 0.3 --budget-ms 9.5 --fit-weights 40 --int8 3 --robust-floor accurate \
  --real-floor accurate --real-margin 1 --confirm accurate --no-publictest > runs/s41-pick.txt 2>&1
date >> runs/s41-pick.time
