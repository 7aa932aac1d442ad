#!/usr/bin/env bash
# OCR benchmark: recall / precision / CER of `ocr_text` on >= 500 generated
# claim cards, the text-presence test (CPU time, firing on text-free photos
# and video frames vs cards), and per-image OCR cost against pytesseract's
# bare OCR call on the same images in the same run.
# Usage: bench/run_ocr.sh [STATEMENTS_PER_LANGUAGE (default 125 = 500 cards)] [OUT_DIR] [TIMING_IMAGES (default 100)] [SEED (default 18)]
# Needs: tesseract-ocr tesseract-ocr-ara pango1.0-tools fonts-dejavu-core
# fonts-noto-core fonts-hosny-amiri ffmpeg (apt); the peer is installed with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-125}"
OUT="${2:-${TMPDIR:-/tmp}/echotrace-ocr-bench}"
TIMING="${3:-100}"
SEED="${4:-18}"
cargo build --release -p echotrace-bench --bin ocr
BIN="${CARGO_TARGET_DIR:-target}/release/ocr"
echo "load before: $(uptime)"
"$BIN" --cards "$N" --out "$OUT" --threads 2 --timing "$TIMING" --seed "$SEED" > "$OUT.json"
echo "load after echotrace: $(uptime)"
python3 -m venv "$OUT-venv" >/dev/null 2>&1 || true
"$OUT-venv/bin/pip" install -q pytesseract pillow >/dev/null
"$OUT-venv/bin/python" bench/peers/pytesseract_peer.py "$OUT" > "$OUT-peer.json"
echo "load after peer: $(uptime)"
python3 - "$OUT.json" "$OUT-peer.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2]))
grid = r.pop("grid")
rules = r.pop("rules", [])
print(json.dumps(r, indent=1, ensure_ascii=False))
print("second-reading rules (trigger, choice): 2nd runs AR query/AR bank/EN query, recall EN/AR (gated), false, CER EN/AR")
for x in rules:
    print(f'{x["trigger"]:18} {x["choice"]:15} {x["second_runs_ar_query"]:.3f}/{x["second_runs_ar_bank"]:.3f}/{x["second_runs_en_query"]:.3f}  '
          f'{x["recall_en"]:.3f} {x["recall_ar"]:.3f} ({x["recall_en_gated"]:.3f} {x["recall_ar_gated"]:.3f})  '
          f'{x["false_matches"]}  {x["cer_en"]:.4f} {x["cer_ar"]:.4f}')
print("peer:", json.dumps(p))
for mode in ("combined", "same_runs"):
    print(f"wall ratio echotrace end-to-end / pytesseract {mode}: "
          f"{r['ocr_e2e_ms_median'] / p[mode]['ms_median']:.3f} (median), "
          f"child CPU ratio {r['ocr_child_cpu_ms_mean'] / max(1e-9, p[mode]['child_cpu_ms_mean']):.3f}")
print("min_conf jaccard min_tokens second  recall_en recall_ar (gated: en ar) false/pairs truth_pairs_matching")
for g in grid:
    print(f'{g["min_conf"]:8} {g["jaccard"]:7} {g["min_tokens"]:10} {str(g["second_reading"]):6}  '
          f'{g["recall_en"]:.3f}     {g["recall_ar"]:.3f}     {g["recall_en_gated"]:.3f} {g["recall_ar_gated"]:.3f}  '
          f'{g["false_matches"]}/{g["pairs"]}  {g["truth_pairs_matching"]}')
PY
