#!/usr/bin/env bash
# m25: the 24-epoch cycle cut to 16 at the end of its 7th epoch (session 32's time; runs/m25-plan.md)
cd /work/main
export KERAS_BACKEND=torch OMP_WAIT_POLICY=ACTIVE
H=runs/m25-m18-sgd-s271/history.csv
while [ "$(wc -l < $H)" -lt 8 ]; do sleep 5; done
sleep 20
pkill -INT -f "name m25-m18-sgd" ; sleep 5
while pgrep -f "name m25-m18-sgd" >/dev/null; do sleep 2; done
date >> runs/m25-shorten.time
ferkit train --data ../shared/data/fer2013/fer2013.csv.gz --model medium --init members/m18-m17-restart-s201/model.weights.h5 --optimizer sgd --learning-rate 0.01 --schedule cosine --ferplus-weight 0.3 --ema 0.999 --epochs 16 --augment real --seed 271 --out runs --name m25-m18-sgd-s271 --resume >> runs/m25.log 2>&1 &
sleep 30
runs/after-m25.sh
