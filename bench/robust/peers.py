#!/usr/bin/env python3
"""Peers for bench/robust: plain PDQ through the `pdqhash` reference binding,
and python-threatexchange's black-only unletterboxing (its CLI default
threshold, 15) followed by the same PDQ. Writes DIR/peers.csv:
path,pdq,unletterbox_pdq (hex), for every image of DIR/manifest.csv.

Usage: python3 bench/robust/peers.py DIR [--every N]

--every N: only the queries of every N-th original (all originals are
hashed), the same subset as the harness's --every.
"""
import csv
import os
import sys

import numpy as np
import pdqhash
from PIL import Image
from threatexchange.content_type.preprocess import unletterboxing as u

BLACK_THRESHOLD = 15


def hexof(bits):
    # pdqhash's bit array is in Meta's hex order (first element = top bit).
    v = 0
    for i, b in enumerate(bits):
        if b:
            v |= 1 << (255 - i)
    return f"{v:064x}"


def pdq(im):
    h, _q = pdqhash.compute(np.asarray(im.convert("RGB")))
    return hexof(h)


def borders_pytx(im):
    """python-threatexchange's own scans (slow: pure Python per pixel)."""
    return (u.detect_top_border(im, BLACK_THRESHOLD), u.detect_bottom_border(im, BLACK_THRESHOLD),
            u.detect_left_border(im, BLACK_THRESHOLD), u.detect_right_border(im, BLACK_THRESHOLD))


def borders_fast(im):
    """The same rule vectorised: a line is border iff every pixel has
    R, G and B <= BLACK_THRESHOLD; each scan stops at the first other line.
    Checked against borders_pytx on a sample of every run (main)."""
    a = np.asarray(im)
    black = (a <= BLACK_THRESHOLD).all(axis=2)
    rows = black.all(axis=1)
    cols = black.all(axis=0)

    def run(v):
        nz = np.flatnonzero(~v)
        return int(nz[0]) if len(nz) else len(v)

    return run(rows), run(rows[::-1]), run(cols), run(cols[::-1])


def unletterbox(im, borders):
    w, h = im.size
    t, b, left, r = borders
    if t + b >= h or left + r >= w:
        return im
    return im.crop((left, t, w - r, h - b))


def one(args):
    d, path, check = args
    im = Image.open(os.path.join(d, path)).convert("RGB")
    fast = borders_fast(im)
    if check and borders_pytx(im) != fast:
        raise SystemExit(f"vectorised unletterbox differs from pytx on {path}")
    return [path, pdq(im), pdq(unletterbox(im, fast))]


def main():
    from multiprocessing import Pool

    d = sys.argv[1]
    every = int(sys.argv[sys.argv.index("--every") + 1]) if "--every" in sys.argv else 1
    rows = [r for r in csv.DictReader(open(os.path.join(d, "manifest.csv")))
            if r["kind"] == "original" or int(r["original"]) % every == 0]
    # Every 40th image is also scanned with pytx's own functions and must agree.
    jobs = [(d, r["path"], i % 40 == 0) for i, r in enumerate(rows)]
    with open(os.path.join(d, "peers.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "pdq", "unletterbox_pdq"])
        with Pool(2) as pool:
            for i, row in enumerate(pool.imap(one, jobs, chunksize=32)):
                w.writerow(row)
                if i % 2000 == 0:
                    print(f"{i}/{len(rows)}", file=sys.stderr)


if __name__ == "__main__":
    main()
