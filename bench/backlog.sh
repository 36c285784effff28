#!/usr/bin/env bash
# The first-day benchmark (issue 18): a dialer whose monitorDONE already holds
# a big backlog when recvault is installed. One run prints one table, each
# number beside the issue's target:
#
#  - intake: `run --once` over N waiting recordings (upload_after far ahead):
#    files/s into the ledger, CPU, peak RSS;
#  - a rescan of those N waiting files: the CPU of `run --once` again, with
#    nothing new (its start-up included);
#  - the daemon idle with the N recordings waiting: RSS once its first rescan
#    is done;
#  - archive: `run --once` over N due recordings into a local-directory store
#    (FLAC with its round-trip check, SHA-256, a FULL ledger commit before each
#    delete): recordings/s, CPU per recording, and what is left of it once
#    the codec alone and the local store alone (bench/codec.rs,
#    bench/store_floor.rs) are taken off, peak RSS; ledger bytes per
#    recording after it;
#  - a ledger of ROWS recordings (generated directly into SQLite: archived
#    recordings of 50 campaigns, 1 M callers, a year of calls): wall time and
#    peak RSS of `status`, `ls --since` (the last day), `find --phone`,
#    `retention plan --totals`, `ledger check` and `ledger backup`.
#
#   bench/backlog.sh                 (N=100000 BYTES=2048 ROWS=10000000)
#   N=20000 ROWS=1000000 bench/backlog.sh      (a quick run)
#   STRACE=1 bench/backlog.sh        (adds `strace -c -f` of the archive run)
#   RECVAULT=path/to/recvault ROWS=0 bench/backlog.sh   (another build; no big ledger)
#   E2E=0 bench/backlog.sh           (no comparison with rclone)
#   N=1000000 ARCHIVE=0 ROWS=0 E2E=0 bench/backlog.sh   (a million: intake, rescan, idle)
#
#  - end to end against `rclone move`: CALLS (30) real-sized calls
#    (scripts/sample-spool.py --hard) moved to the same Garage bucket by
#    `recvault run --once` (FLAC) and by `rclone move`, alternated, median of
#    ROUNDS (3), on loopback and through bench/delay_proxy.rs adding 50 ms
#    each way (a store 100 ms away); needs Garage's env
#    (RECVAULT_TEST_S3_*, e.g. from .work/garage/env) and rclone.
#
# The generated spool is cached in .work/bench/backlog/src-N-BYTES, the calls
# in .work/bench/backlog/calls-CALLS and the big ledger in
# .work/bench/backlog/ledger-ROWS; every site is a copy made of hard links.
# Other builds load a shared machine: the table ends with `uptime`. The last
# run's sites are removed when a run ends; a run begun within minutes of that
# is slowed by it (ext4's recently_deleted, below).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
n=${N:-100000}
bytes=${BYTES:-2048}
rows=${ROWS:-10000000}
work=$repo/.work/bench/backlog
target=${CARGO_TARGET_DIR:-$repo/target}
recvault=${RECVAULT:-$target/release/recvault}
mkdir -p "$work"
out=$work/result-$(date +%Y%m%d-%H%M%S).txt
rm -f "$work/strace-archive.txt"

for tool in /usr/bin/time sqlite3 python3; do
    command -v "$tool" >/dev/null || { echo "bench/backlog.sh needs $tool (scripts/install-deps.sh test)" >&2; exit 1; }
done
[[ -n ${RECVAULT:-} ]] || cargo build --release --quiet --bin recvault --example delay_proxy --example codec --example store_floor
e2e=${E2E:-1}
if ((e2e)) && { [[ -z ${RECVAULT_TEST_S3_ENDPOINT:-} ]] || ! command -v rclone >/dev/null; }; then
    echo "bench/backlog.sh: no Garage env (RECVAULT_TEST_S3_*) or no rclone: skipping the comparison with rclone" >&2
    e2e=0
fi

# --- the backlog (cached) -----------------------------------------------------
src=$work/src-$n-$bytes
if [[ ! -f $src/.complete ]]; then
    rm -rf "$src"
    echo "generating $n recordings of $bytes bytes in $src ..." >&2
    python3 bench/gen-backlog.py --out "$src/spool" --count "$n" --bytes "$bytes"
    touch "$src/.complete"
