#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the test suite and print the
# connection URL on stdout. Usage:
#   eval "$(scripts/pg-temp.sh start)"   # exports ECHOTRACE_TEST_PG_URL, ECHOTRACE_PG_DIR
#   scripts/pg-temp.sh stop "$ECHOTRACE_PG_DIR"
# Needs Debian's `postgresql` package (initdb/pg_ctl under /usr/lib/postgresql/*/bin).
# Runs with fsync=off (test data is throwaway); ECHOTRACE_PG_FSYNC=on for benchmarks.
set -euo pipefail

pg_bin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
        echo "pg-temp: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
        exit 1
    fi
    echo "$d"
}

# PostgreSQL refuses to run as root; run it as the `postgres` system user then.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
    bin=$(pg_bin)
    dir=$(mktemp -d /tmp/echotrace-pg.XXXXXX)
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    as_pg "$bin/initdb" -D "$dir/data" -U echotrace --auth=trust -E UTF8 >/dev/null
    # A random port can be in use (by chance, 20000-39999 overlaps the
    # ephemeral range): try another one rather than fail the whole run.
    started=""
    for _try in 1 2 3 4 5; do
        port=${ECHOTRACE_PG_PORT:-$((20000 + RANDOM % 20000))}
        if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=${ECHOTRACE_PG_FSYNC:-off} -c max_connections=300" start >/dev/null; then
            started=1
            break
        fi
        [ -n "${ECHOTRACE_PG_PORT:-}" ] && break
    done
    if [ -z "$started" ]; then
        echo "pg-temp: PostgreSQL did not start (see $dir/log)" >&2
        exit 1
    fi
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U echotrace echotrace_test
    echo "export ECHOTRACE_PG_DIR=$dir"
    echo "export ECHOTRACE_TEST_PG_URL=postgres://echotrace@127.0.0.1:$port/echotrace_test"
    ;;
stop)
    dir=${2:?usage: pg-temp.sh stop DIR}
    bin=$(pg_bin)
    as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start | stop DIR" >&2
    exit 2
    ;;
esac
