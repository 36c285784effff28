#!/usr/bin/env bash
# The archive benchmark: what recvault stores and what it costs, side by side
# with the tools a sysadmin would use. One run prints one table:
#
#  1. codecs on the corpus: bytes stored, ratio per kind of recording and
#     CPU-seconds per hour of audio for recvault flac (libFLAC, with its
#     round-trip check) and zstd, the `flac -5`/`-8` and `zstd -3`/`-19`
#     CLIs, and flacenc (pure Rust, per-frame; bench/flacenc-compare);
#  2. the inputs FLAC cannot take: what zstd -3, -19, --long and a trained
#     dictionary save on mu-law, A-law, GSM, MP3 and Ogg recordings;
#  3. end to end: `recvault run --once` against `rclone move` of the same
#     files to the same Garage bucket, alternated, median of ROUNDS (3), on
#     loopback and through a proxy adding 100 ms of round-trip time
#     (bench/delay_proxy.rs): files/s, MB/s of WAV, CPU, peak RSS, ratio;
#  4. peak RSS archiving one ~1 GB WAV, and the idle daemon's CPU and RSS.
#
#   bench/archive.sh            (ROUNDS=3 E2E_ONLY=0 CODECS_ONLY=0)
#
# The corpus (~1.3 GB, generated once by scripts/sample-spool.py --hard from
# Debian's speech prompts and hold music, cached in .work/bench/corpus-v1)
# is 340 calls of 30 s to 6 min of 8 kHz speech, 6 hold-music recordings,
# 20 mu-law and 20 stereo calls. Other builds load a shared machine: the
# table ends with `uptime`; compare numbers taken under the same load.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
work=$repo/.work/bench
corpus=$work/corpus-v1
rounds=${ROUNDS:-3}
target=${CARGO_TARGET_DIR:-$repo/target}
recvault=$target/release/recvault
mkdir -p "$work"
out=$work/result-$(date +%Y%m%d-%H%M%S).txt
say() { echo "$*" | tee -a "$out"; }

