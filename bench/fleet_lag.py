"""bench/fleet_lag.py SPOOL LEDGER DATABASE N: the fleet catalog's lag.

Drops N one-second recordings into SPOOL, one every 0.5 s, while a running
daemon (host `bench`) archives them; every 100 ms reads which are
local_deleted in its LEDGER and in the catalog of DATABASE (MariaDB on
127.0.0.1, root). Prints, over the N, how long after its ledger said so the
catalog did: p50, p95, max (the resolution is the 100 ms poll).
"""

import os
import random
import sqlite3
import struct
import subprocess
import sys
import time


def wav(seed):
    rnd = random.Random(seed)
    data = rnd.randbytes(16000)
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    return b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", len(data)) + data


def catalog(db):
    out = subprocess.run(
        ["mysql", "-h127.0.0.1", "-uroot", "-N", db, "-e",
         "SELECT name FROM recvault_recordings WHERE host = 'bench' AND state = 'local_deleted'"],
        capture_output=True, text=True, check=True).stdout
    return out.split()


def ledger(path):
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        rows = conn.execute("SELECT CAST(name AS TEXT) FROM recordings WHERE state = 'local_deleted'").fetchall()
        conn.close()
        return [r[0] for r in rows]
    except sqlite3.OperationalError:
        return []


def main():
    spool, ledger_path, db, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    names = []
    in_ledger, in_catalog = {}, {}
    start = time.monotonic()
    deadline = start + 60 + n
    while len(in_catalog) < n and time.monotonic() < deadline:
        now = time.monotonic()
        if len(names) < n and now - start >= len(names) * 0.5:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            name = f"{stamp}_{5559000000 + len(names)}-all.wav"
            tmp = os.path.join(spool, f".{name}.tmp")
            with open(tmp, "wb") as f:
                f.write(wav(len(names)))
            os.rename(tmp, os.path.join(spool, name))
            names.append(name)
        for name in ledger(ledger_path):
            in_ledger.setdefault(name, now)
        for name in catalog(db):
            if name in in_ledger:
                in_catalog.setdefault(name, now)
        time.sleep(0.1)
    lags = sorted(int((in_catalog[k] - in_ledger[k]) * 1000) for k in in_catalog)
    if len(lags) < n:
        print(f"only {len(lags)} of {n} reached the catalog")
    if lags:
        p = lambda q: lags[min(len(lags) - 1, int(len(lags) * q + 0.999) - 1)]
        print(f"catalog lag over {len(lags)} recordings: p50 {p(0.5)} ms, p95 {p(0.95)} ms, max {lags[-1]} ms")


main()
