#!/usr/bin/env bash
# Hamming-index benchmark: echotrace MihIndex vs faiss, same data, one run.
#   bench/run_index.sh [N ...]          (default: 1000000 10000000)
# Env: SHAPES="random clustered"  FAISS_QUERIES=1000 (10M: a few hundred)
# Needs: pip install faiss-cpu numpy
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("${@:-1000000 10000000}")
SHAPES=${SHAPES:-"random clustered"}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -p echotrace-bench --bin index
BIN="$CARGO_TARGET_DIR/release/index"
for n in ${SIZES[@]}; do
  for shape in $SHAPES; do
    if [ ! -f "bench/data/index-$shape-$n.codes" ]; then
      "$BIN" gen --n "$n" --shape "$shape"
    fi
    echo "=== echotrace MihIndex n=$n shape=$shape (radius 31) ==="
    "$BIN" run --n "$n" --shape "$shape" --threads 1,2 --verify 200
    fq=${FAISS_QUERIES:-1000}
    if [ "$n" -ge 5000000 ]; then fq=${FAISS_QUERIES_LARGE:-300}; fi
    echo "=== faiss n=$n shape=$shape (radius 31 = range_search 32) ==="
    python3 bench/peers/faiss_pdq.py --n "$n" --shape "$shape" --queries "$fq" \
      --flat-queries "$([ "$n" -ge 5000000 ] && echo 100 || echo "$fq")"
  done
done
