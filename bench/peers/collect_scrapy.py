"""Scrapy peer of the collector benchmark: crawl the same local site
(bench `collect site`), depth 2, politeness off, and for every page do the
issue's pipeline as echotrace does — fetch, parse text and links, hash (the
body's SHA-256 and MD5, and a 128-permutation MinHash of the text's word
3-shingles), match the MinHash against the same 100-text bank
(`bank_match.py`), and record the page, its match and its outlinks in
SQLite. Prints one JSON line with pages, wall seconds and CPU seconds of
this process.

`--light` is the peer of sessions 10-15: no text MinHash and no match
(parse, digests and record only), kept so earlier figures can be
reproduced.

Usage: python3 collect_scrapy.py http://127.0.0.2:PORT/ DB_PATH [--light]
"""
import hashlib
import json
import os
import resource
import sqlite3
import sys
import time

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.linkextractors import LinkExtractor

from bank_match import Bank, minhash

SEED, DB = sys.argv[1], sys.argv[2]
LIGHT = "--light" in sys.argv[3:]
BANK = None if LIGHT else Bank(100)


class Store:
    def __init__(self):
        self.db = sqlite3.connect(DB)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS pages (url TEXT PRIMARY KEY, sha256 TEXT, md5 TEXT, text TEXT, "
                        "minhash BLOB, matched TEXT)")
        self.db.execute("CREATE TABLE IF NOT EXISTS links (page TEXT, url TEXT)")
        self.n = 0

    def process_item(self, item, spider):
        self.db.execute("INSERT OR REPLACE INTO pages VALUES (?,?,?,?,?,?)",
                        (item["url"], item["sha256"], item["md5"], item["text"], item["minhash"], item["matched"]))
        self.db.executemany("INSERT INTO links VALUES (?,?)", [(item["url"], u) for u in item["links"]])
        self.n += 1
        if self.n % 256 == 0:
            self.db.commit()
        return item

    def close_spider(self, spider):
        self.db.commit()


class Site(scrapy.Spider):
    name = "site"
    start_urls = [SEED]
    links = LinkExtractor()

    def parse(self, response):
        body = response.body
        text = " ".join(t.strip() for t in response.xpath("//body//text()[not(ancestor::script)]").getall() if t.strip())
        found = [l.url for l in self.links.extract_links(response)]
        mh, matched = None, None
        if BANK is not None:
            sig = minhash(text)
            mh, matched = sig.hashvalues.tobytes(), json.dumps(BANK.match(sig))
        yield {"url": response.url, "sha256": hashlib.sha256(body).hexdigest(),
               "md5": hashlib.md5(body).hexdigest(), "text": text, "links": found,
               "minhash": mh, "matched": matched}
        for u in found:
            if u.startswith(SEED.rstrip("/")):
                yield response.follow(u, callback=self.parse)


STORE = Store()


class Pipeline:
    def process_item(self, item, spider):
        return STORE.process_item(item, spider)

    def close_spider(self, spider):
        STORE.close_spider(spider)


if __name__ == "__main__":
    t0 = time.time()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    proc = CrawlerProcess(settings={
        "LOG_LEVEL": "ERROR", "ROBOTSTXT_OBEY": False, "DOWNLOAD_DELAY": 0,
        "CONCURRENT_REQUESTS": 16, "CONCURRENT_REQUESTS_PER_DOMAIN": 16, "DEPTH_LIMIT": 2,
        "ITEM_PIPELINES": {"__main__.Pipeline": 100}, "TELNETCONSOLE_ENABLED": False,
        "AUTOTHROTTLE_ENABLED": False, "COOKIES_ENABLED": False, "RETRY_ENABLED": False,
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
    })
    proc.crawl(Site)
    proc.start()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.time() - t0
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(json.dumps({"peer": "scrapy --light" if LIGHT else "scrapy", "pages": STORE.n, "wall_s": wall, "cpu_s": cpu,
                      "pages_per_s": STORE.n / wall, "pages_per_cpu_s": STORE.n / max(cpu, 1e-9),
                      "rss_mb_max": r1.ru_maxrss / 1024}))
