#!/usr/bin/env bash
# Fuzz the HTTP API with schemathesis, driven by the server's own OpenAPI
# document (GET /openapi.json): a throwaway `echotrace serve` on a fresh
# database and loopback port, an admin key, one bounded run, then the server
# is stopped and its files removed.
#
#   pip install schemathesis          # once (the CLI is `st`)
#   scripts/schemathesis.sh           # SQLite in a temp dir
#   ECHOTRACE_SCHEMA_DB=postgres://… scripts/schemathesis.sh   # an EMPTY PostgreSQL database
#   scripts/schemathesis.sh --seed 7 -n 200                     # extra `st run` options
#
# Checks: no 5xx (not_a_server_error); statuses, media types, JSON shapes
# and headers as documented; schema-violating requests refused
# (negative_data_rejection); no answer without the key (ignored_auth,
# missing_required_header); undocumented methods refused. The exit status
# is schemathesis's (0: no failure). ECHOTRACE_BIN picks the binary (default: a
# debug build, built first). Left out: DELETE /v1/keys/{id} (it would revoke
# the run's own key) and POST /v1/exchanges/{name}/fetch (with credentials
# the fuzzer sets, it would contact TCAP or ThreatExchange).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v st >/dev/null || { echo "schemathesis.sh: install schemathesis first (pip install schemathesis)" >&2; exit 2; }
if [[ -z "${ECHOTRACE_BIN:-}" ]]; then
    cargo build -q -p echotrace
    ECHOTRACE_BIN="$PWD/target/debug/echotrace"
fi

dir=$(mktemp -d)
pid=
cleanup() {
    if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

db=${ECHOTRACE_SCHEMA_DB:-sqlite://$dir/echotrace.db}
key=$("$ECHOTRACE_BIN" keys create --db "$db" --role admin --name schemathesis 2>/dev/null)
# No webhook deliveries and no exchange workers: the fuzzer registers
# webhooks and exchanges with made-up addresses, and nothing may leave
# this machine.
"$ECHOTRACE_BIN" serve --db "$db" --listen 127.0.0.1:0 --no-ocr \
    --no-webhooks --no-exchange-workers \
    --warc-dir "$dir/warc" --secret-key-file "$dir/secret" \
    >"$dir/serve.out" 2>"$dir/serve.err" &
pid=$!
base=
for _ in $(seq 100); do
    base=$(sed -n 's|^echotrace: listening on \(http://[^ ]*\)$|\1|p' "$dir/serve.out")
    if [[ -n "$base" ]] && curl -sf "$base/readyz" >/dev/null; then break; fi
    kill -0 "$pid" 2>/dev/null || { cat "$dir/serve.err" >&2; exit 1; }
    sleep 0.2
done
curl -sf -H "Authorization: Bearer $key" "$base/openapi.json" >"$dir/openapi.json"

# Something for the routes that read one to find: bank, items, a match, a
# source, an exchange and a published feed all named "b", and a webhook; the
# path parameters are pinned to them in schemathesis.toml (a fuzzed value
# mostly gives 404).
seed() {
    local method=$1 path=$2 body=$3 code
    code=$(curl -s -o /dev/null -w '%{http_code}' -X "$method" -H "Authorization: Bearer $key" \
        -H 'content-type: application/json' -d "$body" "$base$path")
    [[ $code == 2* ]] || { echo "schemathesis.sh: seeding $method $path answered $code" >&2; exit 1; }
}
pdq=f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22
seed POST /v1/banks '{"name": "b"}'
seed POST /v1/banks/b/content "{\"signals\": {\"pdq\": \"$pdq\"}}"
seed POST /v1/banks/b/content '{"text": "the quick brown fox jumps over the lazy dog by the river bank"}'
seed POST /v1/lookup "{\"signals\": {\"pdq\": \"$pdq\"}}"
seed POST /v1/sources '{"name": "b", "kind": "urls", "config": {"urls": ["https://example.com/"]}}'
seed POST /v1/exchanges '{"name": "b", "api": "file", "bank": "b", "config": {"path": "/nonexistent/hashes.csv"}}'
seed PUT /v1/feeds/b '{"partners": []}'
seed POST /v1/actions/webhooks '{"url": "http://127.0.0.1:9/hook", "secret": "s"}'
cat >"$dir/schemathesis.toml" <<'EOF'
[parameters]
"path.name" = "b"
"path.bank" = "b"
"path.api" = "file"
"path.id" = 1
"path.content_id" = 1
EOF

checks=not_a_server_error,status_code_conformance,content_type_conformance
checks+=,response_schema_conformance,response_headers_conformance,negative_data_rejection
checks+=,ignored_auth,missing_required_header,unsupported_method
status=0
# From the temp dir: schemathesis keeps its state in ./.schemathesis.
(cd "$dir" && timeout 900 st --no-color run "$dir/openapi.json" --url "$base" \
    -H "Authorization: Bearer $key" \
    --checks "$checks" \
    --exclude-path-regex '^/v1/keys/\{id\}$' \
    --exclude-path '/v1/exchanges/{name}/fetch' \
    --max-examples 50 --workers 1 --request-timeout 15 --seed 1 \
    "$@") || status=$?
if grep -q 'panicked' "$dir/serve.err"; then
    echo "schemathesis.sh: the server panicked:" >&2
    grep -A5 'panicked' "$dir/serve.err" >&2
    status=1
fi
exit "$status"
