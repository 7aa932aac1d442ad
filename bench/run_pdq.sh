#!/usr/bin/env bash
# PDQ benchmark: echotrace vs Meta's reference core (pdqhash), identical
# pixels, single thread, one run. Fails if the hashes differ.
# Usage: bench/run_pdq.sh [--quick]
# Peer setup (pdqhash ships only an sdist; it needs numpy>=2 + cython to build):
#   pip install pillow "numpy>=2" cython setuptools wheel
#   pip install --no-build-isolation pdqhash==0.2.8
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import pdqhash, PIL, numpy" 2>/dev/null || {
  echo "missing peer deps: see bench/peers/requirements.txt" >&2; exit 2; }
cargo build --release -p echotrace-bench --bin pdq
BIN="${CARGO_TARGET_DIR:-target}/release/pdq"
"$BIN" "$@"
