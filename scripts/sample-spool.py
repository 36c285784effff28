#!/usr/bin/env python3
"""Generate a VICIdial-style spool of call recordings for tests, demos and benchmarks.

Each recording is an 8 kHz 16-bit mono PCM WAV (what Asterisk's MixMonitor
writes) made of real speech prompts from Debian's asterisk-core-sounds-en-wav
package or Asterisk's own sounds folder (found wherever either put them),
alternating between two "speakers" with pauses of low background noise, so
that compression ratios look like real calls rather than silence.

File names follow VICIdial's default template FULLDATE_CUSTPHONE plus the
"-all" suffix of mixed recordings (20260301-101500_5551234567-all.wav), and each
file's mtime is set to the time in its name. Output is deterministic for a given
--seed and --end-date. Files are written in chunks; memory use does not grow
with the recording length.

--hard makes calls harder to compress, as real ones are: each call has two
of a dozen voices (the prompts resampled to other pitches and speeds), its own
speaking levels, line noise under the speech as well as in the pauses, some
mains hum, and now and then a stretch of hold music (Debian's
asterisk-moh-opsound-wav). --format writes the same calls as mu-law or A-law
WAV, or as stereo (one party per channel, as MixMonitor can). --moh writes
recordings of hold music alone. These use Python's audioop (3.12 and older;
on 3.13+ `pip install audioop-lts`).
"""

import argparse
import datetime as dt
import glob
import math
import os
import random
import struct
import subprocess
import sys
import time
import wave
from array import array

SOUNDS_PACKAGE = "asterisk-core-sounds-en-wav"
# Debian's packages install under /usr/share; Asterisk built from source (as on
# ViciBox and most VICIdial installs) uses /var/lib.
SOUNDS_ROOTS = ("/usr/share/asterisk/sounds", "/var/lib/asterisk/sounds")
RATE = 8000
SAMPLE_WIDTH = 2
CHUNK_FRAMES = 64 * 1024  # ~128 KiB of PCM per write
SUBDIRS = ("ORIG", "MP3", "GSM")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="output directory (created if missing); required")
    p.add_argument("--count", type=int, default=20, help="number of recordings")
    p.add_argument("--min-seconds", type=float, default=60.0)
    p.add_argument("--max-seconds", type=float, default=240.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--end-date",
        default=None,
        help="calls fall in the ~30 days before this date (YYYY-MM-DD, default today); "
        "fix it for output that is identical from day to day",
    )
    p.add_argument("--days", type=int, default=30, help="how many days back calls go")
    p.add_argument(
        "--subdirs",
        action="store_true",
        help="also fill ORIG/ MP3/ GSM/ sub-folders, with a few names repeated across folders",
    )
    p.add_argument(
        "--sounds",
        default=None,
        help="directory of speech prompts (default: found where Asterisk or %s put them)"
        % SOUNDS_PACKAGE,
    )
    p.add_argument(
        "--print-sounds",
        action="store_true",
        help="print the directory of speech prompts that would be used and exit "
        "(exit status 2 if there is none)",
    )
    p.add_argument("--quiet", action="store_true")
    p.add_argument(
        "--hard",
        action="store_true",
        help="calls as hard to compress as real ones: many voices and levels, "
        "line noise under speech, hum, hold music",
    )
    p.add_argument(
        "--format",
        choices=("pcm", "ulaw", "alaw", "stereo"),
        default="pcm",
        help="sample format of --hard calls (default pcm: 16-bit mono)",
    )
    p.add_argument("--moh", action="store_true", help="recordings of hold music only (implies --hard)")
    a = p.parse_args()
    if a.moh or a.format != "pcm":
        a.hard = True
    if a.out is None and not a.print_sounds:
        p.error("the following arguments are required: --out")
    if a.count < 0 or a.min_seconds <= 0 or a.max_seconds < a.min_seconds:
        p.error("need --count >= 0 and 0 < --min-seconds <= --max-seconds")
    return a


def package_dir():
    """The folder holding the sounds package's prompts, as dpkg lists them, or None."""
    try:
        listed = subprocess.run(
            ["dpkg-query", "-L", SOUNDS_PACKAGE], capture_output=True, text=True, check=False
        ).stdout
    except OSError:  # not a Debian system
        return None
    wav_dirs = {os.path.dirname(f) for f in listed.splitlines() if f.endswith(".wav")}
    return os.path.commonpath(sorted(wav_dirs)) if wav_dirs else None


