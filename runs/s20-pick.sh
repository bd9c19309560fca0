#!/usr/bin/env bash
# session 20 (runs/s20-gpu-plan.md): the pick with the GPU members; PublicTest stays unread
cd /work/main
export KERAS_BACKEND=torch OMP_WAIT_POLICY=ACTIVE
python3 scripts/pick_ensemble.py members/*/ runs-gpu/g12-vgg-real-s61 runs-gpu/g13-medium-real-s62 runs-gpu/g14-medium-g13ft-s63 \
  --data ../shared/data/fer2013/fer2013.csv.gz --member-ms 0.3 --budget-ms 9.5 --fit-weights 40 --int8 3 \
  --robust-floor accurate --no-publictest > runs/s20-pick.txt 2>&1
