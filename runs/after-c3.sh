#!/usr/bin/env bash
# holdout-only figures for c1 as soon as its training ends (runs/c3-plan.md); PublicTest stays unread
cd /work/main
export KERAS_BACKEND=torch OMP_WAIT_POLICY=ACTIVE
while pgrep -f "name c3-patient-kd-s112" >/dev/null; do sleep 20; done
R=runs/c3-patient-kd-s112
python3 runs/holdout_score.py $R
python3 runs/c1_int8.py $R runs/c3-int8 2>&1 | grep -v Warn | tail -2
python3 runs/holdout_score.py runs/c3-int8
python3 bench/bench_robustness.py --models runs/c3-int8 fast
python3 bench/bench_real_faces.py --model runs/c3-int8 --only tw --configs yunet+align
