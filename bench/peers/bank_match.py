"""The match step of the collector peers: the same bank echotrace's bench
loads (`collect` builds a bank of K generated texts, `text(1_000_000 + i,
80)`), as a datasketch MinHashLSH at Jaccard 0.5 (echotrace's default text
threshold) over 128-permutation MinHashes of word 3-shingles, queried with
each page's or message's MinHash, each candidate then checked by its
estimated Jaccard. The generator is a port of `text()` in
bench/src/bin/collect.rs (xorshift64 over the same word list), so both
sides hold the same bank texts.
"""
from datasketch import MinHash, MinHashLSH

WORDS = ["river", "valley", "morning", "league", "harbour", "market", "garden", "bridge", "station",
         "weather", "cyclist", "festival", "library", "museum", "orchard", "meadow", "village", "coast",
         "ferry", "bakery", "concert", "stadium", "forecast", "lantern", "tram", "island", "summit"]
M = (1 << 64) - 1


def text(seed, n):
    x = ((seed * 0x9E3779B97F4A7C15) & M) | 1
    out = []
    for _ in range(n):
        x ^= (x << 13) & M
        x ^= x >> 7
        x ^= (x << 17) & M
        out.append(WORDS[x % len(WORDS)])
    return " ".join(out)


def minhash(text_):
    words = text_.lower().split()
    mh = MinHash(num_perm=128)
    for i in range(max(len(words) - 2, 1)):
        mh.update(" ".join(words[i:i + 3]).encode())
    return mh


class Bank:
    def __init__(self, texts=100):
        self.lsh = MinHashLSH(threshold=0.5, num_perm=128)
        self.items = {}
        for i in range(texts):
            mh = minhash(text(1_000_000 + i, 80))
            self.items[i] = mh
            self.lsh.insert(i, mh)

    def match(self, mh):
        """Bank items whose estimated Jaccard with `mh` is at least 0.5."""
        return [k for k in self.lsh.query(mh) if self.items[k].jaccard(mh) >= 0.5]
