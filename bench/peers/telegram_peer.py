"""Python peer of the Telegram-export benchmark: load result.json, and for
every message join its text, collect its links, hash it (SHA-256, MD5 and a
128-permutation MinHash of word 3-shingles with datasketch, the same
signature size echotrace computes), match the MinHash against the same
100-text bank the bench loads (`bank_match.py`, a datasketch MinHashLSH at
Jaccard 0.5), and record it, its match and its links in SQLite. Prints one
JSON line with messages/s and messages per CPU-second.

`--light` is the peer of sessions 10-15 (no match step), kept so earlier
figures can be reproduced.

Usage: python3 telegram_peer.py EXPORT_DIR DB_PATH [--light]
"""
import hashlib
import json
import resource
import sqlite3
import sys
import time

from bank_match import Bank, minhash

path, dbp = sys.argv[1], sys.argv[2]
LIGHT = "--light" in sys.argv[3:]
bank = None if LIGHT else Bank(100)  # built before the clock starts, as echotrace's bank is
t0 = time.time()
r0 = resource.getrusage(resource.RUSAGE_SELF)
db = sqlite3.connect(dbp)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE m (chat INTEGER, id INTEGER, date INTEGER, text TEXT, sha256 TEXT, md5 TEXT, minhash BLOB, matched TEXT)")
db.execute("CREATE TABLE l (chat INTEGER, id INTEGER, url TEXT)")
with open(f"{path}/result.json", encoding="utf-8") as f:
    export = json.load(f)
n = 0
for m in export["messages"]:
    ents = m.get("text_entities", [])
    text = "".join(e.get("text", "") for e in ents)
    links = [e["href"] if e.get("type") == "text_link" else e.get("text") for e in ents if e.get("type") in ("link", "text_link")]
    mh = minhash(text)
    matched = None if bank is None else json.dumps(bank.match(mh))
    b = text.encode()
    db.execute("INSERT INTO m VALUES (?,?,?,?,?,?,?,?)", (export["id"], m["id"], int(m.get("date_unixtime", 0)), text,
               hashlib.sha256(b).hexdigest(), hashlib.md5(b).hexdigest(), mh.hashvalues.tobytes(), matched))
    db.executemany("INSERT INTO l VALUES (?,?,?)", [(export["id"], m["id"], u) for u in links])
    n += 1
    if n % 500 == 0:
        db.commit()
db.commit()
r1 = resource.getrusage(resource.RUSAGE_SELF)
wall = time.time() - t0
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print(json.dumps({"peer": "python+datasketch --light" if LIGHT else "python+datasketch", "messages": n, "wall_s": wall, "cpu_s": cpu,
                  "messages_per_s": n / wall, "messages_per_cpu_s": n / max(cpu, 1e-9)}))