fi

# The last run's sites are moved aside now and removed when this run ends,
# after every measurement: ext4 without a journal (this machine's) checks
# inodes freed recently (recently_deleted) for each file it creates. Right
# after 40 k files were removed a create took 480 us of kernel time, not 25;
# a 100 k archive begun 65 s after the last run's 200 k objects were removed
# took 87 s and 1.26 ms per recording, against 62 s and 0.83 ms with nothing
# removed (perf, 2026-12-07): the bench's own clean-up, not recvault's work.
trash=$work/trash
mkdir -p "$trash"
aside() { # path: moved into the trash, removed when the run ends
    if [[ -e $1 ]]; then mv "$1" "$trash/$(basename "$1")-$RANDOM$RANDOM"; fi
}
aside "$work/waiting"
aside "$work/archive"
aside "$work/store-floor"

site() { # name upload_after: a fresh site whose spool is hard links to the backlog
    local d=$work/$1
    aside "$d" && mkdir -p "$d/store"
    cp -al "$src/spool" "$d/spool"
    # The links' writeback (a link count on every inode) is done before a
    # measurement, not during it: unsynced, a 100 k archive took 87-90 s.
    sync
    cat >"$d/recvault.toml" <<TOML
[spool]
dirs = ["$d/spool"]
settle = "0s"
upload_after = "$2"
staging = "$d/staging"
min_free = "none"

[store]
kind = "local"
path = "$d/store"

[ledger]
path = "$d/ledger.sqlite3"
backup_every = "0s"

[daemon]
log_level = "warn"
TOML
}

# Prints "wall_s cpu_s maxrss_kb" from /usr/bin/time -v output in $1.
measure() {
    awk -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, t, ":"); wall = (n == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2] }
        /User time/ { cpu += $2 } /System time/ { cpu += $2 }
        /Maximum resident set size/ { rss = $2 }
        END { printf "%.2f %.2f %d\n", wall, cpu, rss }' "$1"
}

