#!/bin/bash
# m43 (runs/s42-plan.md): compact from scratch with m6's recipe plus SAM 0.05, cosine, 30 epochs; resumable.
cd /work/main
export KERAS_BACKEND=torch OMP_WAIT_POLICY=ACTIVE
resume=""; [ -d runs/m43-compact-sam-s431 ] && resume="--resume"
ferkit train --data ../shared/data/fer2013/fer2013.csv.gz --model compact --ferplus-weight 0.3 --ema 0.999 \
  --schedule cosine --epochs 16 --augment strong --sam 0.05 --seed 431 --no-publictest --out runs \
  --name m43-compact-sam-s431 $resume >> runs/m43-compact-sam-s431.log 2>&1
