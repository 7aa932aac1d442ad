"""Python peer of the Telegram-export benchmark: load result.json, and for
every message join its text, collect its links, hash it (SHA-256, MD5 and a
128-permutation MinHash of word 3-shingles with datasketch, the same
signature size echotrace computes) and record it with its links in SQLite.
Prints one JSON line with messages/s and messages per CPU-second.

Usage: python3 telegram_peer.py EXPORT_DIR DB_PATH
"""
import hashlib
import json
import resource
import sqlite3
import sys
import time

from datasketch import MinHash

path, dbp = sys.argv[1], sys.argv[2]
t0 = time.time()
r0 = resource.getrusage(resource.RUSAGE_SELF)
db = sqlite3.connect(dbp)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE m (chat INTEGER, id INTEGER, date INTEGER, text TEXT, sha256 TEXT, md5 TEXT, minhash BLOB)")
db.execute("CREATE TABLE l (chat INTEGER, id INTEGER, url TEXT)")
with open(f"{path}/result.json", encoding="utf-8") as f:
    export = json.load(f)
n = 0
for m in export["messages"]:
    ents = m.get("text_entities", [])
    text = "".join(e.get("text", "") for e in ents)
    links = [e["href"] if e.get("type") == "text_link" else e.get("text") for e in ents if e.get("type") in ("link", "text_link")]
    words = text.lower().split()
    mh = MinHash(num_perm=128)
    for i in range(max(len(words) - 2, 1)):
        mh.update(" ".join(words[i:i + 3]).encode())
    b = text.encode()
    db.execute("INSERT INTO m VALUES (?,?,?,?,?,?,?)", (export["id"], m["id"], int(m.get("date_unixtime", 0)), text,
               hashlib.sha256(b).hexdigest(), hashlib.md5(b).hexdigest(), mh.hashvalues.tobytes()))
    db.executemany("INSERT INTO l VALUES (?,?,?)", [(export["id"], m["id"], u) for u in links])
    n += 1
    if n % 500 == 0:
        db.commit()
db.commit()
r1 = resource.getrusage(resource.RUSAGE_SELF)
wall = time.time() - t0
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print(json.dumps({"peer": "python+datasketch", "messages": n, "wall_s": wall, "cpu_s": cpu,
                  "messages_per_s": n / wall, "messages_per_cpu_s": n / max(cpu, 1e-9)}))
