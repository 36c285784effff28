#!/usr/bin/env bash
# Set up and run recvault once on a sample VICIdial spool, archiving to a local
# store under .work/demo, then restore one recording and check it against the
# original. Starts from scratch every run, so it shows the same thing each time.
# Exits non-zero if a step or a check fails: CI runs it after the tests.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
case ":$PATH:" in
*":$cargo_bin:"*) ;;
*) export PATH="$cargo_bin:$PATH" ;;
esac

demo=$repo_root/.work/demo
count=20

fail() {
	echo "demo: FAIL: $*" >&2
	exit 1
}

scripts/install-deps.sh demo
echo "==> cargo build --release --locked"
build_started=$SECONDS
cargo build --release --locked
build_secs=$((SECONDS - build_started))
after_build=$SECONDS
# Wherever cargo put it (CARGO_TARGET_DIR, build.target-dir or ./target).
target_dir=$(cargo metadata --no-deps --format-version 1 |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
recvault=$target_dir/release/recvault
rv() { "$recvault" --config "$demo/recvault.toml" "$@"; }

# Fresh spool, ledger and store: an old ledger would say everything is done.
rm -rf "$demo"
mkdir -p "$demo"
echo "==> scripts/sample-spool.py (speech prompts from $(python3 scripts/sample-spool.py --print-sounds))"
python3 scripts/sample-spool.py --out "$demo/spool" --count "$count" \
	--min-seconds 20 --max-seconds 90 --seed 1
# Hashes taken before recvault sees the files: the restore below is checked
# against these, not only against what recvault recorded.
(cd "$demo/spool" && find . -type f -name '*.wav' -exec sha256sum {} +) >"$demo/originals.sha256"
spool_size=$(du -sh "$demo/spool" | cut -f1)

cat >"$demo/recvault.toml" <<EOF
# Written by scripts/demo.sh.
[spool]
dirs = ["$demo/spool"]
settle = "0s"
upload_after = "0s"
staging = "$demo/staging"

[compress]
codec = "flac"
level = 3

[store]
kind = "local"
path = "$demo/store"

[ledger]
path = "$demo/ledger.sqlite3"
EOF

echo "==> recvault run --once"
rv run --once
echo "==> recvault status"
rv status
echo "==> recvault ls   (id, state, call time, bytes, codec, object key, file name)"
listing=$(rv ls)
echo "$listing"

archived=$(grep -c $'\tlocal_deleted\t' <<<"$listing" || true)
((archived == count)) || fail "$archived of $count recordings archived and deleted locally; see the listing above"

# One real archived recording: its object key (unique, unlike VICIdial names).
IFS=$'\t' read -r _id _state _time _bytes _codec key name <<<"$(grep -m 1 $'\tlocal_deleted\t' <<<"$listing")"
restored=$demo/restored/$name
mkdir -p "$demo/restored"
restore=("$recvault" --config "$demo/recvault.toml" restore "$key" -o "$restored")
printf -v restore_line '%q ' "${restore[@]}"
echo
echo "==> restore one recording (to do it yourself, paste this; a second time, add --force or change -o):"
echo "${restore_line% }"
"${restore[@]}"
original=$(awk -v n="./$name" '$2 == n { print $1 }' "$demo/originals.sha256")
[[ -n $original ]] || fail "no SHA-256 recorded for $name before archiving"
got=$(sha256sum "$restored" | cut -d' ' -f1)
[[ $got == "$original" ]] || fail "$restored has SHA-256 $got, the original had $original"
echo "sha256sum: restored file = original before archiving ($got)"

echo
echo "Spool:    $demo/spool ($(find "$demo/spool" -type f -name '*.wav' | wc -l) recordings left, $(du -sh "$demo/spool" | cut -f1))"
echo "Store:    $demo/store ($(find "$demo/store" -path "$demo/store/.recvault-meta" -prune -o -type f -print | wc -l) objects, $(du -sh "$demo/store" | cut -f1); the spool was $spool_size)"
echo "Ledger:   $demo/ledger.sqlite3"
echo "Config:   $demo/recvault.toml"
echo "Restored: $restored"
echo "demo: done: build ${build_secs}s, everything after the build $((SECONDS - after_build))s"
