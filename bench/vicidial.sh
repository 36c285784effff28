#!/bin/bash
# Attribution at scale: a VICIdial database of 1,000,000 recording_log rows
# (plus vicidial_log, vicidial_closer_log, leads and lists) built in MariaDB on
# 127.0.0.1:3306, EXPLAIN of every statement recvault sends, then 10,000
# recordings attributed three times in batches and three times one by one.
# Target: >= 1,000 recordings/s.
#
#   bench/vicidial.sh                 # release build, 1,000,000 rows, 10,000 names
#   ROWS=100000 NAMES=2000 bench/vicidial.sh
#   KEEP=1 bench/vicidial.sh          # keep database rv_bench afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/mariadb.sh
cargo build --release --example vicidial_attribution
"${CARGO_TARGET_DIR:-target}/release/examples/vicidial_attribution" "${ROWS:-1000000}" "${NAMES:-10000}"
