#!/usr/bin/env bash
# The main job for a newcomer: set up .venv, train the toy config, sample from it, say where the results are.
# Usage: bash examples/quickstart.sh [workdir]      (default workdir: runs/toy)
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR="${1:-runs/toy}"
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
echo "== installing torch 2.13.0 and scoresde (with tqdm and matplotlib)"
install() {  # pip's output goes to .venv/install.log and is shown only if something fails
  .venv/bin/python -m pip install "$@" >> .venv/install.log 2>&1 || { cat .venv/install.log; exit 1; }
}
install --upgrade pip
install torch==2.13.0   # on this project's machines a local CPU build
install -e ".[cli]"
echo "== training configs/vp/toy.py (2-D checkerboard, VP-SDE, small MLP) in $WORKDIR"
.venv/bin/scoresde train --config configs/vp/toy.py --workdir "$WORKDIR"
echo "== sampling 2000 points with the predictor-corrector sampler"
.venv/bin/scoresde sample --workdir "$WORKDIR" --sampler pc --steps 500 --n 2000 --batch-size 2000
echo
echo "Done. Results in $WORKDIR/:"
echo "  samples/pc_500.png        scatter plot of 2000 samples (samples/step_*.png: during training)"
echo "  samples/pc_500.npz        the samples, NFE and wall time"
echo "  log.jsonl                 training and held-out losses"
echo "  checkpoints/latest.pt     model, EMA, optimiser; rerun the train command to resume"