timed() { # label cmd...: runs cmd under time -v, output discarded; sets wall cpu rss
    local t=$work/time-$1
    /usr/bin/time -v "${@:2}" >/dev/null 2>"$t" || true
    read -r wall cpu rss < <(measure "$t")
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# --- intake, rescan, idle -------------------------------------------------------
site waiting 3650d
cfg=$work/waiting/recvault.toml
timed intake "$recvault" --config "$cfg" run --once
intake_wall=$wall intake_cpu=$cpu intake_rss=$rss
timed rescan "$recvault" --config "$cfg" run --once
rescan_cpu=$cpu rescan_rss=$rss

"$recvault" --config "$cfg" run 2>/dev/null &
daemon=$!
# Its first rescan is done once its CPU time stops moving for 3 s.
last=-1 still=0
for _ in $(seq 1 600); do
    sleep 1
    now=$(cpu_ticks $daemon)
    if [[ $now == "$last" ]]; then still=$((still + 1)); else still=0; fi
    last=$now
    ((still >= 3)) && break
done
idle_rss=$(awk '/VmRSS/ { print $2 }' /proc/$daemon/status)
idle_hwm=$(awk '/VmHWM/ { print $2 }' /proc/$daemon/status)
kill -TERM $daemon && wait $daemon || true

# --- archive ----------------------------------------------------------------------
archive=${ARCHIVE:-1}
if ((archive)); then
    site archive 0s
    cfg=$work/archive/recvault.toml
    if [[ ${STRACE:-0} == 1 ]]; then
        strace -c -f -o "$work/strace-archive.txt" "$recvault" --config "$cfg" run --once >/dev/null 2>&1 || true
        site archive 0s
    fi
    timed archive "$recvault" --config "$cfg" run --once
    archive_wall=$wall archive_cpu=$cpu archive_rss=$rss
    left=$(find "$work/archive/spool" -maxdepth 1 -type f | wc -l)
    ledger_bytes=$(du -cb "$work/archive"/ledger.sqlite3* | tail -1 | cut -f1)
    # The floor under it: the codec alone over the same files, and the
    # local store alone putting and reading back as many objects of the
    # mean object size, 16 at a time (bench/codec.rs, bench/store_floor.rs).
    object_bytes=$(du -sb --exclude=.recvault-meta "$work/archive/store" | cut -f1)
    codec_cpu=$(find "$src/spool" -type f -print0 | xargs -0 "$target/release/examples/codec" flac 3 0 |
        awk '{ c += $4 } END { printf "%.2f", c }')
    aside "$work/store-floor"
    store_cpu=$("$target/release/examples/store_floor" "$work/store-floor" "$n" $((object_bytes / n)) 16 | cut -d' ' -f2)
fi

# --- a big ledger (cached) ---------------------------------------------------------
big=$work/ledger-$rows
if ((rows == 0)); then
    :
elif [[ ! -f $big/.complete ]]; then
    rm -rf "$big" && mkdir -p "$big/spool" "$big/store"
    cat >"$big/recvault.toml" <<TOML
[spool]
dirs = ["$big/spool"]
staging = "$big/staging"
min_free = "none"

[store]
kind = "local"
path = "$big/store"

[ledger]
path = "$big/ledger.sqlite3"

[retention]
default = "365d"
TOML
    "$recvault" --config "$big/recvault.toml" status >/dev/null
    echo "generating a ledger of $rows recordings in $big ..." >&2
    # The indexes of the two big tables are built after their rows (one
    # sort each, not 10 M random inserts into a dozen b-trees), and with no
    # journal: a scratch file, and a WAL of one 10 M-row transaction would
    # be bigger than the ledger.
    index_sql() { sqlite3 "$big/ledger.sqlite3" "SELECT $1 FROM sqlite_master WHERE type = 'index' \
        AND sql IS NOT NULL AND tbl_name IN ('recordings', 'object_keys')"; }
    indexes=$(index_sql "sql || ';'") drops=$(index_sql "'DROP INDEX ' || name || ';'")
    # A year of archived calls ending now, 50 campaigns, 1 M callers, 200 agents.
    sqlite3 "$big/ledger.sqlite3" >/dev/null <<SQL
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
BEGIN;
$drops
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $rows)
INSERT INTO recordings (id, path, name, dev, ino, size, mtime_ns, state, sha256, object_key,
    object_size, object_sha256, store_checksum, codec, first_seen, updated_at, verified_at,
    local_deleted_at, attributed, campaign, call_time, phone, agent, lead_id)
SELECT i, CAST('/var/spool/asterisk/monitorDONE/' || name || '-all.wav' AS BLOB),
    CAST(name || '-all.wav' AS BLOB), 2049, i, 960044, t * 1000000000, 'local_deleted',
    printf('%064x', i), 'host/' || name || '-all.flac', 400000, printf('%064x', i * 7),
    'c' || i, 'flac', t, t, t, t, 1, 'CAMP' || (i % 50), t, printf('555%07d', i % 1000000),
    'agent' || (i % 200), 'L' || i
FROM (SELECT i, unixepoch() - 31536000 + i * 31536000 / $rows AS t,
        strftime('%Y%m%d-%H%M%S', unixepoch() - 31536000 + i * 31536000 / $rows, 'unixepoch')
          || '_' || printf('555%07d', i % 1000000) AS name
      FROM n);
INSERT INTO object_keys (recording_id, key, state, chosen_at)
    SELECT id, object_key, 'written', first_seen FROM recordings;
UPDATE recording_ids SET next = $rows + 1;
$indexes
COMMIT;
PRAGMA journal_mode = WAL;
SQL
    touch "$big/.complete"
fi
bcfg=$big/recvault.toml
declare -A big_wall big_rss
((rows > 0)) && for cmd in status "ls --since $(date -d yesterday +%F)" "find --phone 5550004242" \
    "retention plan --totals" "ledger check" "ledger backup"; do
    # shellcheck disable=SC2086
    timed big "$recvault" --config "$bcfg" $cmd
    big_wall[$cmd]=$wall big_rss[$cmd]=$rss
done
big_bytes=$( ((rows > 0)) && du -cb "$big"/ledger.sqlite3* | tail -1 | cut -f1 || echo 0)

