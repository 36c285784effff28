#!/usr/bin/env bash
# A single-node Garage (S3-compatible server) on 127.0.0.1, for the S3 tests and
# benchmarks. Idempotent: `start` reuses a running node, its bucket and its key.
#
#   scripts/garage.sh start   [WORKDIR]  start or reuse; writes WORKDIR/env
#   scripts/garage.sh stop    [WORKDIR]  stop the node started from WORKDIR
#   scripts/garage.sh status  [WORKDIR]  exit 0 if it runs and answers
#   scripts/garage.sh install            only make sure the garage binary exists
#
# WORKDIR defaults to .work/garage in the repository. WORKDIR/env holds the
# RECVAULT_TEST_S3_* variables the tests read.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The CLI calls below were checked against this version; 2.x changed the CLI.
GARAGE_VERSION=${GARAGE_VERSION:-2.5.0}
BUCKET=recvault-test
KEY_NAME=recvault-test
REGION=garage
S3_HOST=127.0.0.1
S3_PORT=3900
RPC_PORT=3901
ADMIN_PORT=3903
START_TIMEOUT=${GARAGE_START_TIMEOUT:-60}

log() { echo "garage.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

usage() {
	sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

# The binary may live in ~/.cargo/bin without that being on PATH (fresh root shell).
find_garage() {
	local candidate
	for candidate in "$(command -v garage 2>/dev/null || true)" "${CARGO_HOME:-$HOME/.cargo}/bin/garage"; do
		if [[ -n $candidate && -x $candidate ]]; then
			echo "$candidate"
			return 0
		fi
	done
	return 1
}

find_cargo() {
	local candidate
	for candidate in "$(command -v cargo 2>/dev/null || true)" "${CARGO_HOME:-$HOME/.cargo}/bin/cargo"; do
		if [[ -n $candidate && -x $candidate ]]; then
			echo "$candidate"
			return 0
		fi
	done
	return 1
}

ensure_garage() {
	if GARAGE=$(find_garage); then
		return 0
	fi
	local cargo
	cargo=$(find_cargo) || die "garage is not installed and cargo is missing: install Rust (rustup) first"
	log "garage not found: building it with 'cargo install --locked garage --version $GARAGE_VERSION'"
	log "this takes about 15 minutes on 2 cores; it is done once"
	"$cargo" install --locked garage --version "$GARAGE_VERSION"
	GARAGE=$(find_garage) || die "cargo install finished but no garage binary was found"
}

set_paths() {
	workdir=${1:-$repo_root/.work/garage}
	if [[ $workdir != /* ]]; then
		workdir=$PWD/$workdir
	fi
	conf=$workdir/garage.toml
	pidfile=$workdir/garage.pid
	logfile=$workdir/garage.log
	envfile=$workdir/env
}

# Two runs at once (CI and a developer, or parallel benchmarks) must not both
# launch a server or create two keys with the same name.
lock_workdir() {
	mkdir -p "$workdir"
	exec 9>"$workdir/lock"
	flock -w 120 9 || die "another garage.sh has held $workdir/lock for 2 minutes"
}

g() {
	"$GARAGE" -c "$conf" "$@"
}

# Prints the pid of the Garage started from this WORKDIR if it is alive. The
# command line must name our config, so a recycled pid is not mistaken for it.
running_pid() {
	local pid
	[[ -f $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$conf" || return 1
	echo "$pid"
}

port_open() {
	(exec 3<>"/dev/tcp/$S3_HOST/$1") 2>/dev/null
}

log_tail() {
	if [[ -f $logfile ]]; then
		log "last lines of $logfile:"
		tail -n 30 "$logfile" >&2
	fi
}

# Keep the RPC secret across restarts: a CLI call racing a restart then still
# talks to the node with the right secret.
write_config() {
	local secret=""
	if [[ -f $conf ]]; then
		secret=$(sed -n 's/^rpc_secret = "\([0-9a-f]\{64\}\)"$/\1/p' "$conf")
	fi
	if [[ -z $secret ]]; then
		secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
	fi
	mkdir -p "$workdir/meta" "$workdir/data"
	(
		umask 077
		cat >"$conf.tmp" <<EOF
# Written by scripts/garage.sh: a throwaway single-node Garage for tests.
metadata_dir = "$workdir/meta"
data_dir = "$workdir/data"
db_engine = "sqlite"
replication_factor = 1

rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$secret"

[s3_api]
api_bind_addr = "$S3_HOST:$S3_PORT"
s3_region = "$REGION"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
EOF
	)
	mv "$conf.tmp" "$conf"
}

launch() {
	local port
	# Another server (say, a Garage from another WORKDIR) on our ports would make
	# this one fail to bind; say so plainly instead of pointing at its log.
	for port in "$S3_PORT" "$RPC_PORT" "$ADMIN_PORT"; do
		if port_open "$port"; then
			die "127.0.0.1:$port is already in use (a Garage from another WORKDIR? stop it with: scripts/garage.sh stop DIR)"
		fi
	done
	log "starting Garage from $workdir (log: $logfile)"
	# setsid: the server outlives this script and the test run that called it.
	# 9>&-: the server must not inherit (and hold forever) the start/stop lock.
	setsid "$GARAGE" -c "$conf" server >>"$logfile" 2>&1 </dev/null 9>&- &
	echo $! >"$pidfile"
}

# Waits until the node answers on RPC (garage status) and on the S3 port.
wait_answering() {
	local pid=$1 deadline=$((SECONDS + START_TIMEOUT))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			log_tail
			die "Garage exited during start-up"
		fi
		if g status >/dev/null 2>&1 && port_open "$S3_PORT"; then
			return 0
		fi
		sleep 0.5
	done
	log_tail
	die "Garage (pid $pid) did not answer within ${START_TIMEOUT}s"
}

# A fresh node has no role in the cluster layout and refuses all S3 requests
# until one is assigned and applied.
ensure_layout() {
	local version node_id
	version=$(g layout show | sed -n 's/^Current cluster layout version: //p')
	if [[ $version == 0 ]]; then
		node_id=$(g node id -q | cut -d@ -f1)
		log "assigning layout to node ${node_id:0:16}"
		g layout assign -z dc1 -c 1G "$node_id" >/dev/null
		g layout apply --version 1 >/dev/null
	fi
	local deadline=$((SECONDS + START_TIMEOUT))
	until g health -q >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "Garage layout applied but the cluster is not healthy: $(g health 2>&1 || true)"
		sleep 0.5
	done
}

ensure_bucket_and_key() {
	if ! g bucket info "$BUCKET" >/dev/null 2>&1; then
		log "creating bucket $BUCKET"
		g bucket create "$BUCKET" >/dev/null
	fi
	# Key names are not unique in Garage: create only when none has this name,
	# otherwise `key info NAME` would later fail with "2 matching keys".
	if ! g key info "$KEY_NAME" >/dev/null 2>&1; then
		log "creating key $KEY_NAME"
		g key create "$KEY_NAME" >/dev/null
	fi
	g bucket allow --read --write --owner "$BUCKET" --key "$KEY_NAME" >/dev/null
	# Benchmarks create their own buckets with this key.
	g key allow --create-bucket "$KEY_NAME" >/dev/null
}

write_env() {
	local key_id secret
	key_id=$(g key info "$KEY_NAME" --key-id)
	secret=$(g key info "$KEY_NAME" --secret-key)
	[[ $key_id =~ ^GK[0-9a-f]+$ ]] || die "unexpected key id from garage: $key_id"
	[[ $secret =~ ^[0-9a-f]+$ ]] || die "unexpected secret from garage (redacted?)"
	(
		umask 077
		cat >"$envfile.tmp" <<EOF
RECVAULT_TEST_S3_ENDPOINT=http://$S3_HOST:$S3_PORT
RECVAULT_TEST_S3_REGION=$REGION
RECVAULT_TEST_S3_BUCKET=$BUCKET
RECVAULT_TEST_S3_ACCESS_KEY_ID=$key_id
RECVAULT_TEST_S3_SECRET_ACCESS_KEY=$secret
EOF
	)
	mv "$envfile.tmp" "$envfile"
}

cmd_start() {
	local pid
	set_paths "${1:-}"
	ensure_garage
	lock_workdir
	if pid=$(running_pid); then
		log "reusing Garage pid $pid from $workdir"
	else
		rm -f "$pidfile"
		write_config
		launch
		pid=$(<"$pidfile")
	fi
	wait_answering "$pid"
	ensure_layout
	ensure_bucket_and_key
	write_env
	log "ready: s3 http://$S3_HOST:$S3_PORT bucket $BUCKET; credentials in $envfile"
}

cmd_stop() {
	local pid deadline
	set_paths "${1:-}"
	[[ -d $workdir ]] || {
		log "no Garage running from $workdir"
		return 0
	}
	lock_workdir
	if ! pid=$(running_pid); then
		rm -f "$pidfile"
		log "no Garage running from $workdir"
		return 0
	fi
	kill -TERM "$pid"
	deadline=$((SECONDS + 30))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "Garage pid $pid ignored SIGTERM for 30s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	rm -f "$pidfile"
	log "stopped Garage pid $pid"
}

cmd_status() {
	local pid
	set_paths "${1:-}"
	GARAGE=$(find_garage) || die "garage is not installed"
	pid=$(running_pid) || die "no Garage running from $workdir"
	g status >/dev/null 2>&1 || die "Garage pid $pid runs but does not answer"
	echo "Garage pid $pid from $workdir answers on http://$S3_HOST:$S3_PORT"
}

case "${1:-}" in
start) cmd_start "${2:-}" ;;
stop) cmd_stop "${2:-}" ;;
status) cmd_status "${2:-}" ;;
install) ensure_garage ;;
*) usage ;;
esac
