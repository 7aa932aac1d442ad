#!/usr/bin/env python3
"""faiss peer for the Hamming-index benchmark (issue 3).

Reads the same files `cargo run -p echotrace-bench --bin index -- gen` writes
(bench/data/index-<shape>-<n>.codes / .queries: 32 bytes per code) and runs,
on ONE thread, radius 31 inclusive (faiss range_search is strict `<`, so it
is given 32):
  * IndexBinaryMultiHash(256, 16, 16) with nflip=1 (16 tables of 16 bits,
    probing each table's key and its 16 one-bit neighbours: exact for r=31
    by the pigeonhole bound);
  * IndexBinaryFlat (brute force).
Reports build time, queries/s, p50/p99 latency, total hits and peak RSS,
and checks that both agree. Usage:
  python3 bench/peers/faiss_pdq.py --n 1000000 --shape random [--queries 2000]
"""
import argparse
import os
import resource
import time

import faiss
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def load(path, limit=None):
    a = np.fromfile(path, dtype=np.uint8)
    a = a.reshape(-1, 32)
    return a if limit is None else a[:limit]


def thread_cpu():
    return time.clock_gettime(time.CLOCK_THREAD_CPUTIME_ID)


def run(index, queries, label):
    lat = []
    hits = 0
    results = []
    t0 = time.perf_counter()
    c0 = thread_cpu()
    for i in range(len(queries)):
        q = queries[i : i + 1]
        s = time.perf_counter()
        lims, D, I = index.range_search(q, 32)  # strict < 32  ==  <= 31
        lat.append(time.perf_counter() - s)
        hits += int(lims[1])
        results.append(sorted(zip(I.tolist(), D.tolist())))
    wall = time.perf_counter() - t0
    cpu = thread_cpu() - c0
    lat.sort()
    p = lambda f: lat[min(len(lat) - 1, int(round((len(lat) - 1) * f)))] * 1e6
    print(
        f"faiss {label}: queries={len(queries)} qps_wall={len(queries)/wall:.0f} "
        f"qps_per_cpu_second={len(queries)/max(cpu,1e-9):.0f} p50_us={p(0.5):.1f} "
        f"p99_us={p(0.99):.1f} hits={hits}",
        flush=True,
    )
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--shape", default="random")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--dir", default=os.path.join(HERE, "..", "data"))
    ap.add_argument("--no-flat", action="store_true")
    ap.add_argument("--flat-queries", type=int, default=None,
                    help="queries for IndexBinaryFlat (default: same as --queries)")
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    stem = os.path.join(args.dir, f"index-{args.shape}-{args.n}")
    codes = load(stem + ".codes")
    # Same query file; take an even prefix (alternating near/fresh).
    queries = load(stem + ".queries", args.queries)
    print(f"faiss {faiss.__version__} n={len(codes)} shape={args.shape}", flush=True)

    t = time.perf_counter()
    mh = faiss.IndexBinaryMultiHash(256, 16, 16)
    mh.nflip = 1
    mh.add(codes)
    print(f"faiss multihash build_s={time.perf_counter()-t:.2f}", flush=True)
    got_mh = run(mh, queries, "IndexBinaryMultiHash(256,16,16) nflip=1")
    del mh
    if not args.no_flat:
        t = time.perf_counter()
        flat = faiss.IndexBinaryFlat(256)
        flat.add(codes)
        print(f"faiss flat build_s={time.perf_counter()-t:.2f}", flush=True)
        fq = queries if args.flat_queries is None else queries[: args.flat_queries]
        got_flat = run(flat, fq, "IndexBinaryFlat")
        agree = sum(a == b for a, b in zip(got_mh, got_flat))
        print(f"faiss multihash vs flat: {agree}/{len(fq)} queries identical", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"faiss peak_rss_mib={rss:.0f}", flush=True)


if __name__ == "__main__":
    main()
