#!/bin/bash
# run the soup-F pick with the background training paused (two spinning OpenMP pools slow both), then resume it
pids=$(pgrep -f "ferkit train --data")
kill -STOP $pids
bash runs/pick-soupF.sh
kill -CONT $pids
