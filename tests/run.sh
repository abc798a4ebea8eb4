#!/usr/bin/env bash
# The test suite on a fresh clone: create .venv if needed (CPU torch 2.13.0 first: an unpinned torch pulls
# GBs of CUDA wheels), install scoresde with its test extras, run pytest. Extra arguments go to pytest.
# Usage: bash tests/run.sh [-x] [-k name] ...
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
install() {  # pip's output goes to .venv/install.log and is shown only if something fails
  .venv/bin/python -m pip install "$@" >> .venv/install.log 2>&1 || { cat .venv/install.log; exit 1; }
}
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "== installing torch 2.13.0"
  install --upgrade pip
  install torch==2.13.0
fi
echo "== installing scoresde with its test extras"
install -e ".[test]"
echo "== running the tests"
exec .venv/bin/python -m pytest -q "$@"
