#!/usr/bin/env bash
# Playback benchmark: the daemon's listen links against Garage on loopback.
#
#   bench/playback.sh
#
# 1. First byte of a 10-minute recording archived in Garage (zstd): p50/p95
#    of 100 requests, cold (cache_size = "0": each request streams the object
#    from the store and decodes it again) and warm (the playback cache).
#    Target: p95 <= 100 ms.
# 2. 50 concurrent playbacks of 50 different 10-minute recordings (each
#    client reading at 256 KiB/s) while the pipeline archives a batch of
#    recordings: the daemon's peak RSS, and the batch's archive time against
#    the same batch without playbacks (runs alternated, medians of 3).
#    Targets: RSS <= 96 MB, archiving slowed by at most 20 %.
# Prints `uptime` with the numbers: other builds load a shared machine.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
work=$repo/.work/bench-playback
target=${CARGO_TARGET_DIR:-$repo/target}
recvault=$target/release/recvault
runs=${RUNS:-3}

scripts/install-deps.sh test
# A Garage already running (its env exported, as scripts/test.sh does) is
# used as is; else this repository's own is started.
if [[ -z ${RECVAULT_TEST_S3_ENDPOINT:-} ]]; then
    scripts/garage.sh start >/dev/null
    # shellcheck disable=SC1091
    source .work/garage/env
fi
cargo build --release --quiet --bin recvault

mkdir -p "$work"
corpus() { # name count seconds seed
    local dir=$work/$1
    if [[ ! -f $dir/.complete || $(find "$dir" -name "*.wav" | wc -l) -ne $2 ]]; then
        rm -rf "$dir"
        python3 scripts/sample-spool.py --count "$2" --min-seconds "$3" --max-seconds "$3" \
            --seed "$4" --out "$dir" --quiet
        touch "$dir/.complete"
    fi
}
corpus long 50 600 81
corpus batch 120 120 82

run_id=$(date +%s)
spool=$work/spool
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
head -c 48 /dev/urandom | base64 -w 0 >"$work/link.key"
export AWS_ACCESS_KEY_ID=$RECVAULT_TEST_S3_ACCESS_KEY_ID
export AWS_SECRET_ACCESS_KEY=$RECVAULT_TEST_S3_SECRET_ACCESS_KEY

write_config() { # cache_size
    cat >"$work/recvault.toml" <<TOML
[spool]
dirs = ["$spool"]
settle = "1s"
upload_after = "0s"
rescan = "2s"
staging = "$work/staging"
min_free = "none"

[store]
kind = "s3"
endpoint = "$RECVAULT_TEST_S3_ENDPOINT"
region = "$RECVAULT_TEST_S3_REGION"
bucket = "$RECVAULT_TEST_S3_BUCKET"
path_style = true
prefix = "bench-$run_id/"

[ledger]
path = "$work/ledger-$run_id.sqlite3"

[daemon]
workers = 4
log_level = "warn"

[serve]
listen = "127.0.0.1:$port"
key_file = "$work/link.key"
cache_dir = "$work/cache"
cache_size = "$1"
client_rate = 10000
TOML
}

rv() { "$recvault" --config "$work/recvault.toml" "$@"; }
pid=""
curls=()
# Whatever happens, no daemon or client of this run is left behind.
cleanup() {
    for c in "${curls[@]}"; do kill "$c" 2>/dev/null || true; done
    [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null
    return 0
}
trap cleanup EXIT
start() {
    "$recvault" --config "$work/recvault.toml" run 2>>"$work/daemon.log" &
    pid=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return
        sleep 0.1
    done
    echo "daemon did not start" >&2
    exit 1
}
stop() {
    kill -TERM "$pid"
    wait "$pid" || true
    pid=""
}
archived() { rv status | awk '$1 == "local_deleted" {print $2}'; }
wait_archived() { # count
    while [[ $(archived) != "$1" ]]; do sleep 0.2; done
}
percentile() { # p, numbers on stdin
    sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int((NR*p+99)/100); if (i<1) i=1; printf "%.1f", a[i]*1000}'
}

rm -rf "$spool" "$work/staging" "$work/cache" && mkdir -p "$spool"
write_config "0"
start
cp "$work"/long/*.wav "$spool"/
wait_archived 50
mapfile -t names < <(find "$work/long" -name '*.wav' -printf '%f\n' | sort)
link=$(rv url --permanent "${names[0]}")

# --- 1. first byte ------------------------------------------------------------
first_byte() {
    for _ in $(seq 100); do
        curl -s -o /dev/null -w '%{time_starttransfer}\n' "$link"
    done
}
first_byte >"$work/cold.txt"
stop
write_config "512MiB"
start
curl -s -o /dev/null "$link"
first_byte >"$work/warm.txt"

# --- 2. 50 playbacks while archiving ------------------------------------------
links=()
for n in "${names[@]}"; do links+=("$(rv url --permanent "$n")"); done
batch_run=0
archive_batch() { # prints seconds to archive the batch
    batch_run=$((batch_run + 1))
    local before want t0 f
    before=$(archived)
    want=$((before + $(find "$work/batch" -name '*.wav' | wc -l)))
    t0=$(date +%s.%N)
    for f in "$work"/batch/*.wav; do
        cp --preserve=timestamps "$f" "$spool/run$batch_run-$(basename "$f")"
    done
    wait_archived "$want"
    awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {printf "%.2f\n", a - b}'
}
peak_rss=0
with_playbacks() {
    # VmRSS sampled every 100 ms (a reset of VmHWM needs /proc/PID/clear_refs,
    # which not every kernel offers).
    (while kill -0 "$pid" 2>/dev/null; do
        awk '/VmRSS/ {print $2}' "/proc/$pid/status"
        sleep 0.1
    done) >"$work/rss.txt" &
    local sampler=$!
    curls=()
    for l in "${links[@]}"; do
        curl -s -o /dev/null --limit-rate 256k "$l" &
        curls+=($!)
    done
    sleep 2
    archive_batch
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    local hwm
    hwm=$(sort -n "$work/rss.txt" | tail -1)
    ((hwm > peak_rss)) && peak_rss=$hwm
    for c in "${curls[@]}"; do kill "$c" 2>/dev/null || true; done
    wait "${curls[@]}" 2>/dev/null || true
    curls=()
}
: >"$work/alone.txt"
: >"$work/loaded.txt"
for _ in $(seq "$runs"); do
    archive_batch >>"$work/alone.txt"
    with_playbacks >>"$work/loaded.txt"
done
stop

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
alone=$(median <"$work/alone.txt")
loaded=$(median <"$work/loaded.txt")
{
    echo "10-minute recording, $(stat -c %s "$work/long/${names[0]}") bytes, zstd in Garage"
    echo "first byte, cold (store + decode): p50 $(percentile 50 <"$work/cold.txt") ms, p95 $(percentile 95 <"$work/cold.txt") ms"
    echo "first byte, warm (playback cache): p50 $(percentile 50 <"$work/warm.txt") ms, p95 $(percentile 95 <"$work/warm.txt") ms"
    echo "archiving $(find "$work/batch" -name '*.wav' | wc -l) recordings: alone $alone s, with 50 playbacks $loaded s (median of $runs; slowdown $(awk -v l="$loaded" -v a="$alone" 'BEGIN {printf "%.1f", (l - a) * 100 / a}') %)"
    echo "daemon peak RSS with 50 playbacks: $((peak_rss / 1024)) MB"
    echo "load: $(uptime)"
} | tee "$work/result-$run_id.txt"