def candidate_dirs():
    """Folders that may hold speech prompts, best first, each once.

    The `en` link exists only where Asterisk itself created it; Debian's package
    installs en_US_f_Allison/, so ask dpkg, then try any English, then any
    language (the prompts only need to sound like speech)."""
    found = [os.path.join(root, "en") for root in SOUNDS_ROOTS]
    found.append(package_dir())
    for pattern in ("en*", "*"):
        for root in SOUNDS_ROOTS:
            found.extend(sorted(glob.glob(os.path.join(root, pattern))))
    seen = set()
    for d in found:
        if d and os.path.isdir(d) and os.path.realpath(d) not in seen:
            seen.add(os.path.realpath(d))
            yield d


def prompt_paths(sounds_dir):
    """Every .wav under sounds_dir, in a stable order (the same under any link to it)."""
    paths = []
    for root, _dirs, files in os.walk(sounds_dir, followlinks=True):
        paths.extend(os.path.join(root, f) for f in files if f.endswith(".wav"))
    return sorted(paths, key=lambda p: os.path.relpath(p, sounds_dir))


def read_prompt(path):
    """A prompt's PCM if it is 8 kHz/16-bit/mono and at least 0.25 s long, else None."""
    try:
        with wave.open(path, "rb") as w:
            if (w.getframerate(), w.getsampwidth(), w.getnchannels()) != (RATE, SAMPLE_WIDTH, 1):
                return None
            pcm = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError):
        return None
    return pcm if len(pcm) >= RATE * SAMPLE_WIDTH // 4 else None


def find_sounds(explicit):
    """The prompt folder: `explicit` if given, else the first candidate with a usable prompt."""
    if explicit is not None:
        return explicit
    for d in candidate_dirs():
        if any(read_prompt(p) is not None for p in prompt_paths(d)):
            return d
    return None


def load_clips(sounds_dir):
    """Read every usable prompt under sounds_dir, in a stable order, as raw PCM bytes."""
    return [pcm for pcm in map(read_prompt, prompt_paths(sounds_dir)) if pcm is not None]


def scaled(pcm, gain):
    """The same PCM at another volume: the second party of a call is quieter."""
    a = array("h", pcm)
    if sys.byteorder == "big":
        a.byteswap()
    a = array("h", (int(s * gain) for s in a))
    if sys.byteorder == "big":
        a.byteswap()
    return a.tobytes()


def noise_bed(rng, seconds):
    """Low line noise used for pauses; a real call is never digital silence."""
    n = int(seconds * RATE)
    a = array("h", (int(rng.gauss(0, 40)) for _ in range(n)))
    if sys.byteorder == "big":
        a.byteswap()
    return a.tobytes()


def phone(rng):
    """A plausible 10-digit NANP number: area code and exchange never start with 0/1."""
    return "%d%d%d%d%d%d%04d" % (
        rng.randint(2, 9), rng.randint(0, 8), rng.randint(0, 9),
        rng.randint(2, 9), rng.randint(0, 9), rng.randint(0, 9),
        rng.randint(0, 9999),
    )


def call_time(rng, end, days):
    """A time during business hours, mostly on weekdays, within `days` before `end`."""
    while True:
        day = end - dt.timedelta(days=rng.randint(1, days))
        if day.weekday() >= 5 and rng.random() < 0.8:
            continue
        secs = rng.randint(8 * 3600, 20 * 3600 - 1)
        return dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=secs)


