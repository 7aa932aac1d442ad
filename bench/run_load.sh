#!/usr/bin/env bash
# Load benchmark of the matching service (issue 5). Builds echotrace and the
# load generator in release mode, then for each bank size: imports N random
# PDQ hashes with `echotrace bank import`, starts `echotrace serve` on
# 127.0.0.1 and runs signal lookups (and image lookups) over keep-alive
# connections. Prints one JSON line per run; see docs/BENCHMARKS.md.
#
#   bench/run_load.sh [sqlite|postgres] [N ...]     (default: sqlite 1000000)
#   bench/run_load.sh scale [N ...]      issue 17 on PostgreSQL ($ECHOTRACE_TEST_PG_URL):
#       time to /readyz page by page and from a snapshot (3 starts), RSS,
#       signal lookups with --record all vs matches (lookups/s, p99, WAL bytes
#       and rows per lookup, PostgreSQL CPU), one vs two replicas (under both
#       policies: --record all is bound by commits, matches by CPU), and the
#       server CPU per lookup for md5, url and raw-text lookups
#   bench/run_load.sh memory [N]          RSS per signal type (SQLite; N items
#       of pdq/md5/sha256/url, N/5 texts, N/50 videos of 120 frames)
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
cargo build --release -q -p echotrace -p echotrace-bench --bin echotrace --bin load --bin memory
bin="$target/release/echotrace"
load="$target/release/load"
dir=${LOAD_DIR:-/tmp}
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

common=(--echotrace "$bin" --concurrency "${CONCURRENCY:-32}"
        --match-share "${MATCH_SHARE:-0.1}" --client-threads "${CLIENT_THREADS:-1}")

if [ "$backend" = memory ]; then
    n=${sizes[0]:-1000000}
    "$target/release/memory" --echotrace "$bin" --dir "$dir" --n "$n" \
        --text-n $((n / 5)) --vpdq-n $((n / 50)) --frames 120
    exit 0
fi

if [ "$backend" = scale ]; then
    base=${ECHOTRACE_TEST_PG_URL:?set ECHOTRACE_TEST_PG_URL (scripts/pg-temp.sh start, ECHOTRACE_PG_FSYNC=on)}
    server=${base%/*}
    # The postmaster's pid (scripts/pg-temp.sh's cluster), for PostgreSQL's CPU.
    pg_pid=$(head -n 1 "${ECHOTRACE_PG_DIR:-/nonexistent}/data/postmaster.pid" 2>/dev/null || true)
    pg=(); [ -n "$pg_pid" ] && pg=(--pg-pid "$pg_pid")
    for n in "${sizes[@]:-10000000}"; do
        db="$server/scale_$n"
        snap="$dir/echotrace-snap-$n"
        rm -rf "$snap"
        if [ -z "${REUSE_DB:-}" ]; then
            psql "$base" -qc "DROP DATABASE IF EXISTS scale_$n" -c "CREATE DATABASE scale_$n"
            setup=(--setup)
        else
            setup=()
        fi
        cleanup() { rm -rf "$snap"; [ -n "${KEEP_DB:-}" ] || psql "$base" -qc "DROP DATABASE IF EXISTS scale_$n"; }
        trap cleanup EXIT
        s=(--server-arg --snapshot-dir --server-arg "$snap")
        echo "== scale, PostgreSQL, $n hashes: paged start (its SIGTERM writes the snapshot)" >&2
        "$load" "${common[@]}" --db "$db" --n "$n" "${setup[@]}" --ready-only "${s[@]}"
        for i in 1 2 3; do
            echo "== start $i from the snapshot" >&2
            "$load" "${common[@]}" --db "$db" --n "$n" --ready-only "${s[@]}"
        done
        for rec in all matches; do
            echo "== signal lookups, --record $rec" >&2
            "$load" "${common[@]}" "${pg[@]}" --db "$db" --n "$n" --seconds "${RUN_SECONDS:-20}" \
                --mode signals "${s[@]}" --server-arg --record --server-arg "$rec"
        done
        for rec in all matches; do
            echo "== two replicas, --record $rec" >&2
            "$load" "${common[@]}" "${pg[@]}" --db "$db" --n "$n" --seconds "${RUN_SECONDS:-20}" \
                --mode signals --replicas 2 "${s[@]}" --server-arg --record --server-arg "$rec"
        done
        for mode in md5 url text; do
            echo "== $mode lookups" >&2
            "$load" "${common[@]}" "${pg[@]}" --db "$db" --n "$n" --seconds "${RUN_SECONDS:-20}" \
                --mode "$mode" "${s[@]}"
        done
        cleanup
        trap - EXIT
    done
    exit 0
fi

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
