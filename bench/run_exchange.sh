#!/usr/bin/env bash
# Signal exchange benchmarks (issue 13); see docs/BENCHMARKS.md
# ("Signal exchange (issue 13)"). Not part of the test suite.
#
#   bench/run_exchange.sh [all]      apply + peer + propagation (default)
#   bench/run_exchange.sh apply      fetch-and-apply of a 1M-record file exchange,
#                                    echotrace then python-threatexchange's CLI
#   bench/run_exchange.sh propagation  publish-to-matchable between two `echotrace serve`
#   bench/run_exchange.sh mocks      pytx's own clients vs echotrace's adapters against
#                                    the TCAP / ThreatExchange mock servers (faithfulness)
#
# Env: N (records, default 1000000), SAMPLES (propagation samples, default 200),
#      PYTHON (default python3; pytx 1.2.17 is installed with pip if missing),
#      BUILD=0 (use the binaries already in target/release).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
n=${N:-1000000}
samples=${SAMPLES:-200}
python=${PYTHON:-python3}
target=${CARGO_TARGET_DIR:-target}
dir=$(mktemp -d /tmp/echotrace-exchange.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
load() { echo "load $(cut -d' ' -f1-3 /proc/loadavg)"; }
echo "machine: $(nproc) cores, $(uname -m), $(free -g | awk '/Mem:/{print $2}') GiB; $(load)" >&2

need_pytx() {
    if ! "$python" -c 'import threatexchange' 2>/dev/null; then
        "$python" -m pip install -q 'threatexchange==1.2.17'
    fi
    echo "peer: python-threatexchange $("$python" -m pip show threatexchange | awk '/^Version/{print $2}')" >&2
}

now() { date +%s.%N; }
build() { [ "${BUILD:-1}" = 0 ] || cargo build --release -q -p echotrace-bench "$@"; }

run_apply() {
    build --bin exchange
    need_pytx
    local file=$dir/pdq.txt
    "$target/release/exchange" gen --file "$file" --records "$n"
    # echotrace: one fetch round of a `file` exchange (pytx's `type value`
    # lines) into SQLite, returning when every batch is committed and in the
    # in-memory index; lookups are checked.
    echo "echotrace apply: $(load)" >&2
    "$target/release/exchange" apply --db "sqlite://$dir/apply.db" --file "$file" --records "$n"
    echo "after echotrace apply: $(load)" >&2
    # The peer, same file, same run: pytx's CLI with a local_file collab
    # (configured non-interactively), fetch + its index rebuild (= matchable).
    export TX_STATEDIR=$dir/pytx
    threatexchange config collab edit local_file --create BENCH --filename "$file" >/dev/null
    echo "pytx fetch: $(load)" >&2
    local t0 t1
    t0=$(now)
    threatexchange fetch --only-collab BENCH >&2
    t1=$(now)
    echo "after pytx fetch: $(load)" >&2
    # Matchable in pytx too.
    local h
    h=$(sed -n "$((n / 2))p" "$file" | cut -d' ' -f2)
    threatexchange match -H photo -- "$h" | grep -q BENCH || { echo "pytx did not match record $((n / 2))" >&2; exit 1; }
    "$python" -c "import json,sys; s=float(sys.argv[2])-float(sys.argv[1]); n=int(sys.argv[3]); print(json.dumps({'bench':'exchange_apply_peer','peer':'threatexchange fetch (local_file, index rebuild included)','records':n,'seconds':s,'records_per_s':n/s}))" "$t0" "$t1" "$n"
    unset TX_STATEDIR
}

# Start `echotrace serve` on a free loopback port; sets $base and $key.
serve() {
    local name=$1
    local log=$dir/$name.out
    "$target/release/echotrace" serve --db "sqlite://$dir/$name.db" --listen 127.0.0.1:0 \
        --exchange-allow-loopback --secret-key-file "$dir/$name.secret" >"$log" 2>"$dir/$name.err" &
    pids+=($!)
    for _ in $(seq 600); do
        base=$(sed -n 's/^echotrace: listening on //p' "$log")
        key=$(sed -n 's/.*API key (shown once): //p' "$log")
        if [ -n "$base" ] && [ -n "$key" ] && curl -sf "$base/readyz" >/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "echotrace serve ($name) did not start: $(cat "$dir/$name.err")" >&2
    exit 1
}

run_propagation() {
    build --bin exchange -p echotrace --bin echotrace
    serve a
    local a=$base ka=$key
    serve b
    local b=$base kb=$key
    post() { curl -sf -H "authorization: Bearer $1" -H 'content-type: application/json' -X "$2" "$3" -d "$4"; }
    post "$ka" POST "$a/v1/banks" '{"name":"shared"}' >/dev/null
    local partner
    partner=$(post "$ka" POST "$a/v1/keys" '{"role":"partner","name":"ngo-b"}' | "$python" -c 'import json,sys; print(json.load(sys.stdin)["key"])')
    post "$ka" PUT "$a/v1/feeds/shared" '{"partners":["ngo-b"]}' >/dev/null
    # B subscribes with the `echotrace` adapter and long-poll (wait=30).
    post "$kb" POST "$b/v1/exchanges" "{\"name\":\"FROM_A\",\"api\":\"echotrace\",\"poll_interval_secs\":1,
        \"config\":{\"url\":\"$a\",\"bank\":\"shared\",\"wait_secs\":30},
        \"credentials\":{\"api_key\":\"$partner\"}}" >/dev/null
    echo "propagation ($samples samples): $(load)" >&2
    "$target/release/exchange" propagation --a "$a" --b "$b" --key-a "$ka" --key-b "$kb" \
        --bank shared --samples "$samples"
    echo "after propagation: $(load)" >&2
}

run_mocks() {
    build --bin exchange_mocks
    need_pytx
    "$target/release/exchange_mocks" --python "$python" --peer bench/peers/pytx_exchange_fetch.py
}

case $mode in
    apply) run_apply ;;
    propagation) run_propagation ;;
    mocks) run_mocks ;;
    all)
        run_apply
        run_propagation
        ;;
    *)
        echo "usage: bench/run_exchange.sh [all|apply|propagation|mocks]" >&2
        exit 2
        ;;
esac
