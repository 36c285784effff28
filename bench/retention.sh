#!/bin/bash
# Retention at scale: a ledger of N recordings (default 1,000,000) inserted
# with SQL in one transaction, then timed: `recvault retention plan` (every
# due recording listed, and --totals), the selection alone (full, and one
# daemon sweep's 20 batches), and peak RSS against a 10,000-row ledger.
#
#   bench/retention.sh            # builds release binaries first
#   RECVAULT=path/to/recvault SELECT=path/to/retention_select bench/retention.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
if [ -z "${RECVAULT:-}" ]; then
    cargo build --release --bin recvault --example retention_select
    target=${CARGO_TARGET_DIR:-target}
    RECVAULT=$target/release/recvault
    SELECT=$target/release/examples/retention_select
fi
work=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

# make_site DIR ROWS: a config and a ledger of ROWS archived recordings,
# calls spread over two years, four campaigns, two active holds.
make_site() {
    local dir=$1 rows=$2 now
    now=$(date +%s)
    mkdir -p "$dir/spool" "$dir/store"
    cat > "$dir/recvault.toml" <<TOML
[spool]
dirs = ["$dir/spool"]
[store]
kind = "local"
path = "$dir/store"
[ledger]
path = "$dir/ledger.sqlite3"
[retention]
default = "180d"
[retention.campaigns]
COLLECT = "90d"
SALES = "forever"
CONSENT = "7y"
TOML
    "$RECVAULT" --config "$dir/recvault.toml" hold add BENCH-1 --reason bench --campaign OTHER --phone 5550000042 >/dev/null
    "$RECVAULT" --config "$dir/recvault.toml" hold add BENCH-2 --reason bench --agent agent7 --from 2025-01-01 --to 2025-01-31 >/dev/null
    sqlite3 "$dir/ledger.sqlite3" <<SQL
BEGIN;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $rows)
INSERT INTO recordings (path, name, dev, ino, size, mtime_ns, state, sha256, object_key,
    object_size, object_sha256, codec, first_seen, updated_at, local_deleted_at,
    attributed, campaign, call_time, phone, agent)
SELECT CAST('$dir/spool/' || i || '.wav' AS BLOB), CAST(i || '.wav' AS BLOB), 1, i, 480044,
    ($now - (i % 730) * 86400) * 1000000000, 'local_deleted', printf('%064x', i),
    'bench/' || i || '.wav.zst', 160000, printf('%064x', i + 1), 'zstd', $now, $now, $now,
    1, CASE i % 4 WHEN 0 THEN 'COLLECT' WHEN 1 THEN 'SALES' WHEN 2 THEN 'CONSENT' ELSE 'OTHER' END,
    $now - (i % 730) * 86400 - (i % 3600), '555' || printf('%07d', i % 10000000), 'agent' || (i % 50)
FROM c;
COMMIT;
SQL
}

seconds() { # seconds COMMAND...: wall time of COMMAND, output discarded
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}

echo "building a ledger of $N recordings..."
start=$(date +%s.%N)
make_site "$work/big" "$N"
echo "  inserted in $(echo "$(date +%s.%N) - $start" | bc) s ($(du -h "$work/big/ledger.sqlite3" | cut -f1))"
big="$work/big/recvault.toml"
"$RECVAULT" --config "$big" retention plan --totals
echo "retention plan (every due recording listed): $(seconds "$RECVAULT" --config "$big" retention plan) s"
echo "retention plan --totals:                     $(seconds "$RECVAULT" --config "$big" retention plan --totals) s"
echo "retention plan --campaign COLLECT --totals:  $(seconds "$RECVAULT" --config "$big" retention plan --campaign COLLECT --totals) s"
echo "selection alone, $N-row ledger:"
"$SELECT" "$big" | sed 's/^/  /'

make_site "$work/small" 10000
echo "selection alone, 10000-row ledger:"
"$SELECT" "$work/small/recvault.toml" | sed 's/^/  /'
for site in small big; do
    rss=$( { /usr/bin/time -f '%M' "$RECVAULT" --config "$work/$site/recvault.toml" retention plan >/dev/null; } 2>&1 | tail -1)
    echo "peak RSS of retention plan, $site ledger: $((rss / 1024)) MiB"
done
