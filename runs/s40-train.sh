#!/bin/bash
# m38 then m39 (runs/soup40-plan.md): m28 continued at lr 5e-4 without SAM, two seeds, soup ingredients.
cd /work/main
export KERAS_BACKEND=torch OMP_WAIT_POLICY=ACTIVE
for seed in 401 402; do
  name=m$((seed - 363))-m28-cont-s$seed
  ferkit train --data ../shared/data/fer2013/fer2013.csv.gz --model vgg --init members/m28-m25-wide-s301 \
    --optimizer adamw --learning-rate 5e-4 --schedule cosine --ferplus-weight 0.3 --ema 0.999 --epochs 8 \
    --augment strong --seed $seed --no-publictest --out runs --name $name > runs/$name.log 2>&1
done
