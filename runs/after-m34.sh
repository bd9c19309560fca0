#!/usr/bin/env bash
# session 37 (replaces after-m33.sh, stopped before its pick): m34 (m2 widened into vgg) after m33, then one pick
# over both (runs/m33-plan.md); PublicTest unread.
cd /work/main
export KERAS_BACKEND=torch OMP_WAIT_POLICY=ACTIVE
python3 scripts/keras_from_onnx.py members/m2-compact-sgd-s7 --data ../shared/data/fer2013/fer2013.csv.gz \
  --out runs/m2-keras > runs/m2-keras.log 2>&1
python3 scripts/widen_member.py runs/m2-keras --to vgg --out runs/m34-init --seed 361 \
  --data ../shared/data/fer2013/fer2013.csv.gz > runs/m34-init.log 2>&1
while pgrep -f "name m33-x5-wide" >/dev/null; do sleep 20; done
ferkit train --data ../shared/data/fer2013/fer2013.csv.gz --model vgg --init runs/m34-init --optimizer adamw \
  --learning-rate 1e-3 --schedule cosine --ferplus-weight 0.3 --ema 0.999 --epochs 8 --augment strong --seed 361 \
  --out runs --name m34-m2-wide-s361 > runs/m34.log 2>&1
date > runs/m34-pick.time
python3 scripts/pick_ensemble.py members/m1-fast-e66-s42 members/m2-compact-sgd-s7 members/m3-g6ft-ema-s16 \
  members/m5-kd-compact-s23 members/m6-votes-compact-s31 members/x1-fast-real-s21 members/m8-votes-real-s91 \
  members/c3-patient-kd-s112 members/x5-fast-real-views-s21 members/m11-m10-real-s131 members/m12-m10-restart-s141 \
  members/m13-m12-restart-s151 members/m14-medium-real-mixup-s161 members/m15-m12-kd-s171 members/m16-m14-restart-s181 \
  members/m17-m16-restart-s191 members/m18-m17-restart-s201 members/m19-m12-real-s211 members/m25-m18-sgd-s271 \
  members/m27-m12-wide-s291 members/m28-m25-wide-s301 members/m29-m27-sgd-s311 runs/m30-m28-kd-s321 \
  members/m31-m15-wide-s331 runs/m33-x5-wide-s351 runs/m34-m2-wide-s361 \
  --data ../shared/data/fer2013/fer2013.csv.gz --member-ms 0.3 --budget-ms 9.5 --fit-weights 40 --int8 3 --robust-floor accurate \
  --real-floor accurate --real-margin 1 --confirm accurate --no-publictest > runs/m34-pick.txt 2>&1
date >> runs/m34-pick.time
