#!/usr/bin/env bash
# Installs everything the tests need (Python extras, Debian's Chromium for the browser test)
# and runs the whole suite. Tests that need ../shared skip with a reason when it is absent,
# except in CI (CI=true, or FERKIT_REQUIRE_SHARED=1 / FERKIT_REQUIRE_BROWSER=1 set by hand),
# where such a skip, or Chromium missing for the browser tests, is a failure (tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Debian chromium for the browser test..."
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi

# torch first and pinned: an unpinned resolve pulls the newest CUDA build (GBs)
python3 -m pip install -q --disable-pip-version-check torch==2.13.0
python3 -m pip install -q --disable-pip-version-check -e ".[train,dev,ray]"

export KERAS_BACKEND=torch OMP_WAIT_POLICY=ACTIVE PYTHONUNBUFFERED=1
if [ "${CI:-}" = true ]; then export FERKIT_REQUIRE_SHARED=1 FERKIT_REQUIRE_BROWSER=1; fi
python3 -m pytest -q -rs "$@"
