"""Peer for bench/run_ocr.sh: pytesseract's bare OCR call on the same card
images echotrace's `ocr` bench wrote (DIR/manifest.tsv), timed per image."""
import json
import os
import statistics
import sys
import time

import pytesseract
from PIL import Image

os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # one core per OCR, as echotrace runs it
d = sys.argv[1]
times = []
for line in open(os.path.join(d, "manifest.tsv"), encoding="utf-8"):
    name, lang = line.rstrip("\n").split("\t")
    img = Image.open(os.path.join(d, name))
    img.load()
    t0 = time.perf_counter()
    pytesseract.image_to_data(img, lang=lang)
    times.append((time.perf_counter() - t0) * 1e3)
print(json.dumps({
    "peer": "pytesseract " + pytesseract.get_tesseract_version().public,
    "images": len(times),
    "ms_median": statistics.median(times),
    "ms_mean": statistics.mean(times),
}))
