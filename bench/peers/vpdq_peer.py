"""vPDQ peer for bench/src/bin/video.rs: Meta's reference C++ vPDQ through
the PyPI `vpdq` package (built against the system libav*), plus a
python-threatexchange-style VPDQIndex lookup on faiss.

    python3 vpdq_peer.py hash VIDEO SECONDS_PER_HASH RUNS
        -> JSON {"seconds": [...], "frames": N, "hashes": ["hex,quality", ...]}
    python3 vpdq_peer.py index CODES_FILE FRAMES_PER_VIDEO QUERIES_FILE
        -> JSON {"build_s": .., "lookups_per_s": .., "matches": [...]}

Index files: 32-byte codes (four little-endian u64 words), frames of a video
consecutive. The lookup mirrors python-threatexchange's VPDQIndex.query:
range_search(radius 31 inclusive) per distinct query frame, aggregate per
video, keep query share >= 80 %.
"""

import json
import sys
import time


def words_to_bytes(raw):
    # Our words are little-endian u64s; faiss wants bytes. Any fixed bijection
    # preserves Hamming distance, so the raw 32 bytes are used as is.
    return raw


def cmd_hash(video, seconds_per_hash, runs):
    import vpdq

    times = []
    feats = None
    for _ in range(runs):
        t = time.perf_counter()
        feats = vpdq.computeHash(video, seconds_per_hash=seconds_per_hash)
        times.append(time.perf_counter() - t)
    print(
        json.dumps(
            {
                "seconds": times,
                "frames": len(feats),
                "hashes": [f"{f.hex},{f.quality}" for f in feats],
            }
        )
    )


def cmd_index(codes_file, frames_per_video, queries_file):
    import faiss
    import numpy as np

    codes = np.fromfile(codes_file, dtype=np.uint8).reshape(-1, 32)
    queries = np.fromfile(queries_file, dtype=np.uint8).reshape(-1, 32)
    n_videos = len(codes) // frames_per_video
    t = time.perf_counter()
    # VPDQIndex.add: distinct codes once, each remembering its videos.
    slot_of = {}
    slot_videos = []
    uniq = []
    video_slots = []
    for v in range(n_videos):
        seen = set()
        for c in codes[v * frames_per_video : (v + 1) * frames_per_video]:
            key = c.tobytes()
            if key in seen:
                continue
            seen.add(key)
            s = slot_of.get(key)
            if s is None:
                s = len(uniq)
                slot_of[key] = s
                uniq.append(c)
                slot_videos.append([])
            slot_videos[s].append(v)
        video_slots.append(len(seen))
    index = faiss.IndexBinaryFlat(256)
    index.add(np.array(uniq))
    build = time.perf_counter() - t

    n_queries = len(queries) // frames_per_video
    matches = []
    t = time.perf_counter()
    for q in range(n_queries):
        qs = queries[q * frames_per_video : (q + 1) * frames_per_video]
        # dedupe query frames
        _, first = np.unique(qs, axis=0, return_index=True)
        qs = qs[np.sort(first)]
        lims, _, ids = index.range_search(qs, 32)  # < 32, i.e. <= 31
        q_matched = {}
        i_matched = {}
        for i in range(len(qs)):
            for s in ids[lims[i] : lims[i + 1]]:
                for v in slot_videos[s]:
                    q_matched.setdefault(v, set()).add(i)
                    i_matched.setdefault(v, set()).add(int(s))
        found = []
        for v, qm in q_matched.items():
            qp = len(qm) * 100 / len(qs)
            ip = len(i_matched[v]) * 100 / video_slots[v]
            if qp >= 80.0 and ip >= 0.0:
                found.append(v)
        matches.append(sorted(found))
    elapsed = time.perf_counter() - t
    print(
        json.dumps(
            {
                "build_s": build,
                "lookups_per_s": n_queries / elapsed,
                "matches": matches,
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1] == "hash":
        cmd_hash(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "index":
        cmd_index(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit("usage: vpdq_peer.py hash|index ...")
