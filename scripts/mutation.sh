#!/usr/bin/env bash
# Mutation testing (mutmut, configured in pyproject.toml [tool.mutmut]): plants small bugs in one
# core module at a time and runs only the tests that cover it; a surviving mutant is a bug the
# suite would not catch. Slow (minutes to hours), so not part of CI.
#
#   scripts/mutation.sh                  every module below, smallest first
#   scripts/mutation.sh tracker crops    only these (names from MODULES)
#
# Runs on the last commit (git archive HEAD: other people's unfinished edits stay out), in a
# temporary copy (mutmut writes a mutants/ folder beside the code), niced;
# prints "module killed/total (share)" per module and keeps each run's results in
# $MUTATION_OUT (default /tmp/ferkit-mutation/NAME.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
pip show mutmut >/dev/null 2>&1 || python3 -m pip install -q mutmut

# name -> "module file|test files that cover it"
declare -A MODULES=(
  [tracker]="src/ferkit/vision/tracker.py|tests/test_tracker.py tests/test_vision.py"
  [crops]="src/ferkit/vision/crops.py|tests/test_crops.py tests/test_vision.py"
  [draw]="src/ferkit/vision/draw.py|tests/test_draw.py tests/test_vision.py"
  [detectors]="src/ferkit/vision/detectors.py|tests/test_detectors.py tests/test_vision.py"
  [pipeline]="src/ferkit/inference/pipeline.py|tests/test_pipeline.py tests/test_predict.py"
  [classifier]="src/ferkit/inference/classifier.py|tests/test_classifier.py tests/test_pipeline.py"
  [images]="src/ferkit/inference/images.py|tests/test_images.py tests/test_predict.py tests/test_vision.py"
  [writers]="src/ferkit/video/writers.py|tests/test_video.py"
  [process]="src/ferkit/video/process.py|tests/test_process.py tests/test_video.py tests/test_overlap.py"
  [source]="src/ferkit/video/source.py|tests/test_source.py tests/test_video.py"
  [overlap]="src/ferkit/video/overlap.py|tests/test_overlap.py tests/test_video.py"
  [web-sessions]="src/ferkit/web/engines/sessions.py|tests/test_web.py"
  [web-limits]="src/ferkit/web/engines/limits.py|tests/test_web.py tests/test_web_server.py"
  [web-jobs]="src/ferkit/web/engines/jobs.py|tests/test_jobs.py tests/test_web.py tests/test_web_server.py"
  [web-broadcast]="src/ferkit/web/engines/broadcast.py|tests/test_broadcast.py tests/test_web.py tests/test_web_server.py"
  [web-auth]="src/ferkit/web/auth.py|tests/test_web.py tests/test_web_server.py"
  [web-api]="src/ferkit/web/api.py|tests/test_web.py"  # with test_web_server.py mutmut's stats run fails
)
ORDER=(tracker crops draw pipeline classifier images overlap writers source process detectors web-sessions
       web-limits web-auth web-api web-broadcast web-jobs)
[ $# -gt 0 ] && ORDER=("$@")

OUT=${MUTATION_OUT:-/tmp/ferkit-mutation}
mkdir -p "$OUT"
export KERAS_BACKEND=torch OMP_WAIT_POLICY=ACTIVE
# the copy lives in /tmp, where ../shared is not: point the tests that need it at the real one
export FERKIT_SHARED_DIR="${FERKIT_SHARED_DIR:-$(cd .. && pwd)/shared}"
# the tests' random-weight model, exported once: each mutant's run would otherwise load Keras and
# export it again, and time out
export FERKIT_TINY_MODEL_DIR="$OUT/tiny_model"
if [ ! -f "$FERKIT_TINY_MODEL_DIR/model.onnx" ]; then
  python3 - "$FERKIT_TINY_MODEL_DIR" <<'PY'
import sys
from ferkit.training.backend import setup_keras
keras = setup_keras("float32")
from ferkit.models import create_model
from ferkit.training.export import export_model
keras.utils.set_random_seed(0)
from pathlib import Path
Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
export_model(create_model("compact"), Path(sys.argv[1]))
PY
fi
for name in "${ORDER[@]}"; do
  spec=${MODULES[$name]:?unknown module $name (one of: ${!MODULES[*]})}
  module=${spec%%|*} tests=${spec#*|}
  work=$(mktemp -d /tmp/ferkit-mutmut-XXXX)
  git archive HEAD | tar -x -C "$work"
  python3 - "$work/pyproject.toml" "$module" $tests <<'PY'
import json, os, re, sys
path, module, tests = sys.argv[1], sys.argv[2], sys.argv[3:]
tests = [t for t in tests if os.path.exists(os.path.join(os.path.dirname(path), t))]
text = open(path).read()
text = re.sub(r"(?m)^only_mutate = .*$", "only_mutate = " + json.dumps([module]), text)
text = re.sub(r"(?m)^pytest_add_cli_args_test_selection = .*$",
              "pytest_add_cli_args_test_selection = " + json.dumps(tests), text)
open(path, "w").write(text)
PY
  (cd "$work" && nice -n 10 python3 -m mutmut run --max-children "${MUTMUT_CHILDREN:-1}" >"$OUT/$name.log" 2>&1 || true
   cd "$work" && python3 -m mutmut results --all true >"$OUT/$name.txt" 2>&1 || true
   # the surviving mutants' diffs: the bugs no test catches yet
   for mutant in $(awk '/: survived$/ {sub(":", "", $1); print $1}' "$OUT/$name.txt"); do
     python3 -m mutmut show "$mutant" 2>&1 | grep -v '^\s*$'
   done >"$OUT/$name.survivors.diff")
  python3 - "$name" "$OUT/$name.txt" <<'PY'
import re, sys
name, results = sys.argv[1], open(sys.argv[2]).read()
states = re.findall(r"^\s*\S+: (\w[\w ]*)$", results, re.M)
killed = sum(s in ("killed", "timeout") for s in states)
print(f"{name:<14} {killed}/{len(states)} killed ({killed / max(len(states), 1):.0%})",
      {s: states.count(s) for s in sorted(set(states))})
PY
  rm -rf "$work"
done
