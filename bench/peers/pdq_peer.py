#!/usr/bin/env python3
"""PDQ peer for bench/src/bin/pdq.rs: Meta's reference core via `pdqhash`.

Single-threaded. Two modes, both printing one JSON object per case:

  hash FILE.rgb W H ITERS ...   raw interleaved RGB8 files (written by the
                                Rust harness); times pdqhash.compute only.
  e2e  FILE ITERS ...           image files; times Pillow decode
                                (convert('RGB'), as python-threatexchange)
                                + pdqhash.compute, from bytes in memory.
"""
import io
import json
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pdqhash  # noqa: E402
from PIL import Image  # noqa: E402


def to_hex(bits):
    # pdqhash returns bit 255 first; Meta's hex is the same bit order.
    return "%064x" % int("".join("1" if b else "0" for b in bits), 2)


MIN_LOOP_SECS = 0.5  # same rule as the Rust harness


def timed(fn, iters):
    """After a warm-up, run at least `iters` times and at least MIN_LOOP_SECS:
    median wall ms per run and mean on-CPU (this thread) ms per run."""
    out = fn()
    wall = []
    start = time.perf_counter()
    c0 = time.thread_time_ns()
    while len(wall) < iters or (time.perf_counter() - start < MIN_LOOP_SECS and len(wall) < 20000):
        t0 = time.perf_counter()
        out = fn()
        wall.append((time.perf_counter() - t0) * 1e3)
    cpu = (time.thread_time_ns() - c0) / 1e6 / len(wall)
    return out, {"wall_ms": statistics.median(wall), "cpu_ms": cpu}


def main(argv):
    mode, args = argv[1], argv[2:]
    if mode == "hash":
        for i in range(0, len(args), 4):
            path, w, h, iters = args[i], int(args[i + 1]), int(args[i + 2]), int(args[i + 3])
            with open(path, "rb") as f:
                arr = np.frombuffer(f.read(), dtype=np.uint8).reshape(h, w, 3)
            (bits, q), t = timed(lambda: pdqhash.compute(arr), iters)
            print(json.dumps({"case": path, **t, "hash": to_hex(bits), "quality": int(q)}), flush=True)
    elif mode == "e2e":
        for i in range(0, len(args), 2):
            path, iters = args[i], int(args[i + 1])
            with open(path, "rb") as f:
                data = f.read()

            def run():
                img = Image.open(io.BytesIO(data)).convert("RGB")
                return pdqhash.compute(np.asarray(img))

            (bits, q), t = timed(run, iters)
            print(json.dumps({"case": path, **t, "hash": to_hex(bits), "quality": int(q)}), flush=True)
    else:
        sys.exit("usage: pdq_peer.py hash|e2e ...")


if __name__ == "__main__":
    main(sys.argv)
