#!/usr/bin/env bash
# Retention sweep benchmark (issue 12): N recorded lookups, then one sweep
# that deletes them all, on SQLite and on PostgreSQL. Prints one JSON line
# per backend; see docs/BENCHMARKS.md ("Retention").
#
#   bench/run_retention.sh [N]        (default 200000)
#
# PostgreSQL: $ECHOTRACE_TEST_PG_URL if set (a fresh database `retention_bench`
# is created on that server and dropped after), else a throwaway server
# with fsync on (scripts/pg-temp.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p echotrace-bench --bin retention
bin="$target/release/retention"
dir=$(mktemp -d /tmp/echotrace-retention.XXXXXX)
started=""
if [ -z "${ECHOTRACE_TEST_PG_URL:-}" ]; then
    eval "$(ECHOTRACE_PG_FSYNC=on scripts/pg-temp.sh start)"
    started="$ECHOTRACE_PG_DIR"
fi
cleanup() {
    rm -rf "$dir"
    [ -n "$started" ] && scripts/pg-temp.sh stop "$started"
    true
}
trap cleanup EXIT
echo "machine: $(nproc) cores, $(uname -m), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$bin" --db "sqlite://$dir/retention.db" --n "$n"
base=$ECHOTRACE_TEST_PG_URL
server=${base%/*}
psql "$base" -qc "DROP DATABASE IF EXISTS retention_bench" -c "CREATE DATABASE retention_bench"
"$bin" --db "$server/retention_bench" --n "$n"
psql "$base" -qc "DROP DATABASE IF EXISTS retention_bench"