# --- tools ------------------------------------------------------------------
scripts/install-deps.sh test
extra=()
for pkg in time sox libsox-fmt-mp3 lame vorbis-tools zstd flac asterisk-moh-opsound-wav; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || extra+=("$pkg")
done
if ((${#extra[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${extra[@]}" >/dev/null
fi
if [[ -z ${RECVAULT_TEST_S3_ENDPOINT:-} ]]; then
    scripts/garage.sh start >/dev/null
    set -a && source .work/garage/env && set +a
fi
cargo build --release --quiet --bin recvault --example codec --example delay_proxy
CARGO_TARGET_DIR=$work/flacenc-target cargo build --release --quiet \
    --manifest-path bench/flacenc-compare/Cargo.toml
flacenc=$work/flacenc-target/release/flacenc-compare

# --- corpus (cached) ----------------------------------------------------------
if [[ ! -f $corpus/.complete ]]; then
    rm -rf "$corpus"
    gen() { python3 scripts/sample-spool.py --quiet --out "$corpus/$1" --end-date 2026-03-01 "${@:2}"; }
    gen speech --hard --count 340 --min-seconds 30 --max-seconds 360 --seed 42
    gen moh --moh --count 6 --min-seconds 60 --max-seconds 300 --seed 43
    gen ulaw --format ulaw --count 20 --min-seconds 30 --max-seconds 360 --seed 44
    gen stereo --format stereo --count 20 --min-seconds 30 --max-seconds 360 --seed 45
    touch "$corpus/.complete"
fi
# The inputs FLAC cannot take, as VICIdial's compress script and others make them.
if [[ ! -f $corpus/other/.complete ]]; then
    rm -rf "$corpus/other"
    python3 scripts/sample-spool.py --quiet --out "$corpus/other/alaw" --format alaw \
        --count 20 --min-seconds 30 --max-seconds 360 --seed 46 --end-date 2026-03-01
    cp -r "$corpus/ulaw" "$corpus/other/ulaw"
    mkdir -p "$corpus/other/gsm" "$corpus/other/wav49" "$corpus/other/mp3" "$corpus/other/ogg"
    for f in $(ls "$corpus/speech"/*.wav | head -20); do
        b=$(basename "$f" .wav)
        sox "$f" "$corpus/other/gsm/$b.gsm"
        sox "$f" -e gsm-full-rate "$corpus/other/wav49/$b.wav"
        lame --quiet -b 16 -m m "$f" "$corpus/other/mp3/$b.mp3"
        sox "$f" -C 0 "$corpus/other/ogg/$b.ogg"
    done
    touch "$corpus/other/.complete"
fi

# Hours of audio in WAV files (data bytes / byte rate).
hours() {
    python3 - "$@" <<'EOF'
import struct, sys
total = 0.0
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        head = f.read(4096)
    at, rate = 12, None
    while at + 8 <= len(head):
        cid, size = head[at:at + 4], struct.unpack("<I", head[at + 4:at + 8])[0]
        if cid == b"fmt ":
            rate = struct.unpack("<I", head[at + 16:at + 20])[0]
        if cid == b"data":
            total += size / rate / 3600
            break
        at += 8 + size + (size & 1)
print(f"{total:.4f}")
EOF
}

# Runs a command and prints "user+sys seconds" of it and its children.
cpu_of() { /usr/bin/time -f "%U %S" -o "$work/cpu.tmp" "$@" >/dev/null; awk '{print $1 + $2}' "$work/cpu.tmp"; }

# --- 1. codecs ------------------------------------------------------------------
sets=(speech moh stereo ulaw)
declare -A files in_bytes hrs
for s in "${sets[@]}"; do
    files[$s]=$(ls "$corpus/$s"/*.wav | tr '\n' ' ')
    in_bytes[$s]=$(cat ${files[$s]} | wc -c)
    hrs[$s]=$(hours ${files[$s]})
done
scratch=$work/scratch
mkdir -p "$scratch"

# One CLI over a set, every Nth file: "bytes_in bytes_out cpu_s hours".
cli() { # every name set command...
    local every=$1 set=$2 list=() i=0
    for f in ${files[$set]}; do
        if ((i++ % every == 0)); then list+=("$f"); fi
    done
    local sizes=$scratch/sizes
    : >"$sizes"
    local cpu
    cpu=$(cpu_of bash -c 'cmd=$1; shift; out=$1; shift; sizes=$1; shift
        for f in "$@"; do
            if $cmd "$f" "$out" 2>/dev/null; then stat -c %s "$out" >>"$sizes"; else echo fail >>"$sizes"; fi
        done' bash "$3" "$scratch/out" "$sizes" "${list[@]}")
    if grep -q fail "$sizes"; then echo "- - - -"; return; fi
    echo "$(cat "${list[@]}" | wc -c) $(awk '{s += $1} END {print s}' "$sizes") $cpu $(hours "${list[@]}")"
}
flac5() { flac -s -5 -f -o "$2" "$1"; }
flac8() { flac -s -8 -f -o "$2" "$1"; }
zstd3() { zstd -q -f -3 "$1" -o "$2"; }
zstd19() { zstd -q -f -19 "$1" -o "$2"; }
export -f flac5 flac8 zstd3 zstd19

recvault_codec() { # codec set -> "in out cpu hours"
    local line
    line=$("$target/release/examples/codec" "$1" 3 0 ${files[$2]})
    echo "$(awk '{print $2, $3, $4}' <<<"$line") ${hrs[$2]}"
}
flacenc_codec() {
    local line
    line=$("$flacenc" 1024 ${files[$1]} 2>/dev/null)
    [[ $(awk '{print $1}' <<<"$line") == 0 ]] && { echo "- - - -"; return; }
    echo "$(awk '{print $2, $3, $4}' <<<"$line") ${hrs[$1]}"
}

if [[ ${E2E_ONLY:-0} != 1 ]]; then
    rows=("recvault flac" "recvault zstd -3" "flac -5" "flac -8" "zstd -3" "zstd -19 (1 file in 5)" "flacenc (Rust)")
    declare -A cell
    for s in "${sets[@]}"; do
        cell["recvault flac,$s"]=$(recvault_codec flac "$s")
        cell["recvault zstd -3,$s"]=$(recvault_codec zstd "$s")
        cell["flac -5,$s"]=$(cli 1 "$s" flac5)
        cell["flac -8,$s"]=$(cli 1 "$s" flac8)
        cell["zstd -3,$s"]=$(cli 1 "$s" zstd3)
        cell["zstd -19 (1 file in 5),$s"]=$(cli 5 "$s" zstd19)
        cell["flacenc (Rust),$s"]=$(flacenc_codec "$s")
    done
    # Peak RSS of the two FLAC encoders over the speech set.
    rss_libflac=$(/usr/bin/time -f %M "$target/release/examples/codec" flac 3 0 ${files[speech]} 2>&1 >/dev/null | tail -1)
    rss_flacenc=$(/usr/bin/time -f %M "$flacenc" 1024 ${files[speech]} 2>&1 >/dev/null | tail -1)
    say ""
    say "== 1. codecs: $(du -sh --apparent-size "$corpus" | cut -f1) of WAV; ratio = stored/original per kind; PCM = speech + hold music + stereo"
    say "$(printf '%-24s %8s %8s %8s %8s %14s %8s %12s' codec speech 'hold mu' stereo 'mu-law' 'bytes (PCM)' 'PCM' 'CPU-s/h PCM')"
    for r in "${rows[@]}"; do
        line=$(printf '%-24s' "$r")
        tin=0 tout=0 tcpu=0 th=0 ok=1
        for s in "${sets[@]}"; do
            read -r i o c h <<<"${cell[$r,$s]}"
            if [[ $i == - ]]; then
                line+=$(printf ' %8s' n/a)
                [[ $s == ulaw ]] || ok=0
                continue
            fi
            line+=$(awk -v i="$i" -v o="$o" 'BEGIN {printf " %7.1f%%", 100 * o / i}')
            if [[ $s != ulaw ]]; then
                read -r tin tout tcpu th < <(awk -v a="$tin" -v b="$tout" -v c="$tcpu" -v d="$th" \
                    -v i="$i" -v o="$o" -v cc="$c" -v h="$h" -v full="${in_bytes[$s]}" \
                    'BEGIN {f = full / i; print a + full, b + o * f, c + cc * f, d + h * f}')
            fi
        done
        if ((ok)); then
            line+=$(awk -v i="$tin" -v o="$tout" -v c="$tcpu" -v h="$th" \
                'BEGIN {printf " %14.0f %7.1f%% %12.2f", o, 100 * o / i, c / h}')
        fi
        say "$line"
    done
    say "peak RSS over the speech set: recvault flac codec $((rss_libflac / 1024)) MB, flacenc $((rss_flacenc / 1024)) MB"

    # --- 2. what FLAC cannot take ---------------------------------------------
    say ""
    say "== 2. inputs FLAC cannot take (recvault: zstd for G.711, as is for GSM/MP3/Ogg): stored/original"
    kinds=(ulaw alaw wav49 gsm mp3 ogg)
    say "$(printf '%-22s' method)$(printf ' %8s' "${kinds[@]}")"
    dict=$scratch/dict
    for method in "zstd -3" "zstd -19" "zstd -3 --long" "zstd -3 + dictionary"; do
        line=$(printf '%-22s' "$method")
        for k in "${kinds[@]}"; do
            mapfile -t fs < <(ls "$corpus/other/$k"/* | sort)
            half=$((${#fs[@]} / 2))
            train=("${fs[@]:0:half}") test=("${fs[@]:half}")
            case $method in
            "zstd -3") opts=(-3) ;;
            "zstd -19") opts=(-19) ;;
            "zstd -3 --long") opts=(-3 --long=27) ;;
            *)
                zstd -q -f --train "${train[@]}" -o "$dict" --maxdict=112640 >/dev/null 2>&1 || true
                opts=(-3 -D "$dict")
                ;;
            esac
            i=$(cat "${test[@]}" | wc -c)
            o=0
            for f in "${test[@]}"; do
                o=$((o + $(zstd -q -c "${opts[@]}" "$f" | wc -c)))
            done
            line+=$(awk -v i="$i" -v o="$o" 'BEGIN {printf " %7.1f%%", 100 * o / i}')
        done
        say "$line"
    done
    say "(dictionary: trained on the first half of each kind's files, measured on the other half)"
fi
[[ ${CODECS_ONLY:-0} == 1 ]] && { say "load: $(uptime)"; exit 0; }

# --- 3. end to end ------------------------------------------------------------
e2e=$work/e2e
source_spool=$e2e/source
if [[ ! -f $source_spool/.complete ]]; then
    rm -rf "$source_spool" && mkdir -p "$source_spool"
    for s in "${sets[@]}"; do
        for f in "$corpus/$s"/*.wav; do ln "$f" "$source_spool/$s-$(basename "$f")"; done
    done
    touch "$source_spool/.complete"
fi
n_files=$(ls "$source_spool"/*.wav | wc -l)
n_bytes=$(cat "$source_spool"/*.wav | wc -c)
run_id=bench-$(date +%s)

export AWS_ACCESS_KEY_ID=$RECVAULT_TEST_S3_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$RECVAULT_TEST_S3_SECRET_ACCESS_KEY
# This sandbox may point the AWS tools at a CA bundle that rclone cannot load.
unset AWS_CA_BUNDLE
export RCLONE_CONFIG_GARAGE_TYPE=s3 RCLONE_CONFIG_GARAGE_PROVIDER=Other
export RCLONE_CONFIG_GARAGE_REGION=$RECVAULT_TEST_S3_REGION RCLONE_CONFIG_GARAGE_FORCE_PATH_STYLE=true
export RCLONE_CONFIG_GARAGE_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_GARAGE_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY

write_config() { # dir endpoint prefix [codec]
    cat >"$1/recvault.toml" <<TOML
[spool]
dirs = ["$1/spool"]
settle = "0s"
upload_after = "0s"
staging = "$1/staging"
min_free = "none"

[compress]
codec = "${4:-flac}"

[store]
kind = "s3"
endpoint = "$2"
region = "$RECVAULT_TEST_S3_REGION"
bucket = "$RECVAULT_TEST_S3_BUCKET"
path_style = true
prefix = "$3"

[ledger]
path = "$1/ledger.sqlite3"
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

fresh_spool() { # dir
    rm -rf "$1" && mkdir -p "$1/spool"
    cp "$source_spool"/*.wav "$1/spool/"
    sync
}

run_recvault() { # name endpoint
    local d=$e2e/$1
    fresh_spool "$d"
    write_config "$d" "$2" "$run_id/$1/"
    /usr/bin/time -v "$recvault" --config "$d/recvault.toml" run --once >"$d/out" 2>"$d/time"
    local left
    left=$(ls "$d/spool" | wc -l)
    ((left == 0)) || { echo "recvault left $left files in $d/spool" >&2; exit 1; }
    measure "$d/time"
}

run_rclone() { # name endpoint
    local d=$e2e/$1
    fresh_spool "$d"
    RCLONE_CONFIG_GARAGE_ENDPOINT=$2 /usr/bin/time -v \
        rclone move "$d/spool" "garage:$RECVAULT_TEST_S3_BUCKET/$run_id/$1/" 2>"$d/time"
    measure "$d/time"
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

proxy_pid=
cleanup() {
    [[ -n $proxy_pid ]] && kill "$proxy_pid" 2>/dev/null || true
    RCLONE_CONFIG_GARAGE_ENDPOINT=$RECVAULT_TEST_S3_ENDPOINT rclone purge \
        "garage:$RECVAULT_TEST_S3_BUCKET/$run_id" 2>/dev/null || true
    rm -rf "$e2e"/r-* "$scratch"
}
trap cleanup EXIT

say ""
say "== 3. end to end: $n_files recordings, $((n_bytes / 1000000)) MB of WAV, recvault (flac) vs rclone move, median of $rounds, alternated"
say "$(printf '%-24s %8s %8s %8s %10s %9s %9s' '' 'wall s' 'files/s' 'MB/s' 'CPU s' 'peak RSS' 'ratio')"
for latency in 0 50; do
    endpoint=$RECVAULT_TEST_S3_ENDPOINT
    label="loopback"
    if ((latency > 0)); then
        "$target/release/examples/delay_proxy" "${RECVAULT_TEST_S3_ENDPOINT#http://}" "$latency" >"$e2e/proxy.out" &
        proxy_pid=$!
        sleep 1
        endpoint=http://$(awk '{print $2}' "$e2e/proxy.out")
        label="+$((2 * latency)) ms RTT"
    fi
    : >"$e2e/recvault.runs"
    : >"$e2e/rclone.runs"
    for round in $(seq "$rounds"); do
        run_recvault "r-recvault-$latency-$round" "$endpoint" >>"$e2e/recvault.runs"
        run_rclone "r-rclone-$latency-$round" "$endpoint" >>"$e2e/rclone.runs"
    done
    r_wall=$(awk '{print $1}' "$e2e/recvault.runs" | median)
    c_wall=$(awk '{print $1}' "$e2e/rclone.runs" | median)
    for tool in recvault rclone; do
        wall=$(awk '{print $1}' "$e2e/$tool.runs" | median)
        cpu=$(awk '{print $2}' "$e2e/$tool.runs" | median)
        rss=$(awk '{print $3}' "$e2e/$tool.runs" | sort -n | tail -1)
        say "$(awk -v t="$tool, $label" -v w="$wall" -v c="$cpu" -v r="$rss" -v f="$n_files" -v b="$n_bytes" \
            -v rw="$r_wall" -v cw="$c_wall" -v me="$tool" \
            'BEGIN {printf "%-24s %8.2f %8.1f %8.1f %10.1f %6.0f MB %9s\n", t, w, f / w, b / 1e6 / w, c, r / 1024, (me == "recvault") ? sprintf("%.2fx", cw / rw) : ""}')"
    done
    if [[ -n $proxy_pid ]]; then
        kill "$proxy_pid" && wait "$proxy_pid" 2>/dev/null || true
        proxy_pid=
    fi
done

# --- 4. one big recording, and the idle daemon ------------------------------------
big=$e2e/r-big
rm -rf "$big" && mkdir -p "$big"
python3 scripts/sample-spool.py --count 1 --min-seconds 65000 --max-seconds 65000 --seed 7 --out "$big/spool" --quiet
big_bytes=$(cat "$big/spool"/*.wav | wc -c)
write_config "$big" "$RECVAULT_TEST_S3_ENDPOINT" "$run_id/big/"
/usr/bin/time -v "$recvault" --config "$big/recvault.toml" run --once >/dev/null 2>"$big/time"
read -r b_wall _ b_rss < <(measure "$big/time")

idle=$e2e/r-idle
rm -rf "$idle" && mkdir -p "$idle/spool"
write_config "$idle" "$RECVAULT_TEST_S3_ENDPOINT" "$run_id/idle/"
"$recvault" --config "$idle/recvault.toml" run 2>/dev/null &
pid=$!
sleep 5
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
t0=$(ticks)
sleep 30
t1=$(ticks)
idle_rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"
wait "$pid" || true

say ""
say "== 4. one $((big_bytes / 1000000)) MB recording (flac): $b_wall s, peak RSS $((b_rss / 1024)) MB; idle daemon, 30 s: $((t1 - t0)) CPU ticks, RSS $((idle_rss / 1024)) MB"
say "load: $(uptime)"
say "(saved in $out)"
