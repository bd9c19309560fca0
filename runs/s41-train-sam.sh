#!/bin/bash
# m42 (runs/soup41-plan.md): m27 given m36's SAM cycle, a soup ingredient.
cd /work/main
export KERAS_BACKEND=torch OMP_WAIT_POLICY=ACTIVE
ferkit train --data ../shared/data/fer2013/fer2013.csv.gz --model vgg --init members/m27-m12-wide-s291 \
  --optimizer adamw --learning-rate 5e-4 --schedule cosine --ferplus-weight 0.3 --ema 0.999 --epochs 6 \
  --augment strong --sam 0.05 --seed 405 --no-publictest --out runs --name m42-m27-sam-s405 > runs/m42-m27-sam-s405.log 2>&1
