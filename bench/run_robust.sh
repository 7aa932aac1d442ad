#!/usr/bin/env bash
# Robust-matching benchmark (issue 14; not part of the test suite).
#   bench/run_robust.sh [OUT_DIR] [--every N]
# Installs the Python side (augly needs libmagic1; Debian wallpaper packages
# add photos), generates originals and edits, runs the peers (pdqhash,
# python-threatexchange unletterbox + PDQ) and the Rust harness on the same
# files, and prints the tables of docs/ROBUST.md.
set -euo pipefail
out=${1:-/tmp/robust}
every=${3:-4}
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq --no-install-recommends libmagic1 ffmpeg \
        plasma-workspace-wallpapers gnome-backgrounds mate-backgrounds ukui-wallpapers \
        lomiri-wallpapers lomiri-wallpapers-20.04 lomiri-wallpapers-16.04 >/dev/null || true
fi
pip install -q augly pdqhash threatexchange perception scikit-image scikit-learn matplotlib numpy pillow
[ -f "$out/manifest.csv" ] || python3 bench/robust/generate.py "$out"
python3 bench/robust/peers.py "$out" --every "$every"
cargo build --release -p echotrace-bench --bin robust --bin robust_cost --bin robust_detect --bin robust_crops
uptime
./target/release/robust "$out" --every "$every" --threads 2
python3 bench/robust/report.py "$out"
./target/release/robust_detect "$out" --every "$every"
python3 bench/robust/crop_shares.py "$out"
./target/release/robust_crops "$out" --every "$every"
./target/release/robust_cost --bank 10000 --reps 5
