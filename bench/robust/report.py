#!/usr/bin/env python3
"""Turns DIR/distances.tsv (written by the Rust harness `robust`) into the
tables of docs/ROBUST.md: recall per edit class for echotrace's channel set
and for the peers, false matches over every edited-query x unrelated-original
pair, and the per-channel unrelated distance distribution the thresholds come
from.

Usage: python3 bench/robust/report.py DIR [--bank-every N] [--thresholds plain=31,dihedral=31,...] [--all-originals]

Scored originals: those a PDQ bank would hold. An original whose PDQ
quality (pdqhash's) is below 50 — flat colours, gradients and noise
textures from the wallpaper packages — is excluded, as ThreatExchange and
HMA discard such hashes; so is an original within 31 bits (plain PDQ) of an
earlier kept original of another group (the same picture shipped twice).
Both filters apply to every side alike (queries and unrelated originals, ours
and the peers'); `--all-originals` turns them off.
"""
import collections
import math
import sys

DEFAULT = {"plain": 31, "dihedral": 31, "border": 36, "qcrop": 40, "window": 40, "region": 36, "part": 28,
           # Alignment refinement (session 16): windows of quality < 90 only,
           # matched within 20 (`REFINE_THRESHOLD`).
           "refined": 20}
# The bank-window channel by window quality band (harness columns
# window_q50 .. window_q90); when present they replace `window`, each with
# its own threshold (the engine's `window_threshold`: 28 below quality 90).
BANDS = ["window_q50", "window_q60", "window_q70", "window_q80", "window_q90"]
DEFAULT.update({b: 28 for b in BANDS[:4]})
DEFAULT["window_q90"] = 40
OURS = ["plain", "dihedral", "border", "qcrop", "window", "region", "part", "refined"]
PEERS = {"peer_pdqhash": "pdqhash (plain PDQ)", "peer_unletterbox": "pytx unletterbox + PDQ"}
ACCEPT_95 = ["pad10_black", "pad10_white", "pad10_colour", "pad20_black", "pad20_white", "pad20_colour",
             "augly_pad", "pad10_black_dot", "letterbox_1x1", "letterbox_9x16", "letterbox_16x9", "mirror",
             "rot90", "text", "logo", "emoji", "crop2_all", "crop5_all", "crop10_all", "crop5_one", "crop10_one",
             "crop_rand10", "augly_crop"]
ACCEPT_85 = ["meme", "pad10_blur", "pad20_blur", "fill_9x16_blur", "meme_crop5"]


