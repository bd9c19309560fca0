#!/bin/bash
# One device call (issue 13): train every member of scripts/gpu_members.py at once on the GPU
# until a deadline BUDGET seconds from now, strip the checkpoints to the weights alone, and pack
# the run folders into $OUT in pieces under 16 MB. Needs .gpu/ (data + wheels) carried along.
#   bash scripts/gpu_members.sh 420            # on the device
#   cat members.tar.* | tar -xf -              # here, then: python scripts/gpu_members.py finish runs-gpu/*/
BUDGET=${1:-420}
MEMBERS=${MEMBERS:-"g1-vgg-sgd-s1 g2-medium-sgd-s2 g3-medium-sgd-std-s3 g4-compact-adamw-s4 g5-compact-sgd-s5"}
OUT=${OUT:-/tmp/gpu-out}
DEADLINE=$(( $(date +%s) + BUDGET ))
export GPU_AT_ONCE=$(echo $MEMBERS | wc -w)
if [ -z "${SKIP_INSTALL:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .gpu/whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
# the GPU does the arithmetic: CPU threads only feed it, so no spinning and few threads each
export KERAS_BACKEND=torch OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=${OMP_NUM_THREADS:-3} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
mkdir -p runs-gpu "$OUT"
for m in $MEMBERS; do
    timeout $(( BUDGET + 40 )) python3 scripts/gpu_members.py train "$m" --pack .gpu --out runs-gpu \
        --deadline "$DEADLINE" ${LIMIT:+--limit $LIMIT --steps 2} > "runs-gpu/$m.log" 2>&1 &
done
(sleep 120; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>/dev/null) &
wait
for m in $MEMBERS; do python3 scripts/gpu_members.py strip "runs-gpu/$m" > "runs-gpu/$m.strip.log" 2>&1 & done
wait
grep -h "s per epoch" runs-gpu/*.log
for m in $MEMBERS; do echo "== $m"; grep -v "^Epoch " "runs-gpu/$m.log" | tail -n 3; tail -n 2 "runs-gpu/$m.strip.log"; done
tar -cf - --exclude=backup runs-gpu | split -b 15M - "$OUT/members.tar."
ls -la "$OUT"
