#!/usr/bin/env bash
# session 25: figures for the new `accurate` and m18, read after the decision (runs/m18-plan.md)
cd /work/main
export OMP_WAIT_POLICY=PASSIVE
D=../shared/data/fer2013/fer2013.csv.gz
V=../shared/data/ferplus/fer2013new.csv
ferkit evaluate --data $D --model members/m18-m17-restart-s201 --json > runs/s25-m18-public.json
ferkit evaluate --data $D --model members/m18-m17-restart-s201 --tta --json > runs/s25-m18-public-tta.json
ferkit evaluate --data $D --labels ferplus --ferplus-votes $V --model members/m18-m17-restart-s201 --json > runs/s25-m18-ferplus.json
ferkit evaluate --data $D --labels ferplus --ferplus-votes $V --model accurate --json > runs/s25-accurate-ferplus.json
ferkit evaluate --data $D --model accurate --json > runs/s25-accurate-public.json
python3 bench/bench_models.py --models fast accurate > runs/s25-bench-models.txt 2>&1
python3 bench/bench_robustness.py --models accurate --data $D > runs/s25-robustness.txt 2>&1
date > runs/s25-measure.done