def main():
    d = sys.argv[1]
    th = dict(DEFAULT)
    if "--thresholds" in sys.argv:
        for kv in sys.argv[sys.argv.index("--thresholds") + 1].split(","):
            k, v = kv.split("=")
            th[k] = int(v)
    # per (class, original): channel -> (true, [unrelated])
    rows = collections.defaultdict(dict)
    for line in open(f"{d}/distances.tsv").read().splitlines()[1:]:
        cls, orig, ch, true, un = (line.split("\t") + [""])[:5]
        t = None if true == "-" else int(true)
        u = [(int(x.split(":")[0]), int(x.split(":")[1])) for x in un.split(",") if x]
        rows[(cls, str(int(orig)))][ch] = (t, [(str(int(o)), v) for o, v in u])
    # Peers from peers.csv (pdqhash of each image, and after pytx's
    # unletterbox), against the originals' pdqhash, same pairs.
    import csv as _csv
    manifest = list(_csv.DictReader(open(f"{d}/manifest.csv")))
    for r in manifest:  # "0116" in the manifest, 116 in distances.tsv
        r["original"] = str(int(r["original"]))
    group = {r["original"]: r["group"] for r in manifest if r["kind"] == "original"}
    peers = {r["path"]: (int(r["pdq"], 16), int(r["unletterbox_pdq"], 16))
             for r in _csv.DictReader(open(f"{d}/peers.csv"))}
    bank_every = int(sys.argv[sys.argv.index("--bank-every") + 1]) if "--bank-every" in sys.argv else 1
    if "--all-originals" not in sys.argv:
        import numpy as np
        import pdqhash
        from PIL import Image
        kept, low, dup = [], 0, 0
        for r in manifest:
            if r["kind"] != "original" or r["path"] not in peers:
                continue
            _, q = pdqhash.compute(np.asarray(Image.open(f"{d}/{r['path']}").convert("RGB")))
            h = peers[r["path"]][0]
            if q < 50:
                low += 1
            elif any(group[o] != r["group"] and bin(h ^ hk).count("1") <= 31 for o, hk in kept):
                dup += 1
            else:
                kept.append((r["original"], h))
        keep = {o for o, _ in kept}
        # For the harness's needle x window histogram (next run).
        with open(f"{d}/keep.txt", "w") as kf:
            kf.write("".join(f"{o}\n" for o in sorted(keep, key=int)))
        print(f"Scored originals: {len(keep)} of {len(keep) + low + dup} "
              f"({low} of PDQ quality < 50, {dup} near-duplicates of another original)\n")
        manifest = [r for r in manifest if r["original"] in keep]
        rows = collections.defaultdict(dict, {
            k: {c: (t, [(o, v) for o, v in u if o in keep]) for c, (t, u) in m.items()}
            for k, m in rows.items() if k[1] in keep})
    origs = [(r["original"], peers[r["path"]][0]) for r in manifest
             if r["kind"] == "original" and r["path"] in peers and int(r["original"]) % bank_every == 0]
    for r in manifest:
        key = (r["class"], r["original"])
        if r["kind"] != "query" or key not in rows or r["path"] not in peers:
            continue
        for name, q in (("peer_pdqhash", peers[r["path"]][0]), ("peer_unletterbox", peers[r["path"]][1])):
            true = None
            un = []
            for o, h in origs:
                dist = bin(q ^ h).count("1")
                if o == r["original"]:
                    true = dist
                elif group.get(o) != r["group"] and dist <= 80:
                    un.append((o, dist))
            rows[key][name] = (true, un)
    classes = sorted({c for c, _ in rows})
    n_orig = len(origs) if origs else len({o for _, o in rows})

    def found(chs, thr):
        hit = collections.Counter()
        tot = collections.Counter()
        false_pairs = 0
        pairs = 0
        for (cls, orig), m in rows.items():
            tot[cls] += 1
            ok = any(m.get(c, (None, []))[0] is not None and m[c][0] <= thr[c] for c in chs)
            hit[cls] += ok
            fm = set()
            for c in chs:
                for o, v in m.get(c, (None, []))[1]:
                    if v <= thr[c]:
                        fm.add(o)
            false_pairs += len(fm)
        return hit, tot, false_pairs

    ours = list(OURS)
    if any(BANDS[0] in m for m in rows.values()):
        ours = [c for c in OURS if c != "window"] + BANDS
    ours_h, tot, ours_fp = found(ours, th)
    peer = {}
    for p in PEERS:
        peer[p] = found([p], {p: 31})
    total_pairs = sum(tot.values()) * (n_orig - 1)
    print(f"## Recall per edit class ({n_orig} originals, {sum(tot.values())} queries, "
          f"{total_pairs:,} unrelated pairs)\n")
    print("| class | echotrace (all channels) | plain PDQ (pdqhash) | pytx unletterbox + PDQ | target |")
    print("|---|---|---|---|---|")
    for c in classes:
        tgt = "≥ 95 %" if c in ACCEPT_95 else ("≥ 85 %" if c in ACCEPT_85 else "—")
        cells = [f"{100 * ours_h[c] / tot[c]:.1f} %"]
        for p in PEERS:
            h, t, _ = peer[p]
            cells.append(f"{100 * h[c] / t[c]:.1f} %" if t[c] else "—")
        print(f"| {c} | " + " | ".join(cells) + f" | {tgt} |")
    print(f"\nFalse matches over all unrelated pairs: echotrace {ours_fp}, "
          + ", ".join(f"{PEERS[p]} {peer[p][2]}" for p in PEERS))
    print("\n## Unrelated minimum distance per channel (per query x original pair)\n")
    print("| channel | pairs with a distance <= 80 | min | 1st percentile of those | threshold | margin |")
    print("|---|---|---|---|---|---|")
    for c in OURS + BANDS + list(PEERS):
        vals = sorted(v for m in rows.values() for _, v in m.get(c, (None, []))[1])
        if not vals:
            print(f"| {c} | 0 | — | — | {th.get(c, 31)} | — |")
            continue
        p1 = vals[max(0, len(vals) // 100 - 1)]
        print(f"| {c} | {len(vals)} | {vals[0]} | {p1} | {th.get(c, 31)} | {vals[0] - th.get(c, 31)} |")
    print("\n## True-pair distance per channel (median over queries where the channel came within 80)\n")
    for c in OURS + BANDS:
        vals = sorted(m[c][0] for m in rows.values() if c in m and m[c][0] is not None)
        if vals:
            print(f"- {c}: n={len(vals)}, median {vals[len(vals)//2]}, within threshold {sum(v <= th[c] for v in vals)}")
    # Queries found *only* through one band (what its threshold costs).
    if any(BANDS[0] in m for m in rows.values()):
        print("\n## Queries found only through one window band (recall that band's threshold holds)\n")
        for b in BANDS:
            others = [c for c in ours if c != b]
            only = [(cls, m[b][0]) for (cls, _), m in rows.items()
                    if b in m and m[b][0] is not None and m[b][0] <= th[b]
                    and not any(m.get(c, (None, []))[0] is not None and m[c][0] <= th[c] for c in others)]
            print(f"- {b}: {len(only)} queries, distances {sorted(v for _, v in only)}")
    hist_report(d)


def hist_report(d):
    """Every unrelated needle x window distance (harness window_hist.tsv),
    by window quality band: the distribution the window thresholds are set
    from."""
    import os
    path = f"{d}/window_hist.tsv"
    if not os.path.exists(path):
        return
    by_w = collections.defaultdict(lambda: [0] * 257)
    by_n = collections.defaultdict(lambda: [0] * 257)
    for line in open(path).read().splitlines()[1:]:
        wb, nb, counts = line.split("\t")
        c = [int(x) for x in counts.split(",")]
        for i, v in enumerate(c):
            by_w[int(wb)][i] += v
            by_n[int(nb)][i] += v
    for title, table in (("window", by_w), ("needle", by_n)):
        print(f"\n## Unrelated needle x window distances by {title} quality band (every comparison)\n")
        print("| band | comparisons | mean | sd | z of 40 | min | <= 30 | <= 40 | <= 50 | <= 60 | 1e-6 quantile |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for b in sorted(table):
            c = table[b]
            n = sum(c)
            if not n:
                continue
            mean = sum(i * v for i, v in enumerate(c)) / n
            sd = math.sqrt(sum(v * (i - mean) ** 2 for i, v in enumerate(c)) / n)
            cum = 0
            q6 = None
            for i, v in enumerate(c):
                cum += v
                if q6 is None and cum >= n * 1e-6:
                    q6 = i
            mn = next(i for i, v in enumerate(c) if v)
            le = lambda t: sum(c[: t + 1])
            print(f"| {b} | {n:,} | {mean:.1f} | {sd:.2f} | {(40 - mean) / sd:.1f} | {mn} | {le(30)} | {le(40)} | "
                  f"{le(50)} | {le(60)} | {q6} |")


if __name__ == "__main__":
    main()
