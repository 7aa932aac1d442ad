#!/usr/bin/env bash
# Load benchmark of the matching service (issue 5). Builds echotrace and the
# load generator in release mode, then for each bank size: imports N random
# PDQ hashes with `echotrace bank import`, starts `echotrace serve` on
# 127.0.0.1 and runs signal lookups (and image lookups) over keep-alive
# connections. Prints one JSON line per run; see docs/BENCHMARKS.md.
#
#   bench/run_load.sh [sqlite|postgres] [N ...]     (default: sqlite 1000000)
#
# SQLite databases go to $LOAD_DIR (default /tmp) and are deleted afterwards.
# For postgres, start a server first and export its URL, e.g.
#   ECHOTRACE_PG_FSYNC=on ECHOTRACE_PG_PORT=5434 scripts/pg-temp.sh start > /tmp/pg-load.env
#   source /tmp/pg-load.env; bench/run_load.sh postgres 1000000
# (each run uses a fresh database `load_<N>` on that server, dropped after).
# Knobs: CONCURRENCY (32), RUN_SECONDS (20), IMAGE_SECONDS (20), IMAGE_CONCURRENCY (8), MATCH_SHARE (0.1),
# CLIENT_THREADS (1), SKIP_IMAGES=1, KEEP_DB=1.
set -euo pipefail
cd "$(dirname "$0")/.."

backend=${1:-sqlite}
shift || true
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(1000000)

target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p echotrace -p echotrace-bench --bin echotrace --bin load
bin="$target/release/echotrace"
load="$target/release/load"
dir=${LOAD_DIR:-/tmp}

common=(--echotrace "$bin" --concurrency "${CONCURRENCY:-32}"
        --match-share "${MATCH_SHARE:-0.1}" --client-threads "${CLIENT_THREADS:-1}")

for n in "${sizes[@]}"; do
    case "$backend" in
    sqlite)
        db_path="$dir/echotrace-load-$n.db"
        rm -f "$db_path" "$db_path-wal" "$db_path-shm"
        db="sqlite://$db_path"
        cleanup() { [ -n "${KEEP_DB:-}" ] || rm -f "$db_path" "$db_path-wal" "$db_path-shm"; }
        ;;
    postgres)
        base=${ECHOTRACE_TEST_PG_URL:?set ECHOTRACE_TEST_PG_URL (scripts/pg-temp.sh start)}
        server=${base%/*}
        psql "$base" -qc "DROP DATABASE IF EXISTS load_$n" -c "CREATE DATABASE load_$n"
        db="$server/load_$n"
        cleanup() { [ -n "${KEEP_DB:-}" ] || psql "$base" -qc "DROP DATABASE IF EXISTS load_$n"; }
        ;;
    *) echo "usage: $0 [sqlite|postgres] [N ...]" >&2; exit 2 ;;
    esac
    trap cleanup EXIT
    echo "== $backend, $n hashes" >&2
    "$load" "${common[@]}" --db "$db" --n "$n" --setup --seconds "${RUN_SECONDS:-20}" --mode signals
    if [ -z "${SKIP_IMAGES:-}" ]; then
        "$load" "${common[@]}" --db "$db" --n "$n" --seconds "${IMAGE_SECONDS:-20}" --concurrency "${IMAGE_CONCURRENCY:-8}" --mode images
    fi
    cleanup
    trap - EXIT
done
