#!/bin/bash
# The compliance console at scale: a ledger of N recordings (default
# 1,000,000, inserted with SQL as bench/retention.sh does), the daemon
# serving /console/ on 127.0.0.1, and M searches of every kind (a phone, an
# agent, a campaign over a month, a state, held or not, sorted on each
# column, deep pages) timed with curl: p50, p95 and the slowest. Also the
# bytes a first visit to the search page loads (HTML, stylesheet, icon).
#
#   bench/console.sh                  # release build first
#   RECVAULT=target/debug/recvault bench/console.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
ROUNDS=${ROUNDS:-5}
if [ -z "${RECVAULT:-}" ]; then
    cargo build --release --bin recvault
    RECVAULT=${CARGO_TARGET_DIR:-target}/release/recvault
fi
work=$(mktemp -d)
daemon=
cleanup() {
    if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true; fi
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
port=$((20000 + RANDOM % 20000))
now=$(date +%s)
mkdir -p "$work/spool"
head -c 48 /dev/urandom | base64 > "$work/link.key"
cat > "$work/recvault.toml" <<TOML
[spool]
dirs = ["$work/spool"]
staging = "$work/staging"
min_free = "none"
[ledger]
path = "$work/ledger.sqlite3"
backup_every = "0s"
[daemon]
host = "bench"
[serve]
listen = "127.0.0.1:$port"
key_file = "$work/link.key"
cache_dir = "$work/cache"
client_rate = 10000
[console]
enabled = true
TOML
R() { "$RECVAULT" --config "$work/recvault.toml" "$@"; }
if [ -n "${LEDGER:-}" ]; then
    echo "copying the ledger $LEDGER..."
    cp "$LEDGER" "$work/ledger.sqlite3"
else
echo "building a ledger of $N recordings..."
# A hold on one call (recording 43 is campaign OTHER, phone 5550000043).
R hold add BENCH-1 --reason bench --campaign OTHER --phone 5550000043 >/dev/null
sqlite3 "$work/ledger.sqlite3" <<SQL
BEGIN;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $N)
INSERT INTO recordings (path, name, dev, ino, size, mtime_ns, state, sha256, object_key,
    object_size, object_sha256, codec, first_seen, updated_at, local_deleted_at,
    attributed, campaign, call_time, phone, agent, lead_id)
SELECT CAST('$work/spool/' || i || '.wav' AS BLOB), CAST(i || '.wav' AS BLOB), 1, i, 480044 + i % 1000,
    ($now - (i % 730) * 86400) * 1000000000, 'local_deleted', printf('%064x', i),
    'bench/' || i || '.wav.zst', 160000, printf('%064x', i + 1), 'zstd', $now, $now, $now,
    1, CASE i % 4 WHEN 0 THEN 'COLLECT' WHEN 1 THEN 'SALES' WHEN 2 THEN 'CONSENT' ELSE 'OTHER' END,
    $now - (i % 730) * 86400 - (i % 3600), '555' || printf('%07d', i % 10000000), 'agent' || (i % 50),
    'L' || (i % 200000)
FROM c;
COMMIT;
SQL
fi
echo "  $(du -h "$work/ledger.sqlite3" | cut -f1)"
[ -n "${KEEP:-}" ] && echo "kept: $work"
echo "bench-password-long" | R console user add bench --role compliance >/dev/null
# The binary itself in the background ($! is its pid, not a subshell's).
"$RECVAULT" --config "$work/recvault.toml" run 2>"$work/daemon.log" &
daemon=$!
base="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -fs "$base/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
jar="$work/jar"
page=$(curl -s -c "$jar" -b "$jar" "$base/console/login")
token=$(grep -o 'name="csrf" value="[0-9a-f]*"' <<<"$page" | head -1 | sed 's/.*value="//;s/"//')
curl -s -c "$jar" -b "$jar" -o /dev/null --data-urlencode "csrf=$token" \
    --data-urlencode user=bench --data-urlencode password=bench-password-long "$base/console/login"

month_from=$(date -d "@$((now - 45 * 86400))" +%F)
month_to=$(date -d "@$((now - 15 * 86400))" +%F)
queries=(
    "phone=%2B1+(555)+000-0042"
    "phone=5551234567"
    "agent=agent7"
    "agent=agent7&sort=size&dir=desc"
    "campaign=SALES&from=$month_from&to=$month_to"
    "lead=L4242"
    "state=local_deleted&per=200"
    "held=yes"
    "held=no&page=100"
    "campaign=COLLECT&sort=campaign&page=500"
    "from=$month_from&to=$month_to&sort=agent"
    "phone=5550000043&held=yes"
)
times=()
for round in $(seq "$ROUNDS"); do
    for k in "${!queries[@]}"; do
        q=${queries[$k]}
        t=$(curl -s -b "$jar" -o "$work/page.html" -w '%{http_code} %{time_total}' "$base/console/search?$q")
        [ "${t%% *}" = 200 ] || { echo "search $q: ${t%% *}"; cat "$work/page.html"; exit 1; }
        times+=("${t#* }")
        echo "${t#* }" >> "$work/kind.$k"
    done
done
# p-th percentile (nearest rank) of the sorted numbers in file $2.
pick() { local n; n=$(wc -l < "$2"); sed -n "$(( ($1 * n + 99) / 100 ))p" "$2"; }
echo "per kind, over $ROUNDS rounds (p50, p95):"
for k in "${!queries[@]}"; do
    sort -n "$work/kind.$k" -o "$work/kind.$k"
    printf '  %-50s %s s  %s s\n' "${queries[$k]}" "$(pick 50 "$work/kind.$k")" "$(pick 95 "$work/kind.$k")"
done
printf '%s\n' "${times[@]}" | sort -n > "$work/times"
count=$(wc -l < "$work/times")
echo "console search over $N recordings, ${#queries[@]} kinds x $ROUNDS rounds ($count requests):"
echo "  p50 $(pick 50 "$work/times") s, p95 $(pick 95 "$work/times") s, slowest $(tail -1 "$work/times") s"
html=$(curl -s -b "$jar" -o /dev/null -w '%{size_download}' "$base/console/search?phone=5551234567")
css=$(curl -s -b "$jar" -o /dev/null -w '%{size_download}' "$base/console/assets/console.css")
icon=$(curl -s -b "$jar" -o /dev/null -w '%{size_download}' "$base/console/assets/favicon.svg")
echo "first load of the search page: $((html + css + icon)) bytes (HTML $html, CSS $css, icon $icon; no script)"
