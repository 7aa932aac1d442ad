#!/usr/bin/env bash
# The whole test suite, on both database backends. This is the README's test
# command and what CI runs.
#
# - Starts a throwaway PostgreSQL (unless ECHOTRACE_TEST_PG_URL is already set)
#   so the store/engine/server suites run against SQLite AND PostgreSQL.
# - Runs every workspace test (unit, integration, property, browser).
# Fixtures are read from ../shared/fixtures; tests fail loudly when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d ../shared/fixtures ]; then
    echo "test.sh: ../shared/fixtures is missing (expected beside this checkout); the suite needs it" >&2
    exit 1
fi

started_pg=""
if [ -z "${ECHOTRACE_TEST_PG_URL:-}" ] && [ "${ECHOTRACE_SKIP_PG:-0}" != 1 ]; then
    eval "$(scripts/pg-temp.sh start)"
    started_pg="$ECHOTRACE_PG_DIR"
    trap 'scripts/pg-temp.sh stop "$started_pg"' EXIT
    echo "test.sh: throwaway PostgreSQL at $ECHOTRACE_TEST_PG_URL"
fi

cargo test --workspace --locked "$@"
