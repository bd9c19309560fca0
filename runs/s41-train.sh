#!/bin/bash
# m40 then m41 (runs/soup41-plan.md): m27 continued at lr 5e-4, two seeds, soup ingredients.
cd /work/main
export KERAS_BACKEND=torch OMP_WAIT_POLICY=ACTIVE
for seed in 403 404; do
  name=m$((seed - 363))-m27-cont-s$seed
  ferkit train --data ../shared/data/fer2013/fer2013.csv.gz --model vgg --init members/m27-m12-wide-s291 \
    --optimizer adamw --learning-rate 5e-4 --schedule cosine --ferplus-weight 0.3 --ema 0.999 --epochs 8 \
    --augment strong --seed $seed --no-publictest --out runs --name $name > runs/$name.log 2>&1
done
