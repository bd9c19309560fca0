#!/bin/bash
# After m40 (and m41): two-view holdout of each, then the greedy soup over m27 and its continuations
# (runs/soup41-plan.md). Ingredient order: by two-view holdout, m27's own 71.31% among them.
cd /work/main
export KERAS_BACKEND=torch OMP_NUM_THREADS=1
for run in "$@"; do python3 runs/s36_views.py runs/$run; done
