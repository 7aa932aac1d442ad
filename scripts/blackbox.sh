#!/usr/bin/env bash
# Re-run the scriptable black-box checks of issue 12 against a release build
# of `echotrace serve`, on loopback only, and print a report:
#
#   1. NUL in every string field, on SQLite and PostgreSQL: each a 400 naming
#      the field, never a 500 (and the login username, before authentication).
#   2. Body floods with RSS measured: 64 concurrent maximum-size (64 MiB) text
#      lookups with --retain-media, 32 anonymous 30 MiB console-login POSTs.
#   3. PDF starvation: 4 hostile PDFs (200,000 page objects, 16 MB) in flight,
#      then a 22-byte text lookup is timed; plus a deflate bomb.
#   4. Internals: a malformed PDF and a cut MP4 with RUST_BACKTRACE=1 in the
#      server's environment; answers must not carry stderr, paths, addresses.
#   5. Error metrics by status class after all of the above.
#
#   cargo build --release -p echotrace && scripts/blackbox.sh
#
# ECHOTRACE_BIN overrides the binary; ECHOTRACE_TEST_PG_URL a PostgreSQL
# server (otherwise a throwaway one is started with scripts/pg-temp.sh).
# Needs python3 (standard library only) and the fixtures in ../shared/fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${ECHOTRACE_BIN:-target/release/echotrace}
if [ ! -x "$bin" ]; then
    echo "blackbox: $bin not found; run: cargo build --release -p echotrace" >&2
    exit 1
fi
if [ ! -d ../shared/fixtures/vpdq/videos ]; then
    echo "blackbox: ../shared/fixtures is missing" >&2
    exit 1
fi
started_pg=""
if [ -z "${ECHOTRACE_TEST_PG_URL:-}" ]; then
    eval "$(scripts/pg-temp.sh start)"
    started_pg="$ECHOTRACE_PG_DIR"
    trap 'scripts/pg-temp.sh stop "$started_pg"' EXIT
fi
work=$(mktemp -d /tmp/echotrace-blackbox.XXXXXX)
echo "blackbox: $($bin --version 2>/dev/null || echo "$bin"), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