def plan(rng, args, end):
    """(relative path, call time, frames) for every recording."""
    used = set()
    entries = []
    for _ in range(args.count):
        folder = ""
        if args.subdirs and rng.random() < 0.3:
            folder = rng.choice(SUBDIRS)
        while True:
            when = call_time(rng, end, args.days)
            name = "%s_%s-all.wav" % (when.strftime("%Y%m%d-%H%M%S"), phone(rng))
            if name not in used:
                break
        used.add(name)
        frames = int(rng.uniform(args.min_seconds, args.max_seconds) * RATE)
        entries.append([folder, name, when, frames])
    if args.subdirs and len(entries) >= 2:
        # VICIdial names are not unique: give a few recordings the name of a
        # recording in another folder (different content, same file name).
        taken = {(e[0], e[1]) for e in entries}
        pairs = rng.sample(range(len(entries)), min(len(entries), 2 * max(1, len(entries) // 50)))
        for src, dst in zip(pairs[0::2], pairs[1::2]):
            folders = [f for f in ("",) + SUBDIRS if (f, entries[src][1]) not in taken]
            if not folders:
                continue
            taken.discard((entries[dst][0], entries[dst][1]))
            entries[dst][0] = rng.choice(folders)
            entries[dst][1] = entries[src][1]
            entries[dst][2] = entries[src][2]
            taken.add((entries[dst][0], entries[dst][1]))
    return entries


def pieces(rng, frames, voices, noise):
    """Yield PCM byte strings adding up to exactly `frames` frames."""
    left = frames * SAMPLE_WIDTH
    speaker = 0
    while left > 0:
        turn = []
        for _ in range(rng.randint(1, 4)):
            turn.append(rng.choice(voices[speaker]))
            turn.append(pause(rng, noise, 0.05, 0.35))
        turn.append(pause(rng, noise, 0.3, 2.0))
        for part in turn:
            part = part[:left]
            left -= len(part)
            yield part
            if left <= 0:
                return
        speaker ^= 1


def pause(rng, noise, lo, hi):
    n = int(rng.uniform(lo, hi) * RATE) * SAMPLE_WIDTH
    start = rng.randrange(0, (len(noise) - n) // SAMPLE_WIDTH) * SAMPLE_WIDTH
    return noise[start:start + n]


def write_wav(path, frames, parts):
    tmp = path + ".tmp"
    with wave.open(tmp, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(SAMPLE_WIDTH)
        w.setframerate(RATE)
        w.setnframes(frames)  # header is right from the start: no patching pass
        buf, size = [], 0
        for p in parts:
            buf.append(p)
            size += len(p)
            if size >= CHUNK_FRAMES * SAMPLE_WIDTH:
                w.writeframesraw(b"".join(buf))
                buf, size = [], 0
        if buf:
            w.writeframesraw(b"".join(buf))
    os.replace(tmp, path)


MOH_DIRS = ("/usr/share/asterisk/moh", "/var/lib/asterisk/moh")


def load_audioop():
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import audioop
        return audioop
    except ImportError:
        sys.exit("sample-spool: --hard needs audioop (Python 3.13+: pip install audioop-lts)")


class Hard:
    """Calls made harder to compress; see the module doc."""

    VOICES = 12

    def __init__(self, rng, clips, args):
        self.ao = load_audioop()
        self.rng, self.args = rng, args
        self.voices = [self.voice(clips) for _ in range(self.VOICES)]
        self.moh = [m for m in map(read_prompt, self.moh_paths()) if m] or [b"\0\0" * RATE]
        # One 50 Hz and one 60 Hz period pattern, a whole number of periods per second.
        self.hum = {
            f: array("h", (int(1000 * math.sin(2 * math.pi * f * i / RATE)) for i in range(RATE))).tobytes()
            for f in (50, 60)
        }

    @staticmethod
    def moh_paths():
        for d in MOH_DIRS:
            if os.path.isdir(d):
                return sorted(glob.glob(os.path.join(d, "*.wav")))
        return []

    def voice(self, clips):
        """A speaker: 60 prompts resampled by one factor (pitch and pace change together)."""
        factor = self.rng.uniform(0.8, 1.25)
        out_rate = int(RATE * factor)
        picked = [self.rng.choice(clips) for _ in range(60)]
        return [self.ao.ratecv(c, SAMPLE_WIDTH, 1, RATE, out_rate, None)[0] for c in picked]

    def noise(self, n, sigma):
        """n samples of line noise (triangular, never repeating: zstd must not find copies)."""
        k = sigma / 26755.0
        a = self.ao.mul(self.rng.randbytes(2 * n), SAMPLE_WIDTH, k)
        b = self.ao.mul(self.rng.randbytes(2 * n), SAMPLE_WIDTH, k)
        return self.ao.add(a, b, SAMPLE_WIDTH)

    def line(self, n):
        """What the line adds to a party's n samples: noise of a level drawn per call, and hum."""
        sigma = math.exp(self.rng.uniform(math.log(6), math.log(90)))
        out = self.noise(n, sigma)
        if self.rng.random() < 0.5:
            hum = self.hum[self.rng.choice((50, 60))]
            hum = self.ao.mul(hum, SAMPLE_WIDTH, self.rng.uniform(0.02, 0.12))
            reps = hum * (n * SAMPLE_WIDTH // len(hum) + 1)
            out = self.ao.add(out, reps[: n * SAMPLE_WIDTH], SAMPLE_WIDTH)
        return out

    def tracks(self, frames):
        """The two parties' signals (agent, customer), each frames long, silent while the other talks."""
        rng, ao = self.rng, self.ao
        voices = rng.sample(self.voices, 2)
        gains = (rng.uniform(0.45, 1.1), rng.uniform(0.12, 0.8))
        parts = ([], [])
        left = frames * SAMPLE_WIDTH
        speaker = rng.randrange(2)
        while left > 0:
            if rng.random() < 0.04:
                # The customer is put on hold: music, on the agent's side.
                moh = rng.choice(self.moh)
                n = int(rng.uniform(15, 90) * RATE) * SAMPLE_WIDTH
                start = rng.randrange(0, max(2, len(moh) - n) // 2) * 2
                seg = ao.mul(moh[start : start + n], SAMPLE_WIDTH, rng.uniform(0.3, 0.8))
            else:
                seg = b"".join(
                    ao.mul(rng.choice(voices[speaker]), SAMPLE_WIDTH, gains[speaker])
                    + b"\0\0" * int(rng.uniform(0.05, 0.4) * RATE)
                    for _ in range(rng.randint(1, 5))
                )
            seg = seg[:left]
            parts[speaker].append(seg)
            parts[1 - speaker].append(b"\0" * len(seg))
            left -= len(seg)
            pause = b"\0\0" * int(rng.uniform(0.2, 2.5) * RATE)
            pause = pause[:left]
            for p in parts:
                p.append(pause)
            left -= len(pause)
            speaker ^= 1
        return [ao.add(b"".join(p), self.line(frames), SAMPLE_WIDTH) for p in parts]

    def moh_only(self, frames):
        """Hold music looped to frames, with line noise."""
        moh = self.rng.choice(self.moh)
        music = (moh * (frames * SAMPLE_WIDTH // len(moh) + 1))[: frames * SAMPLE_WIDTH]
        music = self.ao.mul(music, SAMPLE_WIDTH, self.rng.uniform(0.4, 0.9))
        return self.ao.add(music, self.line(frames), SAMPLE_WIDTH)

    def write(self, path, frames):
        ao, fmt = self.ao, self.args.format
        if self.args.moh:
            mono = self.moh_only(frames)
        else:
            agent, customer = self.tracks(frames)
            if fmt == "stereo":
                stereo = ao.add(
                    ao.tostereo(agent, SAMPLE_WIDTH, 1, 0),
                    ao.tostereo(customer, SAMPLE_WIDTH, 0, 1),
                    SAMPLE_WIDTH,
                )
                return write_raw_wav(path, 1, 2, 16, stereo)
            mono = ao.add(agent, customer, SAMPLE_WIDTH)
        if fmt == "ulaw":
            return write_raw_wav(path, 7, 1, 8, ao.lin2ulaw(mono, SAMPLE_WIDTH))
        if fmt == "alaw":
            return write_raw_wav(path, 6, 1, 8, ao.lin2alaw(mono, SAMPLE_WIDTH))
        return write_raw_wav(path, 1, 1, 16, mono)


def write_raw_wav(path, tag, channels, bits, data):
    """A WAV as Asterisk (PCM: 44-byte header) or sox (G.711: fmt of 18 bytes and a fact chunk) writes it."""
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, RATE, RATE * align, align, bits)
    chunks = []
    if tag != 1:
        fmt += b"\0\0"
        chunks.append(b"fact" + struct.pack("<II", 4, len(data) // align))
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"".join(chunks)
    body += b"data" + struct.pack("<I", len(data))
    pad = b"\0" if len(data) % 2 else b""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body) + len(data) + len(pad)) + body)
        f.write(data)
        f.write(pad)
    os.replace(tmp, path)


def main():
    args = parse_args()
    sounds = find_sounds(args.sounds)
    clips = load_clips(sounds) if sounds else []
    if not clips:
        where = sounds or "%s/*/ (or dpkg -L %s)" % (" or ".join(SOUNDS_ROOTS), SOUNDS_PACKAGE)
        print(
            "sample-spool: no 8 kHz 16-bit mono WAV speech prompts in %s\n"
            "install them with: apt-get install -y %s, or pass --sounds DIR"
            % (where, SOUNDS_PACKAGE),
            file=sys.stderr,
        )
        return 2
    if args.print_sounds:
        print(sounds)
        return 0

    end = dt.date.fromisoformat(args.end_date) if args.end_date else dt.date.today()
    rng = random.Random(args.seed)
    # Two parties: the agent at full volume, the customer quieter, each with
    # their own subset of prompts so that turns sound like different people.
    order = list(range(len(clips)))
    rng.shuffle(order)
    half = len(order) // 2 or 1
    agent = [clips[i] for i in order[:half]]
    customer = [scaled(clips[i], 0.55) for i in order[half:][:80]] or agent
    noise = noise_bed(rng, 3.0)
    entries = plan(rng, args, end)

    started = time.monotonic()
    total = 0
    hard = Hard(rng, clips, args) if args.hard else None
    for folder, name, when, frames in entries:
        d = os.path.join(args.out, folder)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, name)
        if hard:
            hard.write(path, frames)
        else:
            write_wav(path, frames, pieces(rng, frames, (agent, customer), noise))
        t = time.mktime(when.timetuple())  # VICIdial names carry server-local time
        os.utime(path, (t, t))
        total += os.path.getsize(path)
    if args.subdirs:
        for folder in SUBDIRS:
            os.makedirs(os.path.join(args.out, folder), exist_ok=True)

    if not args.quiet:
        print(
            "sample-spool: wrote %d recordings, %d bytes (%.1f MiB) to %s in %.2f s"
            % (len(entries), total, total / 1048576, args.out, time.monotonic() - started)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
