#!/usr/bin/env bash
# Set up and run recvault once on a sample VICIdial spool, archiving to a local
# store under .work/demo. Starts from scratch every run, so it shows the same
# thing each time.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
case ":$PATH:" in
*":$cargo_bin:"*) ;;
*) export PATH="$cargo_bin:$PATH" ;;
esac

demo=$repo_root/.work/demo
recvault=${CARGO_TARGET_DIR:-$repo_root/target}/release/recvault

scripts/install-deps.sh
cargo build --release

# Fresh spool, ledger and store: an old ledger would say everything is done.
rm -rf "$demo"
mkdir -p "$demo"
python3 scripts/sample-spool.py --out "$demo/spool" --count 20 \
	--min-seconds 20 --max-seconds 90 --seed 1

cat >"$demo/recvault.toml" <<EOF
# Written by scripts/demo.sh.
[spool]
dirs = ["$demo/spool"]
settle = "0s"
upload_after = "0s"
staging = "$demo/staging"

[compress]
codec = "zstd"
level = 3

[store]
kind = "local"
path = "$demo/store"

[ledger]
path = "$demo/ledger.sqlite3"
EOF

echo "==> recvault run --once"
"$recvault" --config "$demo/recvault.toml" run --once
echo "==> recvault status"
"$recvault" --config "$demo/recvault.toml" status

echo
echo "Spool:  $demo/spool ($(du -sh "$demo/spool" | cut -f1))"
if [[ -d $demo/store ]]; then
	echo "Store:  $demo/store ($(find "$demo/store" -path "$demo/store/.recvault-meta" -prune -o -type f -print | wc -l) objects, $(du -sh "$demo/store" | cut -f1))"
else
	echo "Store:  $demo/store (empty)"
fi
echo "Ledger: $demo/ledger.sqlite3"
echo "Config: $demo/recvault.toml"
echo "Try:    $recvault --config $demo/recvault.toml ls"
