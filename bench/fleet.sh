#!/usr/bin/env bash
# bench/fleet.sh [ROWS]: the fleet's catalog at scale (issue 16). Needs
# MariaDB on 127.0.0.1:3306 (root, no password; its InnoDB buffer pool is
# raised to 2 GiB for the run and put back), python3, and a built
# target/debug/recvault (or RECVAULT_BIN). Prints:
#  1. the catalog: ROWS rows (default 10,000,000) over 10 boxes, a year of
#     calls, each with a full entry as a box publishes it, made by INSERT …
#     SELECT in 500,000-row chunks, and how long that took. REUSE=1 keeps
#     the catalog an earlier run with KEEP=1 left (same ROWS).
#  2. `find --phone` (one caller's 5 recordings), `status --fleet` and
#     `ls --fleet --since` (the last day: 28,800 rows) through the binary,
#     process start included: p50/p95 over 20 runs (10 for ls).
#  3. Catalog lag: a daemon archives 40 recordings dropped every 0.5 s; for
#     each, from when its ledger says local_deleted to when the catalog
#     does (both polled every 100 ms): p50, p95, max.
#  4. That box idle for 60 s (default heartbeat): its statements and bytes
#     (USER_STATISTICS).
#  5. A leader sweep: 100,000 due recordings of a forgotten box, spread over
#     the same year among the 10 M (objects in a local store), the box
#     leading: the time from its first deletion to its last, and the
#     statements it sent meanwhile.
set -euo pipefail
rows=${1:-10000000}
bin=${RECVAULT_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/debug/recvault}
db=rv_fleet_bench
work=$(mktemp -d)
sql() { mysql -h127.0.0.1 -uroot "$@"; }
pool=$(sql -N -e "SELECT @@innodb_buffer_pool_size")
finish() {
  kill "$(cat "$work/pid" 2>/dev/null)" 2>/dev/null || true
  sql -e "SET GLOBAL userstat = 0; SET GLOBAL innodb_buffer_pool_size = $pool; DROP USER IF EXISTS 'rv_bench'@'%'" || true
  [ "${KEEP:-0}" = 1 ] || sql -e "DROP DATABASE IF EXISTS $db" || true
  rm -rf "$work"
}
trap finish EXIT
# p50, p95 and max of the numbers on stdin.
stats() { sort -n | awk '{a[NR]=$1} END {printf "p50 %s, p95 %s, max %s", a[int((NR+1)/2)], a[int(NR*0.95+0.999)], a[NR]}'; }
# Runs "$@" N times; prints its p50/p95/max in ms.
runs() {
  local n=$1; shift
  for _ in $(seq "$n"); do
    local s; s=$(date +%s%N); "$@" > /dev/null; echo $(( ($(date +%s%N) - s) / 1000000 ))
  done | stats
}
elapsed() { echo "$(date +%s.%N) - $1" | bc; }

sql -e "SET GLOBAL innodb_buffer_pool_size = 2147483648"
have=0
if [ "${REUSE:-0}" = 1 ]; then
  have=$(sql -N -e "SELECT COUNT(*) FROM $db.recvault_recordings WHERE host LIKE 'dialer%'" 2>/dev/null || echo 0)
fi
[ "$have" = "$rows" ] || sql -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
sql -e "DROP USER IF EXISTS 'rv_bench'@'%'; CREATE USER 'rv_bench'@'%' IDENTIFIED BY 'bench-pw'; GRANT ALL ON $db.* TO 'rv_bench'@'%'"
mkdir -p "$work/keys" "$work/spool" "$work/store"
echo "mysql://rv_bench:bench-pw@127.0.0.1:3306/$db" > "$work/keys/fleet.dsn"
config() { # $1: heartbeat
  cat > "$work/recvault.toml" <<TOML
[spool]
dirs = ["$work/spool"]
staging = "$work/staging"
min_free = "none"
settle = "1s"
upload_after = "0s"
[store]
kind = "local"
path = "$work/store"
[ledger]
path = "$work/state/ledger.sqlite3"
backup_every = "0s"
[daemon]
host = "bench"
[retention]
default = "30d"
[fleet]
enabled = true
dsn_file = "$work/keys/fleet.dsn"
heartbeat = "$1"
host_timeout = "60s"
TOML
}
config 10s
rv() { "$bin" --config "$work/recvault.toml" "$@"; }
rv fleet init --confirm > /dev/null

# The catalog: a year of calls from 2025-01-01, one every 3 s, over 10
# boxes; 2,000,000 callers of 5 calls each.
gen() { # $1 lo, $2 hi, $3 host expression, $4 time expression
  sql "$db" -e "INSERT INTO recvault_recordings (host, id, name, state, time, campaign, agent, phone, lead_id, size, object_key, entry, published_at)
SELECT host, seq, name, 'local_deleted', t, campaign, agent, phone, lead, 480044, okey,
  CONCAT('{\"host\":\"', host, '\",\"id\":', seq, ',\"name\":\"', name, '\",\"path\":\"/var/spool/asterisk/monitorDONE/', name,
         '\",\"state\":\"local_deleted\",\"step\":\"local_deleted\",\"time\":', t, ',\"call_time\":', t, ',\"campaign\":\"', campaign,
         '\",\"agent\":\"', agent, '\",\"phone\":\"', phone, '\",\"lead_id\":\"', lead, '\",\"size\":480044,\"sha256\":\"', MD5(seq), MD5(t),
         '\",\"codec\":\"flac\",\"object_key\":\"', okey, '\",\"object_size\":201733,\"object_sha256\":\"', MD5(phone), MD5(seq + 1),
         '\",\"deleted_at\":null,\"deleted_by\":null,\"erasure\":null,\"vicidial_recording_id\":', seq, ',\"call_length\":30,\"held_by\":[],\"deleting\":null}'),
  0
FROM (SELECT seq, host, t, campaign, agent, phone, lead, name, CONCAT(host, '/', LEFT(name, 8), '/', name, '.flac') AS okey
      FROM (SELECT seq, $3 AS host, $4 AS t, CONCAT('C', seq % 20) AS campaign, CONCAT('agent', seq % 70) AS agent,
                   CONCAT('555', LPAD((seq * 7919) % 2000000, 7, '0')) AS phone, CAST(seq AS CHAR) AS lead,
                   CONCAT(DATE_FORMAT(FROM_UNIXTIME($4), '%Y%m%d-%H%i%s'), '_555', LPAD((seq * 7919) % 2000000, 7, '0'), '-all.wav') AS name
            FROM seq_1_to_1000000000 WHERE seq > $1 AND seq <= $2) a) s"
}
echo "== catalog: $rows rows over 10 boxes"
if [ "$have" = "$rows" ]; then
  echo "reused the catalog an earlier run left"
