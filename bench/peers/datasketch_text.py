#!/usr/bin/env python3
"""Peer benchmark: datasketch MinHash / MinHashLSH on the shared text corpus.

Reads the files written by `text gen DIR` and prints one JSON object per
line, in the same shape as the Rust benchmark. Tokenisation is str.split()
(the corpus is already lower-case ASCII), which is cheaper than echotrace's
full Unicode normalisation, so the comparison favours datasketch.
"""
import json
import sys
import time

from datasketch import MinHash, MinHashLSH


def shingles(words, k):
    if len(words) < k:
        return [" ".join(words)] if words else []
    return [" ".join(words[i:i + k]) for i in range(len(words) - k + 1)]


def sig_update(text, k, perms):
    m = MinHash(num_perm=perms)
    for s in shingles(text.split(), k):
        m.update(s.encode("utf8"))
    return m


def sig_batch(text, k, perms):
    m = MinHash(num_perm=perms)
    m.update_batch([s.encode("utf8") for s in shingles(text.split(), k)])
    return m


def timed(fn, docs, min_secs=2.0):
    """Docs per second of this thread's CPU time (the machine may be shared)."""
    n, t0 = 0, time.thread_time()
    while time.thread_time() - t0 < min_secs:
        for d in docs:
            fn(d)
            n += 1
    return n / (time.thread_time() - t0)


def main():
    d = sys.argv[1]
    long_docs = open(f"{d}/long.txt").read().splitlines()
    for k in (5, 3):
        for name, fn in (("sign", sig_update), ("sign_update_batch", sig_batch)):
            rate = timed(lambda t: fn(t, k, 128), long_docs[:300])
            print(json.dumps({"impl": "datasketch", "bench": name, "words": 400, "k": k, "K": 128,
                              "docs_per_cpu_s": round(rate)}), flush=True)

    docs = open(f"{d}/docs.txt").read().splitlines()
    t0 = time.thread_time()
    sigs = [sig_batch(t, 3, 128) for t in docs]
    sign_s = time.thread_time() - t0
    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    t0 = time.thread_time()
    for i, m in enumerate(sigs):
        lsh.insert(i, m)
    ins = time.thread_time() - t0
    print(json.dumps({"impl": "datasketch", "bench": "lsh_build", "docs": len(docs), "sign_cpu_s": round(sign_s, 2),
                      "insert_cpu_s": round(ins, 2), "inserts_per_cpu_s": round(len(docs) / ins),
                      "bands_rows": [lsh.b, lsh.r]}), flush=True)
    del sigs

    queries = []
    for line in open(f"{d}/queries.tsv"):
        qid, kind, text = line.rstrip("\n").split("\t", 2)
        queries.append((int(qid), kind, sig_batch(text, 3, 128)))
    # Median of 5 timed passes of >= 1 CPU-s each, as on the echotrace side.
    rounds, rounds_wall = [], []
    for _ in range(5):
        n, hits, t0, w0 = 0, 0, time.thread_time(), time.perf_counter()
        while time.thread_time() - t0 < 1.0:
            for _, _, m in queries:
                hits += len(lsh.query(m))
                n += 1
        rounds.append(n / (time.thread_time() - t0))
        rounds_wall.append(n / (time.perf_counter() - w0))
    qps = sorted(rounds)[len(rounds) // 2]
    qps_wall = sorted(rounds_wall)[len(rounds_wall) // 2]
    print(json.dumps({"impl": "datasketch", "bench": "lsh_query", "rule": "jaccard_0.5", "docs": len(docs),
                      "queries_per_cpu_s": round(qps), "queries_per_wall_s": round(qps_wall),
                      "rounds_per_cpu_s": [round(r) for r in rounds]}), flush=True)
    kinds = []
    for q in queries:
        if q[1] not in kinds:
            kinds.append(q[1])
    for kind in kinds:
        sel = [q for q in queries if q[1] == kind]
        found = other = 0
        for qid, _, m in sel:
            res = lsh.query(m)
            if qid >= 0:
                found += qid in res
                other += sum(1 for r in res if r != qid)
            else:
                other += len(res)
        print(json.dumps({"impl": "datasketch", "bench": "recall", "kind": kind, "queries": len(sel),
                          "recall_lsh": round(found / len(sel), 3), "other_hits_unverified": other}), flush=True)


if __name__ == "__main__":
    main()
