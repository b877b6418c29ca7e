"""Journal benchmark: durable appends, bytes per record, recovery, MicroPython heap.

Every figure is measured in this run, on the disk that holds build/:
- appends/s with an fsync per record, against (a) a plain append + fsync of
  the same frame bytes and (b) SQLite in WAL mode, synchronous=FULL, one
  transaction per record, storing the same logical records (as JSON text, the
  usual way, and as the journal's own CBOR body in a BLOB);
- bytes per record on disk for each;
- recovery (Store.load) of 10,000 records on CPython and MicroPython, against
  SQLite reading the same 10,000 rows back;
- the smallest MicroPython heap (-X heapsize) that appends, and that replays
  10,000 records.
Targets: journal >= 0.8x plain append+fsync; journal >= SQLite's rate at no
more than half its bytes per record.
"""
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time

from firmware.store import journal as J
from firmware.store import records as R
from firmware.store.state import Store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "build", "bench-journal")
N_APPEND = 1500  # records per timed run (each with an fsync)
ROUNDS = 5
N_RECOVER = 10000
PREALLOC = 65536  # Journal(prealloc=...) for the preallocating variant


def meter_payload(connector, wh, minute):
    return {
        "connectorId": connector,
        "meterValue": [{
            "timestamp": "2024-05-01T%02d:%02d:00Z" % (10 + minute // 60 % 14, minute % 60),
            "sampledValue": [
                {"value": "%.1f" % wh, "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register",
                 "unit": "Wh", "location": "Outlet"},
                {"value": "%d" % (7000 + minute % 300), "context": "Sample.Periodic",
                 "measurand": "Power.Active.Import", "unit": "W"},
            ],
        }],
    }


def typical_records(n):
    """The records an agent writes: sessions of Start, metering every minute, Stop."""
    out = []
    seq = local = 0
    while len(out) < n:
        local += 1
        connector = 1 + local % 2
        wh = 1000.0 * local
        seq += 1
        out.append([R.K_TX_OPEN, local, connector, "04A2B3C4D5E6%02d" % (local % 100), int(wh), 1714557600 + local])
        start = {"connectorId": connector, "idTag": "04A2B3C4D5E6%02d" % (local % 100), "meterStart": int(wh),
                 "timestamp": "2024-05-01T10:00:00Z"}
        out.append([R.K_QUEUED, seq, R.action_code("StartTransaction"), R.pack_payload(start), local, 0])
        out.append([R.K_SENT, seq])
        out.append([R.K_TX_ID, local, 50000 + local])
        out.append([R.K_DELIVERED, seq])
        for minute in range(30):
            wh += 180.5
            seq += 1
            out.append([R.K_METER, local, wh, 1714557600 + 60 * minute])
            payload = R.pack_payload(meter_payload(connector, wh, minute))
            out.append([R.K_QUEUED, seq, R.action_code("MeterValues"), payload, local, 0])
            out.append([R.K_SENT, seq])
            out.append([R.K_DELIVERED, seq])
        seq += 1
        stop = {"idTag": start["idTag"], "meterStop": int(wh), "timestamp": "2024-05-01T10:30:00Z", "reason": "Local"}
        out.append([R.K_QUEUED, seq, R.action_code("StopTransaction"), R.pack_payload(stop), local, 0])
        out.append([R.K_TX_CLOSE, local])
        out.append([R.K_SENT, seq])
        out.append([R.K_DELIVERED, seq])
    return out[:n]


def as_json(rec):
    # The same logical record as JSON text, payloads as the OCPP JSON they are.
    fields = []
    for v in rec:
        fields.append(R.unpack_payload(v) if isinstance(v, bytes) else v)
    return json.dumps(fields, separators=(",", ":"))


def fresh(name):
    path = os.path.join(WORK, name)
    for p in (path, path + "-wal", path + "-shm", path + ".new"):
        if os.path.exists(p):
            os.remove(p)
    return path


def run_journal(recs, prealloc):
    path = fresh("journal")
    j = J.Journal(path, prealloc=prealloc)
    t0 = time.perf_counter()
    for r in recs:
        j.append(r)
    dt = time.perf_counter() - t0
    j.close()
    return len(recs) / dt, j.size() / len(recs)  # data bytes; preallocated zeros are reused


def run_plain(frames):
    path = fresh("plain")
    t0 = time.perf_counter()
    with open(path, "ab") as f:
        for data in frames:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    dt = time.perf_counter() - t0
    return len(frames) / dt, os.path.getsize(path) / len(frames)


def sqlite_open(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


def run_sqlite(rows, blob):
    path = fresh("sqlite-blob" if blob else "sqlite-json")
    db = sqlite_open(path)
    db.execute("CREATE TABLE journal (id INTEGER PRIMARY KEY, kind INTEGER, body %s)" % ("BLOB" if blob else "TEXT"))
    t0 = time.perf_counter()
    for kind, body in rows:
        db.execute("BEGIN")
        db.execute("INSERT INTO journal (kind, body) VALUES (?, ?)", (kind, body))
        db.execute("COMMIT")
    dt = time.perf_counter() - t0
    wal_peak = os.path.getsize(path + "-wal")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return len(rows) / dt, os.path.getsize(path) / len(rows), wal_peak


def recovery(recs):
    # Store.load of a 10,000-record journal (all messages answered: a small state).
    path = fresh("recover")
    j = J.Journal(path, sync=False)
    j.append_many(recs[:1])
    for r in recs[1:]:
        j.append(r, sync=False)
    j.close()
    times = []
    for _ in range(ROUNDS):
        s = Store(path, compact_bytes=1 << 30)
        t0 = time.perf_counter()
        problems = s.load()
        times.append(time.perf_counter() - t0)
        assert not problems
    sq = fresh("recover-sqlite")
    db = sqlite_open(sq)
    db.execute("CREATE TABLE journal (id INTEGER PRIMARY KEY, kind INTEGER, body TEXT)")
    db.execute("BEGIN")
    db.executemany("INSERT INTO journal (kind, body) VALUES (?, ?)", [(r[0], as_json(r)) for r in recs])
    db.execute("COMMIT")
    db.close()
    sq_times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        db = sqlite3.connect(sq)
        n = 0
        for _kind, body in db.execute("SELECT kind, body FROM journal ORDER BY id"):
            json.loads(body)
            n += 1
        db.close()
        sq_times.append(time.perf_counter() - t0)
    return path, min(times), min(sq_times)


MP_APPEND = """
import sys, gc, time
sys.path.insert(0, "%(lib)s")
from firmware.store.journal import Journal
from firmware.store import records as R
from firmware.store.state import Store
from firmware.store.txqueue import TxQueue
j = Journal(sys.argv[1])
n = int(sys.argv[2])
gc.collect()
t0 = time.ticks_us()
wh = 1000.0
for i in range(n // 4):
    wh += 180.5
    payload = {"connectorId": 1, "meterValue": [{"timestamp": "2024-05-01T10:00:00Z", "sampledValue": [
        {"value": str(wh), "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register",
         "unit": "Wh", "location": "Outlet"},
        {"value": str(7000 + i), "context": "Sample.Periodic", "measurand": "Power.Active.Import", "unit": "W"}]}]}
    j.append([5, 1, wh, 1714557600 + 60 * i])
    j.append([1, i + 1, 2, R.pack_payload(payload), 1, 0])
    j.append([10, i + 1])
    j.append([2, i + 1])
dt = time.ticks_diff(time.ticks_us(), t0)
j.close()
print(n * 1000000 // dt)
"""

MP_IMPORT = """
import sys
sys.path.insert(0, "%(lib)s")
from firmware.store.state import Store
from firmware.store.txqueue import TxQueue
import gc
gc.collect()
print(gc.mem_alloc())
"""

MP_RECOVER = """
import sys, gc, time
sys.path.insert(0, "%(lib)s")
from firmware.store.state import Store
from firmware.store.txqueue import TxQueue
gc.collect()
base = gc.mem_alloc()
s = Store(sys.argv[1], compact_bytes=1 << 30)
t0 = time.ticks_us()
problems = s.load()
dt = time.ticks_diff(time.ticks_us(), t0)
gc.collect()
print(dt, len(problems), gc.mem_alloc() - base)
"""


def tool(name):
    exe = os.path.join(os.path.dirname(sys.executable), name)
    return exe if os.path.exists(exe) else shutil.which(name)


MODULES = ("firmware/__init__", "firmware/compat", "firmware/bufops", "firmware/store/__init__", "firmware/store/cbor",
           "firmware/store/journal", "firmware/store/records", "firmware/store/state", "firmware/store/txqueue")


def compile_mpy():
    # The store modules as .mpy files, as a device loads them (no compiler run
    # on the heap); frozen into the firmware image they would not use the heap
    # for bytecode and constant tables at all.
    lib = os.path.join(WORK, "mpy")
    for name in MODULES:
        out = os.path.join(lib, name + ".mpy")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run([tool("mpy-cross"), "-o", out, os.path.join(ROOT, name + ".py")], check=True)
    # The viper byte loops go to a device as source (host_tools/flash.py).
    shutil.copy(os.path.join(ROOT, "firmware", "_native.py"), os.path.join(lib, "firmware", "_native.py"))
    return lib


LIB = None


def mp(script, *args, heap=None):
    cmd = [tool("micropython")] + (["-X", "heapsize=%d" % heap] if heap else [])
    cmd += ["-c", script % {"lib": LIB}] + list(args)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def min_heap(script, *args):
    # The smallest -X heapsize (to 1 KiB) at which the script runs to the end.
    lo, hi = 4096, 4 << 20
    if mp(script, *args, heap=hi).returncode != 0:
        return None
    while hi - lo > 1024:
        mid = (lo + hi) // 2
        if mp(script, *args, heap=mid).returncode == 0:
            hi = mid
        else:
            lo = mid
    return hi


def main():
    os.makedirs(WORK, exist_ok=True)
    recs = typical_records(N_APPEND)
    frames = [bytes(J.frame(r)) for r in recs]
    json_rows = [(r[0], as_json(r)) for r in recs]
    blob_rows = [(r[0], bytes(f[J.HEADER:])) for r, f in zip(recs, frames)]

    print("workload: %d records per run (sessions: Start, 30 x MeterValues with 2 samples, Stop),"
          " fsync per record, %d rounds interleaved, median; disk of %s" % (N_APPEND, ROUNDS, WORK))
    res = {"journal": [], "journal-pre": [], "plain": [], "sqlite-json": [], "sqlite-blob": []}
    size = {}
    wal = {}
    for _ in range(ROUNDS):
        rate, size["journal"] = run_journal(recs, 0)
        res["journal"].append(rate)
        rate, size["journal-pre"] = run_journal(recs, PREALLOC)
        res["journal-pre"].append(rate)
        rate, size["plain"] = run_plain(frames)
        res["plain"].append(rate)
        rate, size["sqlite-json"], wal["sqlite-json"] = run_sqlite(json_rows, False)
        res["sqlite-json"].append(rate)
        rate, size["sqlite-blob"], wal["sqlite-blob"] = run_sqlite(blob_rows, True)
        res["sqlite-blob"].append(rate)
    med = dict((k, statistics.median(v)) for k, v in res.items())
    print("%-34s %12s %14s" % ("", "appends/s", "bytes/record"))
    labels = (("journal", "journal, appending"), ("journal-pre", "journal, prealloc 64 KiB"),
              ("plain", "(a) plain append+fsync, same bytes"),
              ("sqlite-json", "(b) SQLite WAL FULL, JSON text"), ("sqlite-blob", "(b') SQLite WAL FULL, CBOR blob"))
    for key, label in labels:
        print("%-34s %12.0f %14.1f" % (label, med[key], size[key]))
    print("SQLite WAL file before the final checkpoint: %d KiB (JSON), %d KiB (blob)"
          % (wal["sqlite-json"] // 1024, wal["sqlite-blob"] // 1024))
    for key, label in (("journal", "appending"), ("journal-pre", "prealloc")):
        print("journal %s:" % label)
        print("  rate vs plain append+fsync:     %.2fx (target >= 0.80)" % (med[key] / med["plain"]))
        print("  rate vs SQLite JSON:            %.2fx (target >= 1.00)" % (med[key] / med["sqlite-json"]))
        print("  bytes/record vs SQLite JSON:    %.2fx (target <= 0.50)" % (size[key] / size["sqlite-json"]))
        print("  rate vs SQLite blob:            %.2fx" % (med[key] / med["sqlite-blob"]))
        print("  bytes/record vs SQLite blob:    %.2fx" % (size[key] / size["sqlite-blob"]))
    print("JSON text / packed CBOR record body, bytes: %.2fx"
          % (sum(len(b) for _, b in json_rows) / sum(len(b) for _, b in blob_rows)))

    big = typical_records(N_RECOVER)
    path, t_py, t_sq = recovery(big)
    print("recovery of %d records (%d KiB): CPython Store.load %.1f ms; SQLite SELECT+json.loads %.1f ms;"
          " ratio %.2fx" % (N_RECOVER, os.path.getsize(path) // 1024, t_py * 1000, t_sq * 1000, t_py / t_sq))

    global LIB
    LIB = compile_mpy()
    out = mp(MP_IMPORT)
    base_heap = min_heap(MP_IMPORT)
    print("MicroPython (unix port, 64-bit; store modules as .mpy): heap after importing them %s KiB;"
          " smallest heap that imports them %d KiB (the baseline below)" % (int(out.stdout) // 1024, base_heap // 1024))
    out = mp(MP_RECOVER, path)
    if out.returncode == 0:
        us, problems, retained = (int(x) for x in out.stdout.split())
        print("recovery of %d records on MicroPython (unix port): %.1f ms; ratio to CPython %.2fx;"
              " state kept on the heap %d bytes" % (N_RECOVER, us / 1000, us / 1e6 / t_py, retained))
        heap = min_heap(MP_RECOVER, path)
        print("MicroPython smallest heap to replay %d records: %d KiB (baseline + %d KiB)"
              % (N_RECOVER, heap // 1024, (heap - base_heap) // 1024))
    else:
        print("MicroPython recovery failed:", out.stderr.strip())

    out = mp(MP_APPEND, fresh("mp-append"), "1200")
    if out.returncode == 0:
        print("MicroPython appends/s with fsync (1200 records: meter, queued MeterValues, sent, delivered): %s;"
              " ratio to CPython journal %.2fx" % (out.stdout.strip(), int(out.stdout) / med["journal"]))
        heap = min_heap(MP_APPEND, fresh("mp-append"), "200")
        print("MicroPython smallest heap to pack and append records: %d KiB (baseline + %d KiB)"
              % (heap // 1024, (heap - base_heap) // 1024))
    else:
        print("MicroPython append failed:", out.stderr.strip())
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