else
  start=$(date +%s.%N)
  for ((lo = 0; lo < rows; lo += 500000)); do
    gen "$lo" "$(( lo + 500000 < rows ? lo + 500000 : rows ))" "CONCAT('dialer', seq % 10)" "1735689600 + seq * 3"
  done
  echo "made by INSERT … SELECT in $(elapsed "$start") s"
fi
now=$(date +%s)
for i in $(seq 0 9); do
  sql "$db" -e "REPLACE INTO recvault_boxes (host, identity, version, started_at, heartbeat_at) VALUES ('dialer$i', LPAD('$i', 32, '0'), 'bench', $now, $now)"
done
sql "$db" -e "SELECT ROUND((DATA_LENGTH + INDEX_LENGTH) / 1073741824, 1) AS gib FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$db' AND TABLE_NAME = 'recvault_recordings'" -N | sed 's/^/catalog on disk: /; s/$/ GiB/'

phone=5550012345
echo "find --phone: $(rv find --phone $phone | tail -1)"
echo "find --phone: $(runs 20 rv find --phone $phone) ms"
echo "status --fleet (10 boxes): $(runs 20 rv status --fleet) ms"
last=$(( 1735689600 + rows * 3 - 86400 ))
since=$(date -d "@$last" '+%Y-%m-%d %H:%M:%S')
echo "ls --fleet --since '$since': $(rv ls --fleet --since "$since" | wc -l) rows"
echo "ls --fleet --since (the last day): $(runs 10 rv ls --fleet --since "$since") ms"

echo "== catalog lag: 40 recordings archived by a running daemon"
rv run > "$work/log" 2>&1 & echo $! > "$work/pid"
python3 "$(dirname "$0")/fleet_lag.py" "$work/spool" "$work/state/ledger.sqlite3" "$db" 40

echo "== this box idle for 60 s (heartbeat 10s)"
sleep 5
sql -e "SET GLOBAL userstat = 1; FLUSH USER_STATISTICS"
sleep 60
sql -e "SELECT SELECT_COMMANDS, UPDATE_COMMANDS, OTHER_COMMANDS, BYTES_RECEIVED, BYTES_SENT, TOTAL_CONNECTIONS FROM information_schema.USER_STATISTICS WHERE USER = 'rv_bench'"
kill "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true

echo "== leader sweep: 100,000 due recordings of a forgotten box among the $rows"
sql "$db" -e "DELETE FROM recvault_recordings WHERE host = 'gone'; REPLACE INTO recvault_boxes (host, identity, version, started_at, heartbeat_at, forgotten_at, forgotten_by) VALUES ('gone', LPAD('g', 32, '0'), 'bench', 0, 0, $now, 'bench')"
gen "$rows" "$(( rows + 100000 ))" "'gone'" "1735689600 + (seq - $rows) * 300"
# Each object in the store, as the box left it.
sql -N "$db" -e "SELECT object_key FROM recvault_recordings WHERE host = 'gone'" |
  python3 -c "import os, sys
for k in sys.stdin.read().split():
    p = os.path.join(sys.argv[1], k); os.makedirs(os.path.dirname(p), exist_ok=True); open(p, 'wb').close()" "$work/store"
config 2s
sql -e "FLUSH USER_STATISTICS"
rv run > "$work/log" 2>&1 & echo $! > "$work/pid"
first=""
deadline=$(( $(date +%s) + ${SWEEP_LIMIT:-3600} ))
while :; do
  n=$(sql -N "$db" -e "SELECT COUNT(*) FROM recvault_recordings WHERE host = 'gone' AND state = 'remote_deleted'")
  [ -z "$first" ] && [ "$n" -gt 0 ] && first=$(date +%s.%N)
  [ "$n" -ge 100000 ] && break
  if [ "$(date +%s)" -gt "$deadline" ]; then echo "gave up: $n of 100000 deleted"; break; fi
  sleep 1
done
[ -n "$first" ] && echo "swept $n recordings in $(elapsed "$first") s (first deletion to last)"
echo "objects left in the store: $(find "$work/store/gone" -type f | wc -l)"
sql -e "SELECT SELECT_COMMANDS, UPDATE_COMMANDS, OTHER_COMMANDS, ROWS_READ, BYTES_RECEIVED, BYTES_SENT FROM information_schema.USER_STATISTICS WHERE USER = 'rv_bench'"
sql -e "SET GLOBAL userstat = 0"
