#!/usr/bin/env bash
# OCR benchmark: recall / precision / CER of `ocr_text` on >= 500 generated
# claim cards, presence-test cost, and per-image OCR cost against
# pytesseract's bare OCR call on the same images in the same run.
# Usage: bench/run_ocr.sh [STATEMENTS_PER_LANGUAGE (default 125 = 500 cards)] [OUT_DIR]
# Needs: tesseract-ocr tesseract-ocr-ara pango1.0-tools fonts-dejavu-core
# fonts-noto-core fonts-hosny-amiri (apt); the peer is installed with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-125}"
OUT="${2:-${TMPDIR:-/tmp}/echotrace-ocr-bench}"
cargo build --release -p echotrace-bench --bin ocr
BIN="${CARGO_TARGET_DIR:-target}/release/ocr"
uptime
"$BIN" --cards "$N" --out "$OUT" --threads 2 > "$OUT.json"
python3 -m venv "$OUT-venv" >/dev/null 2>&1 || true
"$OUT-venv/bin/pip" install -q pytesseract pillow >/dev/null
"$OUT-venv/bin/python" bench/peers/pytesseract_peer.py "$OUT" > "$OUT-peer.json"
uptime
python3 - "$OUT.json" "$OUT-peer.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2]))
grid = r.pop("grid")
print(json.dumps(r, indent=1))
print("peer:", json.dumps(p))
print("ratio (pytesseract bare call / echotrace end-to-end):",
      round(p["ms_median"] / r["ocr_ms_median"], 3))
print("min_conf jaccard min_tokens  recall_en recall_ar false/pairs")
for g in grid:
    print(f'{g["min_conf"]:8} {g["jaccard"]:7} {g["min_tokens"]:10}  {g["recall_en"]:.3f}     {g["recall_ar"]:.3f}     {g["false_matches"]}/{g["pairs"]}')
PY
