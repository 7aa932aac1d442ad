#!/usr/bin/env python3
"""Peers for bench/robust: plain PDQ through the `pdqhash` reference binding,
and python-threatexchange's black-only unletterboxing (its CLI default
threshold, 15) followed by the same PDQ. Writes DIR/peers.csv:
path,pdq,unletterbox_pdq (hex), for every image of DIR/manifest.csv.

Usage: python3 bench/robust/peers.py DIR
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


def unletterbox(im):
    im = im.convert("RGB")
    w, h = im.size
    t = u.detect_top_border(im, BLACK_THRESHOLD)
    b = u.detect_bottom_border(im, BLACK_THRESHOLD)
    left = u.detect_left_border(im, BLACK_THRESHOLD)
    r = u.detect_right_border(im, BLACK_THRESHOLD)
    if t + b >= h or left + r >= w:
        return im
    return im.crop((left, t, w - r, h - b))


def main():
    d = sys.argv[1]
    rows = list(csv.DictReader(open(os.path.join(d, "manifest.csv"))))
    with open(os.path.join(d, "peers.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "pdq", "unletterbox_pdq"])
        for i, r in enumerate(rows):
            im = Image.open(os.path.join(d, r["path"]))
            w.writerow([r["path"], pdq(im), pdq(unletterbox(im))])
            if i % 2000 == 0:
                print(f"{i}/{len(rows)}", file=sys.stderr)


if __name__ == "__main__":
    main()
