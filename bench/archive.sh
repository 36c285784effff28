#!/usr/bin/env bash
# Archive benchmark: recvault `run --once` against Garage on loopback versus
# `rclone move` of the same files to the same bucket, in the same run.
#
#   bench/archive.sh [COUNT]      (default 500 recordings, about 1.2 GB)
#
# Reports wall time, CPU time, peak RSS, files/s and MB/s for both, the
# files/s ratio, peak RSS for one ~1 GiB recording (streaming), and the idle
# daemon's CPU and RSS with an empty spool. Runs scripts/install-deps.sh test
# (rclone, speech samples) and builds the release binary itself.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
count=${1:-500}
work=$repo/.work/bench
target=${CARGO_TARGET_DIR:-$repo/target}
recvault=$target/release/recvault

command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
scripts/install-deps.sh test
scripts/garage.sh start >/dev/null
# shellcheck disable=SC1091
source .work/garage/env
cargo build --release --quiet

run_id=$(date +%s)
mkdir -p "$work"
source_spool=$work/source-$count
if [[ ! -f $source_spool/.complete ]]; then
    rm -rf "$source_spool"
    python3 scripts/sample-spool.py --count "$count" --seed 42 --out "$source_spool" --quiet
    touch "$source_spool/.complete"
fi
bytes=$(find "$source_spool" -type f -name '*.wav' -printf '%s\n' | awk '{s+=$1} END {print s}')
files=$(find "$source_spool" -type f -name '*.wav' | wc -l)

# Prints "wall_s cpu_s maxrss_kb" from /usr/bin/time -v output in $1.
measure() {
    awk -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, t, ":"); wall = (n == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2] }
        /User time/ { cpu += $2 } /System time/ { cpu += $2 }
        /Maximum resident set size/ { rss = $2 }
        END { printf "%.2f %.2f %d\n", wall, cpu, rss }' "$1"
}

write_config() { # spool ledger prefix
    cat >"$work/recvault.toml" <<TOML
[spool]
dirs = ["$1"]
settle = "0s"
upload_after = "0s"
staging = "$work/staging"
min_free = "none"

[compress]
codec = "zstd"
level = 3

[store]
kind = "s3"
endpoint = "$RECVAULT_TEST_S3_ENDPOINT"
region = "$RECVAULT_TEST_S3_REGION"
bucket = "$RECVAULT_TEST_S3_BUCKET"
path_style = true
prefix = "$3"

[ledger]
path = "$2"

[daemon]
workers = 4
log_level = "warn"
TOML
}

export AWS_ACCESS_KEY_ID=$RECVAULT_TEST_S3_ACCESS_KEY_ID
export AWS_SECRET_ACCESS_KEY=$RECVAULT_TEST_S3_SECRET_ACCESS_KEY
# This sandbox may point the AWS tools at a CA bundle that rclone cannot load.
unset AWS_CA_BUNDLE

echo "== $files recordings, $((bytes / 1000000)) MB"

# --- recvault ---------------------------------------------------------------
spool=$work/spool-recvault
rm -rf "$spool" "$work/staging" "$work"/ledger-*.sqlite3*
cp -r "$source_spool" "$spool"
write_config "$spool" "$work/ledger-$run_id.sqlite3" "bench-$run_id/recvault/"
sync
/usr/bin/time -v "$recvault" --config "$work/recvault.toml" run --once >"$work/recvault.out" 2>"$work/recvault.time"
read -r r_wall r_cpu r_rss < <(measure "$work/recvault.time")
left=$(find "$spool" -type f -name '*.wav' | wc -l)
stored=$("$recvault" --config "$work/recvault.toml" status | awk '$1 == "local_deleted" {print $2}')
echo "recvault: $(tail -1 "$work/recvault.out") (files left locally: $left, local_deleted: $stored)"

# --- rclone move ------------------------------------------------------------
spool=$work/spool-rclone
rm -rf "$spool"
cp -r "$source_spool" "$spool"
rm -f "$spool/.complete"
sync
export RCLONE_CONFIG_GARAGE_TYPE=s3 RCLONE_CONFIG_GARAGE_PROVIDER=Other
export RCLONE_CONFIG_GARAGE_ENDPOINT=$RECVAULT_TEST_S3_ENDPOINT RCLONE_CONFIG_GARAGE_REGION=$RECVAULT_TEST_S3_REGION
export RCLONE_CONFIG_GARAGE_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_GARAGE_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export RCLONE_CONFIG_GARAGE_FORCE_PATH_STYLE=true
/usr/bin/time -v rclone move --transfers 4 "$spool" "garage:$RECVAULT_TEST_S3_BUCKET/bench-$run_id/rclone/" 2>"$work/rclone.time"
read -r c_wall c_cpu c_rss < <(measure "$work/rclone.time")

# --- one big recording: memory must not grow with file size ------------------
big=$work/spool-big
rm -rf "$big" "$work/staging"
python3 scripts/sample-spool.py --count 1 --min-seconds 65000 --max-seconds 65000 --seed 7 --out "$big" --quiet
big_bytes=$(find "$big" -type f -name '*.wav' -printf '%s\n' | awk '{s+=$1} END {print s}')
write_config "$big" "$work/ledger-big-$run_id.sqlite3" "bench-$run_id/big/"
/usr/bin/time -v "$recvault" --config "$work/recvault.toml" run --once >/dev/null 2>"$work/big.time"
read -r b_wall _ b_rss < <(measure "$work/big.time")

# --- idle daemon ------------------------------------------------------------
idle=$work/spool-idle
rm -rf "$idle" && mkdir -p "$idle"
write_config "$idle" "$work/ledger-idle-$run_id.sqlite3" "bench-$run_id/idle/"
"$recvault" --config "$work/recvault.toml" run 2>/dev/null &
pid=$!
sleep 5
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
t0=$(ticks)
sleep 30
t1=$(ticks)
idle_rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"
wait "$pid" || true
hz=$(getconf CLK_TCK)

awk -v f="$files" -v b="$bytes" \
    -v rw="$r_wall" -v rc="$r_cpu" -v rr="$r_rss" \
    -v cw="$c_wall" -v cc="$c_cpu" -v cr="$c_rss" \
    -v bb="$big_bytes" -v bw="$b_wall" -v br="$b_rss" \
    -v it=$((t1 - t0)) -v hz="$hz" -v ir="$idle_rss" 'BEGIN {
    printf "\n%-16s %9s %9s %10s %9s %9s\n", "", "wall s", "cpu s", "peak RSS", "files/s", "MB/s"
    printf "%-16s %9.1f %9.1f %7.1f MB %9.1f %9.1f\n", "recvault", rw, rc, rr/1024, f/rw, b/1e6/rw
    printf "%-16s %9.1f %9.1f %7.1f MB %9.1f %9.1f\n", "rclone move", cw, cc, cr/1024, f/cw, b/1e6/cw
    printf "files/s ratio recvault/rclone: %.2f\n", (f/rw)/(f/cw)
    printf "one %.0f MB recording: %.1f s, peak RSS %.1f MB\n", bb/1e6, bw, br/1024
    printf "idle daemon, empty spool, 30 s: %d CPU ticks (%.2f s), RSS %.1f MB\n", it, it/hz, ir/1024
}' | tee "$work/result-$run_id.txt"
