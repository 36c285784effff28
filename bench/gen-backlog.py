#!/usr/bin/env python3
"""Generate the first day's backlog: N small VICIdial-style PCM WAVs in one directory.

Each file is an 8 kHz 16-bit mono PCM WAV of about --bytes bytes (2 KB by
default: a header and ~1,000 samples of low noise, different in every file so
no two objects are the same), named by VICIdial's default template
FULLDATE_CUSTPHONE plus "-all" (20260301-101500_5551234567-all.wav), its mtime
set to the time in its name. Calls are spread over the --days before
--end-date, oldest first. Deterministic for a given --seed.

  bench/gen-backlog.py --out DIR --count 100000 [--bytes 2048] [--days 365]

Writes about 20,000 files/s on one core; memory does not grow with --count.
"""

import argparse
import datetime as dt
import os
import random
import struct
import sys

RATE = 8000


def wav_header(frames):
    data = frames * 2
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data)
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--bytes", type=int, default=2048)
    p.add_argument("--days", type=float, default=365.0)
    p.add_argument("--end-date", default="2026-03-01")
    p.add_argument("--seed", type=int, default=18)
    p.add_argument("--prefix", default="", help="put before each name (a second batch)")
    a = p.parse_args()

    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    frames = max(1, (a.bytes - 44) // 2)
    header = wav_header(frames)
    # A pool of noise bodies; each file gets one with its index stamped into
    # the first samples, so every file differs and generation stays cheap.
    pool = [
        struct.pack("<%dh" % frames, *(rng.randint(-300, 300) for _ in range(frames)))
        for _ in range(64)
    ]
    end = dt.datetime.fromisoformat(a.end_date).timestamp()
    span = a.days * 86400.0
    step = span / max(1, a.count)
    start = end - span
    for i in range(a.count):
        t = int(start + i * step)
        name = "%s%s_%010d-all.wav" % (
            a.prefix,
            dt.datetime.fromtimestamp(t).strftime("%Y%m%d-%H%M%S"),
            5550000000 + (i * 7919) % 10000000,
        )
        path = os.path.join(a.out, name)
        body = struct.pack("<Q", i) + pool[i % 64][8:]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, header + body)
        finally:
            os.close(fd)
        os.utime(path, (t, t))
        if a.count >= 100000 and i and i % 100000 == 0:
            print("%d files" % i, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
