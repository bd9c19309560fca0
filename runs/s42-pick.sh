#!/usr/bin/env bash
# session 42 (runs/s42-plan.md): the pick over every member in members/, session 27's flags plus
# --per-member-views 3000, with the background training paused (two spinning OpenMP pools slow both).
cd /work/main
export KERAS_BACKEND=torch
pids=$(pgrep -f "ferkit train --data")
[ -n "$pids" ] && kill -STOP $pids
date > runs/s42-pick.time
python3 scripts/pick_ensemble.py $(ls -d members/*/ | sed 's#/$##' | sort -V) \
  --data ../shared/data/fer2013/fer2013.csv.gz --member-ms 0.3 --budget-ms 9.5 --fit-weights 40 --int8 3 \
  --robust-floor accurate --real-floor accurate --real-margin 1 --confirm accurate --per-member-views 3000 \
  --no-publictest > runs/s42-pick.txt 2>&1
date >> runs/s42-pick.time
[ -n "$pids" ] && kill -CONT $pids
