#!/usr/bin/env bash
# Spread-tracking benchmarks (issue 16): liveness checks/s against a local
# site with politeness off; report generation over N sightings and N*K
# checks; Kaplan-Meier + log-rank vs Python lifelines on the same rows, in
# the same run. Prints one JSON line per measurement; see docs/BENCHMARKS.md.
#
#   bench/run_spread.sh [sqlite|postgres]
#
# Knobs: CHECKS (20000), WORKERS (64), SIGHTINGS (1000000), CHECKS_PER (10),
# KM_N (1000000), KEEP_DB=1. For postgres, export ECHOTRACE_TEST_PG_URL
# (scripts/pg-temp.sh start); a database spread_bench is created and dropped.
set -euo pipefail
cd "$(dirname "$0")/.."

backend=${1:-sqlite}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p echotrace-bench --bin spread
bin="$target/release/spread"
dir=${BENCH_DIR:-/tmp}

echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

case "$backend" in
sqlite)
    db_path="$dir/echotrace-spread-bench.db"
    rm -f "$db_path" "$db_path-wal" "$db_path-shm"
    db="sqlite://$db_path"
    cleanup() { [ -n "${KEEP_DB:-}" ] || rm -f "$db_path" "$db_path-wal" "$db_path-shm"; }
    checks_db=()
    ;;
postgres)
    base=${ECHOTRACE_TEST_PG_URL:?set ECHOTRACE_TEST_PG_URL (scripts/pg-temp.sh start)}
    server=${base%/*}
    psql "$base" -qc "DROP DATABASE IF EXISTS spread_bench" -c "CREATE DATABASE spread_bench" \
        -c "DROP DATABASE IF EXISTS spread_checks" -c "CREATE DATABASE spread_checks"
    db="$server/spread_bench"
    checks_db=(--db "$server/spread_checks")
    cleanup() { [ -n "${KEEP_DB:-}" ] || psql "$base" -qc "DROP DATABASE IF EXISTS spread_bench" -c "DROP DATABASE IF EXISTS spread_checks"; }
    ;;
*) echo "usage: $0 [sqlite|postgres]" >&2; exit 2 ;;
esac
trap cleanup EXIT

echo "== liveness checks/s (politeness off, local keep-alive site)" >&2
"$bin" checks --n "${CHECKS:-20000}" --workers "${WORKERS:-64}" "${checks_db[@]}"

echo "== report over ${SIGHTINGS:-1000000} sightings and $(( ${SIGHTINGS:-1000000} * ${CHECKS_PER:-10} )) checks" >&2
"$bin" seed --db "$db" --sightings "${SIGHTINGS:-1000000}" --checks-per "${CHECKS_PER:-10}"
"$bin" report --db "$db" --repeat 3

echo "== Kaplan-Meier + log-rank, ${KM_N:-1000000} rows, vs lifelines" >&2
venv="$dir/echotrace-bench-lifelines"
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q lifelines==0.30.3; }
csv="$dir/echotrace-km-bench.csv"
"$bin" km --n "${KM_N:-1000000}" --csv "$csv"
"$venv/bin/python" bench/peers/km_lifelines.py "$csv"
rm -f "$csv"
