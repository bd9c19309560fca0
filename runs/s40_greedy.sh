#!/bin/bash
# Greedy soup (runs/soup40-plan.md): NAME then ingredients in order of two-view holdout; each kept only if the
# soup's two-view holdout does not fall.  bash runs/s40_greedy.sh NAME FIRST_TWO_VIEW FOLDER...
cd /work/main; export KERAS_BACKEND=torch OMP_NUM_THREADS=1
name=$1; best=$2; shift 2
kept=("$1"); shift
for next in "$@"; do
  out=runs/soup40/$name-$((${#kept[@]} + 1))
  python3 runs/s40_soup.py $out "${kept[@]}" $next > /dev/null 2>&1 || { echo "soup failed: $next"; continue; }
  line=$(python3 runs/s36_views.py $out 2>/dev/null | grep view)
  two=$(echo "$line" | sed -E 's/.*2 view\(s\) ([0-9.]+)%.*/\1/')
  echo "$line  (${kept[*]} + $next)"
  if python3 -c "import sys; sys.exit(0 if $two >= $best else 1)"; then kept+=("$next"); best=$two; echo "  kept"; fi
done
echo "greedy $name: ${kept[*]} two views $best"