status=0
# A fresh database on that server: the checks need an empty one (the
# bootstrap admin key is printed only when no key exists).
pg_server=${ECHOTRACE_TEST_PG_URL%/*}
pg_db="blackbox_$$"
psql "$ECHOTRACE_TEST_PG_URL" -qc "DROP DATABASE IF EXISTS $pg_db" -c "CREATE DATABASE $pg_db"
ECHOTRACE_BIN="$bin" WORK="$work" PG_URL="$pg_server/$pg_db" python3 -u - <<'PY' || status=$?
import http.client, json, os, re, subprocess, sys, threading, time, urllib.parse, zlib

BIN = os.environ["ECHOTRACE_BIN"]
WORK = os.environ["WORK"]
PG = os.environ["PG_URL"]
FIX = "../shared/fixtures"
failures = []

def check(ok, what):
    print(("  ok    " if ok else "  FAIL  ") + what)
    if not ok:
        failures.append(what)

class Server:
    def __init__(self, db, *args, env=None):
        e = dict(os.environ)
        e.update(env or {})
        self.p = subprocess.Popen(
            [BIN, "serve", "--db", db, "--listen", "127.0.0.1:0", "--no-webhooks", *args],
            stdout=subprocess.PIPE, stderr=open(os.path.join(WORK, "server.log"), "ab"),
            text=True, env=e)
        self.host = self.key = None
        deadline = time.time() + 60
        while self.host is None or self.key is None:
            line = self.p.stdout.readline()
            if not line and time.time() > deadline:
                raise SystemExit("server did not start")
            m = re.match(r"echotrace: listening on http://(\S+)", line)
            if m:
                self.host = m.group(1)
            if "API key (shown once): " in line:
                self.key = line.rsplit("(shown once): ", 1)[1].strip()
        threading.Thread(target=lambda: self.p.stdout.read(), daemon=True).start()
        while self.req("GET", "/readyz", auth=False)[0] != 200:
            time.sleep(0.05)

    def req(self, method, path, body=None, ctype="application/json", auth=True,
            headers=None, timeout=300):
        h = dict(headers or {})
        if auth:
            h["Authorization"] = "Bearer " + self.key
        if body is not None:
            h["Content-Type"] = ctype
        c = http.client.HTTPConnection(self.host, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, data, dict(r.getheaders())
        except (BrokenPipeError, ConnectionResetError) as e:
            return None, str(e).encode(), {}
        finally:
            c.close()

    def json(self, method, path, obj):
        s, d, _ = self.req(method, path, json.dumps(obj).encode())
        return s, (json.loads(d) if d[:1] in (b"{", b"[") else d)

    def kib(self, field):
        for line in open(f"/proc/{self.p.pid}/status"):
            if line.startswith(field):
                return int(line.split()[1])
        return 0

    def stop(self):
        self.p.kill()
        self.p.wait()

def multipart(fields, files):
    b = "----blackbox"
    out = b""
    for k, v in fields:
        out += f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n".encode() + v + b"\r\n"
    for k, name, data in files:
        out += (f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"

TEXT = "the river valley fog clears by noon and the afternoon stays bright and warm"

# ----- 1. NUL in every string field --------------------------------------------
def nul_checks(label, db):
    print(f"\n1. NUL in every string field ({label})")
    s = Server(db)
    # /readyz answers 503 while the indexes load, and those count as 5xx:
    # the check is on the 5xx answered after the server became ready.
    _, m0, _ = s.req("GET", "/metrics", auth=False)
    five0 = int(re.search(rb'echotrace_http_errors_total\{class="5xx"\} (\d+)', m0).group(1))
    s.json("POST", "/v1/banks", {"name": "nulbank"})
    s.json("POST", "/v1/banks/nulbank/content", {"text": TEXT})
    _, hit = s.json("POST", "/v1/lookup", {"text": TEXT})
    mid = hit["matches"][0]["id"]
    n = "\\u0000"
    cases = [
        ("POST", "/v1/banks", f'{{"name":"b1","description":"a{n}"}}', "description"),
        ("PATCH", "/v1/banks/nulbank", f'{{"description":"x{n}"}}', "description"),
        ("PATCH", "/v1/banks/nulbank", f'{{"text_equivalences":"a = b{n}"}}', "text_equivalences"),
        ("POST", "/v1/banks/nulbank/content", f'{{"text":"{TEXT}","note":"n{n}"}}', "note"),
        ("POST", "/v1/banks/nulbank/content", f'{{"text":"a{n}b"}}', "text"),
        ("POST", "/v1/lookup", f'{{"text":"a{n}b"}}', "text"),
        ("POST", "/v1/lookup", f'{{"text":"hi","context":{{"content_id":"c{n}"}}}}', "context.content_id"),
        ("POST", "/v1/lookup", f'{{"text":"hi","context":{{"url":"u{n}"}}}}', "context.url"),
        ("POST", "/v1/lookup", f'{{"text":"hi","context":{{"uploader_id":"u{n}"}}}}', "context.uploader_id"),
        ("POST", "/v1/lookup", f'{{"text":"hi","banks":["nulbank{n}"]}}', "banks[0]"),
        ("POST", "/v1/lookup/batch", f'{{"items":[{{"text":"a{n}"}}]}}', "items[0].text"),
        ("POST", "/v1/keys", f'{{"role":"matcher","name":"k{n}"}}', "name"),
        ("POST", "/v1/actions/webhooks", f'{{"url":"https://h.example/x","secret":"s{n}"}}', "secret"),
        ("POST", "/v1/actions/webhooks", f'{{"url":"https://h.example/x{n}","secret":"s"}}', "url"),
        ("POST", f"/v1/matches/{mid}/decision", f'{{"decision":"confirm","note":"n{n}"}}', "note"),
        ("PATCH", "/v1/banks/nulbank/content/1", f'{{"note":"n{n}"}}', "note"),
        ("PATCH", "/v1/banks/nulbank/content/1", f'{{"labels":["l{n}"]}}', "labels[0]"),
        ("POST", "/c/banks", f'{{"name":"b{n}"}}', "name"),
        ("POST", "/c/bank/nulbank/signal", f'{{"pdq":"{"a"*64}","note":"{n}"}}', "note"),
        ("GET", "/v1/banks/%00", None, "name"),
        ("GET", "/v1/matches?bank=%00", None, "bank"),
        ("GET", "/m/lookup?signal_type=text&signal=a%00", None, "signal"),
        ("GET", "/m/raw_lookup?signal_type=pdq&signal=x&banks=%00", None, "banks"),
    ]
    for method, path, body, field in cases:
        st, d, _ = s.req(method, path, body.encode() if body else None)
        msg = d.decode(errors="replace")
        check(st == 400 and field in msg, f"{method} {path} {field!r}: {st} {msg[:90]}")
    body, ct = multipart([("context", b'{"content_id":"a\x00"}')], [("file", "t.txt", TEXT.encode())])
    st, d, _ = s.req("POST", "/v1/lookup", body, ct)
    check(st == 400 and b"context" in d, f"multipart context field: {st}")
    st, d, h = s.req("GET", "/ui/login", auth=False)
    tok = re.search(r"et_login=([^;]+)", h.get("set-cookie", h.get("Set-Cookie", ""))).group(1)
    st, d, _ = s.req("POST", "/ui/login", f"csrf={tok}&username=ad%00min&password=x".encode(),
                     "application/x-www-form-urlencoded", auth=False, headers={"Cookie": f"et_login={tok}"})
    check(st == 400 and b"username" in d, f"console login username (anonymous): {st}")
    _, m, _ = s.req("GET", "/metrics", auth=False)
    five = int(re.search(rb'echotrace_http_errors_total\{class="5xx"\} (\d+)', m).group(1)) - five0
    check(five == 0, f"5xx responses during the NUL checks: {five} (after ready)")
    s.stop()

nul_checks("SQLite", f"sqlite://{WORK}/nul.db")
nul_checks("PostgreSQL", PG)

# ----- 2. Body floods with RSS measured ----------------------------------------
print("\n2. Body floods (SQLite, --retain-media, default limits: 64 MiB bodies, 128 MiB budget)")
s = Server(f"sqlite://{WORK}/flood.db", "--retain-media")
s.json("POST", "/v1/lookup", {"text": "warm up"})
idle = s.kib("VmRSS")
size = 64 << 20
words = "flood words in a long text body for the budget check "
body = ('{"text":"' + words * (size // len(words) + 1))[: size - 2].encode() + b'"}'
results = []
def flood_one():
    results.append(s.req("POST", "/v1/lookup", body, timeout=600)[0])
t0 = time.time()
threads = [threading.Thread(target=flood_one) for _ in range(64)]
for t in threads: t.start()
for t in threads: t.join()
peak = s.kib("VmHWM")
grown = (peak - idle) / 1024
print(f"  64 × 64 MiB text lookups in {time.time()-t0:.1f} s: " +
      ", ".join(f"{k}: {results.count(k)}" for k in sorted(set(results), key=str)))
print(f"  RSS idle {idle/1024:.0f} MiB, peak {peak/1024:.0f} MiB (+{grown:.0f} MiB); "
      f"stated bound +{8*128+64} MiB (8 × budget + 64 MiB; see server/src/budget.rs); issue figure: 16 × 50 MB reached 1.57 GB")
check(set(results) <= {200, 503}, "every flood lookup answered 200 or 503")
check(grown <= 8 * 128 + 64, f"peak RSS growth {grown:.0f} MiB within the bound")
s.stop()

s = Server(f"sqlite://{WORK}/login.db")
idle = s.kib("VmRSS")
login = b"a" * (30 << 20)
codes = []
def login_one():
    codes.append(s.req("POST", "/ui/login", login, "application/x-www-form-urlencoded", auth=False)[0])
threads = [threading.Thread(target=login_one) for _ in range(32)]
for t in threads: t.start()
for t in threads: t.join()
peak = s.kib("VmHWM")
print(f"  32 anonymous 30 MiB login POSTs: " + ", ".join(f"{k}: {codes.count(k)}" for k in sorted(set(codes), key=str)) +
      f"; RSS idle {idle/1024:.0f} MiB, peak {peak/1024:.0f} MiB (+{(peak-idle)/1024:.0f} MiB); issue figure: 571 MB -> 1.38 GB")
check((peak - idle) / 1024 < 64, "login flood grew RSS by less than 64 MiB")
s.stop()

# ----- 3. PDF starvation --------------------------------------------------------
def pdf_with_pages(n_pages):
    out = [b"%PDF-1.4\n"]
    offsets = []
    size = [len(out[0])]
    def obj(body):
        offsets.append(size[0])
        piece = f"{len(offsets)} 0 obj\n".encode() + body + b"\nendobj\n"
        out.append(piece)
        size[0] += len(piece)
    kids = " ".join(f"{i + 3} 0 R" for i in range(n_pages)).encode()
    obj(b"<< /Type /Catalog /Pages 2 0 R >>")
    obj(b"<< /Type /Pages /Kids [" + kids + b"] /Count " + str(n_pages).encode() + b" >>")
    for _ in range(n_pages):
        obj(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>")
    xref = size[0]
    out.append(f"xref\n0 {len(offsets)+1}\n0000000000 65535 f \n".encode())
    out.extend(f"{o:010} 00000 n \n".encode() for o in offsets)
    out.append(f"trailer\n<< /Size {len(offsets)+1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return b"".join(out)

def bomb_pdf(inflated):
    chunk = zlib.compressobj(9, zlib.DEFLATED, -15)
    c = chunk.compress(b"\0" * (1 << 20)) + chunk.flush(zlib.Z_SYNC_FLUSH)
    stream = b"\x78\xda" + c * (inflated >> 20) + b"\x03\x00" + (((inflated % 65521) << 16) | 1).to_bytes(4, "big")
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode() + stream + b"\nendstream"]
    out = b"%PDF-1.4\n"
    offs = []
    for i, o in enumerate(objs):
        offs.append(len(out))
        out += f"{i+1} 0 obj\n".encode() + o + b"\nendobj\n"
    x = len(out)
    out += f"xref\n0 {len(objs)+1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010} 00000 n \n".encode() for o in offs)
    out += f"trailer\n<< /Size {len(objs)+1} /Root 1 0 R >>\nstartxref\n{x}\n%%EOF\n".encode()
    return out

print("\n3. PDF starvation (SQLite, default pools: heavy = half the cores)")
s = Server(f"sqlite://{WORK}/pdf.db", env={"RUST_BACKTRACE": "1"})
hostile = pdf_with_pages(200_000)
print(f"  hostile PDF: {len(hostile)/1e6:.1f} MB, 200,000 page objects")
t0 = time.time()
body, ct = multipart([], [("file", "h.pdf", hostile)])
st, d, _ = s.req("POST", "/v1/hash", body, ct)
print(f"  one hostile PDF alone: {st} in {time.time()-t0:.1f} s ({d[:100].decode(errors='replace')})")
pdf_results = []
def pdf_one():
    t = time.time()
    st, d, _ = s.req("POST", "/v1/lookup", body, ct)
    pdf_results.append((st, time.time() - t))
threads = [threading.Thread(target=pdf_one) for _ in range(4)]
for t in threads: t.start()
time.sleep(0.5)
t0 = time.time()
st, d, _ = s.req("POST", "/v1/lookup", b'{"text":"short text lookup"}')
took = time.time() - t0
for t in threads: t.join()
print(f"  22-byte text lookup while 4 hostile PDFs were in flight: {st} in {took*1000:.0f} ms "
      f"(issue figure: 38.2 s); PDFs: " + ", ".join(f"{s_} in {t_:.1f} s" for s_, t_ in pdf_results))
check(st == 200 and took < 1.0, "text lookup under 1 s while the PDF pool is saturated")
bomb = bomb_pdf(2 << 30)
body, ct = multipart([], [("file", "bomb.pdf", bomb)])
t0 = time.time()
st, d, _ = s.req("POST", "/v1/hash", body, ct)
print(f"  deflate bomb ({len(bomb)/1e6:.1f} MB, inflates to 2 GiB): {st} in {time.time()-t0:.1f} s")
check(st == 200, "deflate bomb skipped, not a failure")

# ----- 4. Internals never reach clients ------------------------------------------
print("\n4. Child-process failures (RUST_BACKTRACE=1 in the server's environment)")
bad = b"%PDF-1.7\n" + os.urandom(4000)
body, ct = multipart([], [("file", "bad.pdf", bad)])
st, d, _ = s.req("POST", "/v1/hash", body, ct)
leak = [w for w in (b"panicked", b"src/", b"rustc", b"backtrace", b"memory allocation") if w in d]
check(st == 400 and not leak, f"malformed PDF: {st} {d.decode(errors='replace')[:120]}")
mp4 = open(f"{FIX}/vpdq/videos/chair-19-sd-bar.mp4", "rb").read()
for name, data in [("cut.mp4", mp4[: len(mp4) // 3]), ("noise.mp4", mp4[:64] + os.urandom(200_000))]:
    body, ct = multipart([], [("file", name, data)])
    st, d, _ = s.req("POST", "/v1/hash", body, ct)
    leak = re.search(rb"0x[0-9a-f]{6,}|@ |\[mov|ffmpeg version", d)
    check(st == 400 and not leak, f"{name}: {st} {d.decode(errors='replace')[:120]}")

# ----- 5. Error metrics -------------------------------------------------------------
_, m, _ = s.req("GET", "/metrics", auth=False)
lines = [l for l in m.decode().splitlines() if l.startswith("echotrace_http_errors_total")]
print("\n5. Error metrics of the last server: " + "; ".join(lines))
check(any('class="4xx"' in l and not l.endswith(" 0") for l in lines), "4xx responses are counted")
s.stop()

print("\nblackbox: " + ("all checks passed" if not failures else f"{len(failures)} FAILED: {failures}"))
sys.exit(1 if failures else 0)
PY
rm -rf "$work"
psql "$ECHOTRACE_TEST_PG_URL" -qc "DROP DATABASE IF EXISTS $pg_db" || true
exit $status
