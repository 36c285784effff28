#!/usr/bin/env bash
# bench/fleet.sh [ROWS]: the fleet's catalog at scale and an idle box's
# load on the database. Needs MariaDB on 127.0.0.1:3306 (root, no password)
# and a built target/debug/recvault (or RECVAULT_BIN).
#  1. `find --phone` through the binary over ROWS catalog rows (default
#     1,000,000) spread over 10 boxes: 20 runs, p50 and p95 (process start
#     and config parsing included).
#  2. One idle daemon for 60 s with the default heartbeat, logged in as a
#     user of its own: its statements and bytes from USER_STATISTICS.
set -euo pipefail
rows=${1:-1000000}
bin=${RECVAULT_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/debug/recvault}
db=rv_fleet_bench
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
sql() { mysql -h127.0.0.1 -uroot "$@"; }
sql -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
sql -e "DROP USER IF EXISTS 'rv_bench'@'%'; CREATE USER 'rv_bench'@'%' IDENTIFIED BY 'bench-pw'; GRANT ALL ON $db.* TO 'rv_bench'@'%'"
mkdir -p "$work/keys" "$work/spool"
echo "mysql://rv_bench:bench-pw@127.0.0.1:3306/$db" > "$work/keys/fleet.dsn"
cat > "$work/recvault.toml" <<TOML
[spool]
dirs = ["$work/spool"]
staging = "$work/staging"
min_free = "none"
[store]
kind = "local"
path = "$work/store"
[ledger]
path = "$work/state/ledger.sqlite3"
backup_every = "0s"
[daemon]
host = "bench"
[fleet]
enabled = true
dsn_file = "$work/keys/fleet.dsn"
TOML
"$bin" --config "$work/recvault.toml" fleet init --confirm > /dev/null
echo "== catalog: $rows rows over 10 boxes"
start=$(date +%s.%N)
sql "$db" -e "INSERT INTO recvault_recordings (host, id, name, state, time, campaign, agent, phone, lead_id, size, object_key, entry, published_at)
  SELECT CONCAT('dialer', seq % 10), seq, CONCAT('20260101-000000_', LPAD(seq % 5000000, 10, '5'), '-all.wav'), 'local_deleted',
         1760000000 + seq, CONCAT('C', seq % 20), CONCAT('agent', seq % 70), LPAD(seq % 5000000, 10, '5'), seq, 480000,
         CONCAT('k/', seq), '{}', 0 FROM seq_1_to_${rows}"
# One caller's 5 recordings, as a box publishes them (readable entries).
for i in 1 2 3 4 5; do
  entry="{\"host\":\"dialer$i\",\"id\":$((rows + i)),\"name\":\"x$i.wav\",\"path\":\"/s/x$i.wav\",\"state\":\"local_deleted\",\"step\":\"local_deleted\",\"time\":1760000000,\"call_time\":null,\"campaign\":null,\"agent\":null,\"phone\":\"5559990000\",\"lead_id\":null,\"size\":1,\"sha256\":null,\"codec\":null,\"object_key\":null,\"object_size\":null,\"object_sha256\":null,\"deleted_at\":null,\"deleted_by\":null,\"erasure\":null,\"vicidial_recording_id\":null,\"call_length\":null,\"held_by\":[],\"deleting\":null}"
  sql "$db" -e "INSERT INTO recvault_recordings (host, id, name, state, time, phone, size, entry, published_at) VALUES ('dialer$i', $((rows + i)), 'x$i.wav', 'local_deleted', 1760000000, '5559990000', 1, '$entry', 0)"
done
echo "inserted in $(echo "$(date +%s.%N) - $start" | bc) s"
"$bin" --config "$work/recvault.toml" find --phone 5559990000 | tail -1
times=()
for _ in $(seq 20); do
  s=$(date +%s%N); "$bin" --config "$work/recvault.toml" find --phone 5559990000 > /dev/null; e=$(date +%s%N)
  times+=($(( (e - s) / 1000000 )))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "find --phone (5 of $rows rows, 10 boxes): p50 ${sorted[9]} ms, p95 ${sorted[18]} ms"

echo "== an idle box for 60 s (heartbeat 10s)"
sql "$db" -e "DELETE FROM recvault_recordings"
sql -e "SET GLOBAL userstat = 1; FLUSH USER_STATISTICS"
"$bin" --config "$work/recvault.toml" run > "$work/log" 2>&1 & echo $! > "$work/pid"
sleep 60
sql -e "SELECT SELECT_COMMANDS, UPDATE_COMMANDS, OTHER_COMMANDS, BYTES_RECEIVED, BYTES_SENT, TOTAL_CONNECTIONS FROM information_schema.USER_STATISTICS WHERE USER = 'rv_bench'"
kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true
sql -e "SET GLOBAL userstat = 0; DROP USER 'rv_bench'@'%'; DROP DATABASE $db"
