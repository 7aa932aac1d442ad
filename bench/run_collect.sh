#!/usr/bin/env bash
# Collector benchmark: echotrace vs Scrapy on the same generated local site,
# and the Telegram-export import vs a Python (json + datasketch + sqlite3)
# peer on the same export, in one run. Politeness off, loopback only.
# Usage: bench/run_collect.sh [PAGES] [MESSAGES]     (defaults 100000 100000)
# Installs scrapy and datasketch into a venv under $TMPDIR (pip).
set -euo pipefail
cd "$(dirname "$0")/.."
PAGES="${1:-100000}"
MESSAGES="${2:-100000}"
WORK="${TMPDIR:-/tmp}/echotrace-collect-bench"
rm -rf "$WORK" && mkdir -p "$WORK"
cargo build --release -p echotrace-bench --bin collect
BIN="${CARGO_TARGET_DIR:-target}/release/collect"
if [ ! -x "$WORK/../echotrace-bench-venv/bin/python" ]; then
    python3 -m venv "$WORK/../echotrace-bench-venv"
    "$WORK/../echotrace-bench-venv/bin/pip" install -q scrapy datasketch
fi
PY="$WORK/../echotrace-bench-venv/bin/python"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(uptime | sed 's/.*load average: //')"

"$BIN" site --pages "$PAGES" --listen 127.0.0.2:0 > "$WORK/site.addr" &
SITE=$!
trap 'kill $SITE 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$WORK/site.addr" ] && break; sleep 0.1; done
ADDR=$(head -n1 "$WORK/site.addr")
echo "site: http://$ADDR/ ($PAGES pages)"

echo "echotrace crawl:"
"$BIN" crawl --db "sqlite://$WORK/et.db" --seed "http://$ADDR/" --workers 16 --warc-dir "$WORK/warc" | tee "$WORK/et.json"
echo "scrapy crawl (the same pipeline: digests, text MinHash, bank match, record):"
"$PY" bench/peers/collect_scrapy.py "http://$ADDR/" "$WORK/scrapy.db" | tee "$WORK/scrapy.json"
echo "scrapy crawl, --light (no text MinHash, no match; the peer of sessions 10-15):"
"$PY" bench/peers/collect_scrapy.py "http://$ADDR/" "$WORK/scrapy-light.db" --light | tee "$WORK/scrapy-light.json"

"$BIN" telegram-gen --messages "$MESSAGES" --out "$WORK/tg"
echo "echotrace telegram import:"
"$BIN" telegram --db "sqlite://$WORK/tg.db" --path "$WORK/tg" | tee "$WORK/et-tg.json"
echo "python telegram peer (the same pipeline: digests, text MinHash, bank match, record):"
"$PY" bench/peers/telegram_peer.py "$WORK/tg" "$WORK/tg-peer.db" | tee "$WORK/peer-tg.json"
echo "python telegram peer, --light (no match; the peer of sessions 10-15):"
"$PY" bench/peers/telegram_peer.py "$WORK/tg" "$WORK/tg-peer-light.db" --light | tee "$WORK/peer-tg-light.json"

"$PY" - "$WORK" <<'PYEOF'
import json, sys
w = sys.argv[1]
et, sc = json.load(open(f"{w}/et.json")), json.load(open(f"{w}/scrapy.json"))
scl = json.load(open(f"{w}/scrapy-light.json"))
etg, ptg = json.load(open(f"{w}/et-tg.json")), json.load(open(f"{w}/peer-tg.json"))
ptgl = json.load(open(f"{w}/peer-tg-light.json"))
print(f"pages per CPU-second: echotrace {et['pages_per_cpu_s']:.0f}, scrapy {sc['pages_per_cpu_s']:.0f} -> {et['pages_per_cpu_s']/sc['pages_per_cpu_s']:.1f}x"
      f" (scrapy --light {scl['pages_per_cpu_s']:.0f} -> {et['pages_per_cpu_s']/scl['pages_per_cpu_s']:.1f}x)")
print(f"pages per second (wall): echotrace {et['pages_per_s']:.0f}, scrapy {sc['pages_per_s']:.0f}")
print(f"echotrace RSS every 10k pages (MB): {et['rss_mb_every_10k_pages']}")
print(f"messages per CPU-second: echotrace {etg['messages_per_cpu_s']:.0f}, python {ptg['messages_per_cpu_s']:.0f} -> {etg['messages_per_cpu_s']/ptg['messages_per_cpu_s']:.1f}x"
      f" (--light {ptgl['messages_per_cpu_s']:.0f} -> {etg['messages_per_cpu_s']/ptgl['messages_per_cpu_s']:.1f}x)")
PYEOF
