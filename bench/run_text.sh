#!/usr/bin/env bash
# Text-signal benchmark: echotrace vs datasketch on one generated corpus.
# Usage: bench/run_text.sh [DATA_DIR]   (needs `pip install datasketch`)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-${TMPDIR:-/tmp}/echotrace-text-bench}"
cargo build --release -p echotrace-bench --bin text
BIN="${CARGO_TARGET_DIR:-target}/release/text"
"$BIN" gen "$DATA"
"$BIN" eval
"$BIN" run "$DATA"
python3 bench/peers/datasketch_text.py "$DATA"