# --- end to end against rclone move (loopback, 100 ms away) -----------------------
calls=${CALLS:-30}
rounds=${ROUNDS:-3}
proxy_pid=
run_id=backlog-$(date +%s)
e2e_cleanup() {
    [[ -n $proxy_pid ]] && kill "$proxy_pid" 2>/dev/null || true
    ((e2e)) && RCLONE_CONFIG_GARAGE_ENDPOINT=$RECVAULT_TEST_S3_ENDPOINT rclone purge \
        "garage:$RECVAULT_TEST_S3_BUCKET/$run_id" 2>/dev/null || true
}
trap e2e_cleanup EXIT

s3_site() { # name endpoint: a fresh site holding a copy of the calls, archiving to Garage
    local d=$work/$1
    rm -rf "$d" && mkdir -p "$d/spool"
    cp "$calls_src"/*.wav "$d/spool/"
    cat >"$d/recvault.toml" <<TOML
[spool]
dirs = ["$d/spool"]
settle = "0s"
upload_after = "0s"
staging = "$d/staging"
min_free = "none"

[store]
kind = "s3"
endpoint = "$2"
region = "$RECVAULT_TEST_S3_REGION"
bucket = "$RECVAULT_TEST_S3_BUCKET"
path_style = true
prefix = "$run_id/$1/"

[ledger]
path = "$d/ledger.sqlite3"
backup_every = "0s"

[daemon]
log_level = "warn"
TOML
    sync
}

race_recvault() { # name endpoint: "wall cpu rss" of recvault run --once
    s3_site "$1" "$2"
    /usr/bin/time -v "$recvault" --config "$work/$1/recvault.toml" run --once >/dev/null 2>"$work/time-$1"
    local left
    left=$(find "$work/$1/spool" -maxdepth 1 -type f | wc -l)
    ((left == 0)) || { echo "recvault left $left files in $work/$1/spool" >&2; exit 1; }
    measure "$work/time-$1"
}

race_rclone() { # name endpoint: "wall cpu rss" of rclone move
    s3_site "$1" "$2"
    RCLONE_CONFIG_GARAGE_ENDPOINT=$2 /usr/bin/time -v \
        rclone move "$work/$1/spool" "garage:$RECVAULT_TEST_S3_BUCKET/$run_id/$1/" 2>"$work/time-$1" >/dev/null
    measure "$work/time-$1"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

declare -A race
if ((e2e)); then
    calls_src=$work/calls-$calls
    if [[ ! -f $calls_src/.complete ]]; then
        rm -rf "$calls_src"
        python3 scripts/sample-spool.py --quiet --hard --out "$calls_src" --count "$calls" \
            --min-seconds 30 --max-seconds 360 --seed 42 --end-date 2026-03-01
        touch "$calls_src/.complete"
    fi
    export AWS_ACCESS_KEY_ID=$RECVAULT_TEST_S3_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$RECVAULT_TEST_S3_SECRET_ACCESS_KEY
    unset AWS_CA_BUNDLE # rclone may not load the sandbox's bundle
    export RCLONE_CONFIG_GARAGE_TYPE=s3 RCLONE_CONFIG_GARAGE_PROVIDER=Other
    export RCLONE_CONFIG_GARAGE_REGION=$RECVAULT_TEST_S3_REGION RCLONE_CONFIG_GARAGE_FORCE_PATH_STYLE=true
    export RCLONE_CONFIG_GARAGE_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_GARAGE_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
    for latency in 0 50; do
        endpoint=$RECVAULT_TEST_S3_ENDPOINT
        if ((latency > 0)); then
            "$target/release/examples/delay_proxy" "${RECVAULT_TEST_S3_ENDPOINT#http://}" "$latency" >"$work/proxy.out" &
            proxy_pid=$!
            sleep 1
            endpoint=http://$(awk '{ print $2 }' "$work/proxy.out")
        fi
        : >"$work/recvault.runs" && : >"$work/rclone.runs"
        for round in $(seq "$rounds"); do
            race_recvault "race-recvault-$latency-$round" "$endpoint" >>"$work/recvault.runs"
            race_rclone "race-rclone-$latency-$round" "$endpoint" >>"$work/rclone.runs"
        done
        for tool in recvault rclone; do
            race[$tool-$latency-wall]=$(awk '{ print $1 }' "$work/$tool.runs" | median)
            race[$tool-$latency-cpu]=$(awk '{ print $2 }' "$work/$tool.runs" | median)
        done
        rm -rf "$work"/race-*
        if [[ -n $proxy_pid ]]; then
            kill "$proxy_pid" && wait "$proxy_pid" 2>/dev/null || true
            proxy_pid=
        fi
    done
fi

# --- the table ------------------------------------------------------------------------
mb() { awk -v k="$1" 'BEGIN { printf "%.0f MB", k / 1024 }'; }
row() { printf '| %s | %s | %s |\n' "$1" "$2" "$3" | tee -a "$out"; }
{
    echo "recvault first-day benchmark, $(date -u +%FT%TZ), $(git rev-parse --short HEAD)"
    echo "backlog: $n recordings of $bytes bytes in one directory; big ledger: $rows rows"
    echo
} | tee "$out"
row "what" "measured" "target"
row "---" "---" "---"
row "intake, first sight of $n files (run --once, nothing due)" \
    "$(awk -v n="$n" -v w="$intake_wall" 'BEGIN { printf "%.0f files/s", n / w }') ($intake_wall s, $intake_cpu CPU-s)" "≥ 10,000 files/s"
row "intake, peak RSS" "$(mb "$intake_rss")" "≤ 64 MB"
row "rescan of $n waiting files (run --once again, start-up included)" "$rescan_cpu CPU-s" "≤ 0.2 CPU-s per 100 k"
row "daemon with $n recordings waiting, RSS after its first rescan" "$(mb "$idle_rss") (peak $(mb "$idle_hwm"))" "≤ 30 MB"
((archive)) && row "archive rate (run --once, local store, FLAC)" \
    "$(awk -v n="$n" -v w="$archive_wall" 'BEGIN { printf "%.0f recordings/s", n / w }') ($archive_wall s, $left left)" "≥ 2,000/s"
((archive)) && row "archive CPU per recording (codec and store included)" \
    "$(awk -v n="$n" -v c="$archive_cpu" 'BEGIN { printf "%.2f ms", c * 1000 / n }')" "(measured)"
((archive)) && row "archive CPU per recording beyond codec and store" \
    "$(awk -v n="$n" -v c="$archive_cpu" -v k="$codec_cpu" -v s="$store_cpu" 'BEGIN { printf "%.2f ms (codec %.2f, store %.2f)", (c - k - s) * 1000 / n, k * 1000 / n, s * 1000 / n }')" "≤ 0.5 ms"
((archive)) && row "archive, peak RSS" "$(mb "$archive_rss")" "≤ 64 MB"
((archive)) && row "ledger bytes per recording (after archiving)" "$((ledger_bytes / n)) B" "(measured)"
((rows > 0)) && for cmd in status "ls --since $(date -d yesterday +%F)" "find --phone 5550004242" \
    "retention plan --totals" "ledger check" "ledger backup"; do
    row "\`$cmd\` on $rows rows" "${big_wall[$cmd]} s, $(mb "${big_rss[$cmd]}")" "seconds, bounded memory"
done
((rows > 0)) && row "big ledger bytes per recording (no events)" "$((big_bytes / rows)) B" "(measured)"
if ((e2e)); then
    for latency in 0 50; do
        label="loopback" target_ratio="≥ 1.0×"
        ((latency > 0)) && label="a store 100 ms away" target_ratio="≥ 2.0×"
        row "end to end vs \`rclone move\`, $calls calls, Garage, $label (median of $rounds, alternated)" \
            "$(awk -v r="${race[recvault-$latency-wall]}" -v c="${race[rclone-$latency-wall]}" \
                -v rc="${race[recvault-$latency-cpu]}" -v cc="${race[rclone-$latency-cpu]}" \
                'BEGIN { printf "%.2f× (%.2f s vs %.2f s; CPU %.2f s vs %.2f s)", c / r, r, c, rc, cc }')" \
            "$target_ratio"
    done
fi
echo | tee -a "$out"
uptime | tee -a "$out"
if [[ -f $work/strace-archive.txt ]]; then
    echo | tee -a "$out"
    head -25 "$work/strace-archive.txt" | tee -a "$out"
fi
echo "saved: $out" >&2
echo "removing the last run's sites (moved aside at the start) ..." >&2
rm -rf "$trash"
