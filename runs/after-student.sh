#!/usr/bin/env bash
# Holdout-only figures for a distilled student as soon as its training ends (c3: runs/c3-plan.md, c4: runs/c4-plan.md);
# PublicTest stays unread. Usage: bash runs/after-student.sh RUN_NAME  (e.g. c3-patient-kd-s112; int8 graph in runs/cN-int8)
cd /work/main
export KERAS_BACKEND=torch OMP_WAIT_POLICY=ACTIVE
NAME=$1; INT8=runs/${NAME%%-*}-int8
while pgrep -f "name $NAME" >/dev/null; do sleep 20; done
R=runs/$NAME
python3 runs/holdout_score.py $R
python3 runs/c1_int8.py $R $INT8 2>&1 | grep -v Warn | tail -2
python3 runs/holdout_score.py $INT8
python3 bench/bench_robustness.py --models $INT8 fast
python3 bench/bench_real_faces.py --model $INT8 --only tw --configs yunet+align
