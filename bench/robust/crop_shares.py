#!/usr/bin/env python3
"""Writes DIR/crop_shares.tsv: for every query of a crop class, the shares
the generator cut from each side of its original (left, top, right, bottom,
in the original's pixels, as generate.py's crop_sides truncates them), so
`robust_crops` can say where each crop falls relative to the bank's crop
grid. Re-draws crop_rand10's random shares with the generator's seeds.

Usage: python3 bench/robust/crop_shares.py DIR [--seed S]
"""
import csv
import random
import sys

from PIL import Image

FIXED = {
    "crop2_all": (.02, .02, .02, .02), "crop5_all": (.05, .05, .05, .05),
    "crop10_all": (.10, .10, .10, .10), "crop15_all": (.15, .15, .15, .15),
    "augly_crop": (.06, .04, .03, .08),
}


def shares(cname, i, seed):
    if cname in FIXED:
        return FIXED[cname]
    if cname in ("crop5_one", "crop10_one"):
        v = .05 if cname == "crop5_one" else .10
        return tuple(v if k == i % 4 else 0 for k in range(4))
    if cname == "crop_rand10":
        r = random.Random(i * 7919 + sum(map(ord, cname)) + seed * 1000003)
        return tuple(r.uniform(0, .10) for _ in range(4))
    return None


def main():
    d = sys.argv[1]
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
    rows = list(csv.DictReader(open(f"{d}/manifest.csv")))
    paths = {r["original"]: r["path"] for r in rows if r["kind"] == "original"}
    with open(f"{d}/crop_shares.tsv", "w") as out:
        out.write("class\toriginal\tleft\ttop\tright\tbottom\n")
        for r in rows:
            if r["kind"] != "query":
                continue
            s = shares(r["class"], int(r["original"]), seed)
            if s is None:
                continue
            w, h = Image.open(f"{d}/{paths[r['original']]}").size
            l, t, rr, b = s
            # crop_sides: box (int(w*l), int(h*t), w - int(w*r), h - int(h*b)).
            px = (int(w * l) / w, int(h * t) / h, int(w * rr) / w, int(h * b) / h)
            if r["class"] == "augly_crop":  # augly: box (x1*w, y1*h, x2*w, y2*h), ints
                px = (int(.06 * w) / w, int(.04 * h) / h, (w - int(.97 * w)) / w, (h - int(.92 * h)) / h)
            out.write(f"{r['class']}\t{int(r['original'])}\t" + "\t".join(f"{v:.5f}" for v in px) + "\n")


if __name__ == "__main__":
    main()
