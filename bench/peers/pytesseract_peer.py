"""Peer for bench/run_ocr.sh: pytesseract's bare OCR call on the same card
images echotrace's `ocr` bench timed (DIR/timing.tsv), one at a time, as
echotrace's timing pass ran them. Two ways, both with `--psm 6` as
echotrace reads:
* `combined`: one call with every language (`ara+eng`), what a pytesseract
  user would write;
* `same_runs`: the same Tesseract runs echotrace made for that image (its
  script groups, e.g. `eng` then `ara`), so the difference is pure overhead.
Wall time per image and the tesseract children's CPU time."""
import json
import os
import resource
import statistics
import sys
import time

import pytesseract
from PIL import Image

os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # one core per OCR, as echotrace runs it
d = sys.argv[1]
# name, languages, echotrace's runs, and (newer benches) the card's language.
rows = [(l.rstrip("\n").split("\t") + [""])[:4] for l in open(os.path.join(d, "timing.tsv"), encoding="utf-8")]


def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * 1e3


out = {"peer": "pytesseract " + pytesseract.get_tesseract_version().public, "images": len(rows)}
for mode in ("combined", "same_runs"):
    times = []
    by_lang = {}
    c0 = cpu()
    for name, langs, runs, card_lang in rows:
        img = Image.open(os.path.join(d, name))
        img.load()
        t0 = time.perf_counter()
        c1 = cpu()
        for lang in ([langs] if mode == "combined" else [r for r in runs.split(",") if r]):
            pytesseract.image_to_data(img, lang=lang, config="--psm 6")
        times.append((time.perf_counter() - t0) * 1e3)
        if card_lang:
            by_lang.setdefault(card_lang, []).append(cpu() - c1)
    out[mode] = {
        "ms_median": statistics.median(times),
        "ms_mean": statistics.mean(times),
        "child_cpu_ms_mean": (cpu() - c0) / max(1, len(times)),
        "child_cpu_ms_mean_by_lang": {k: statistics.mean(v) for k, v in by_lang.items()},
    }
print(json.dumps(out))
