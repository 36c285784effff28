#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 30 s each; FUZZ_SECONDS
# to change). cargo-fuzz wants nightly; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain take the -Z flags it passes. Fails on the first crash found.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
case ":$PATH:" in
*":$cargo_bin:"*) ;;
*) export PATH="$cargo_bin:$PATH" ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "fuzz.sh: installing cargo-fuzz (cargo install --locked cargo-fuzz)" >&2
	cargo install --locked cargo-fuzz
fi

seconds=${FUZZ_SECONDS:-30}
cd "$repo_root/fuzz"
for target in $(cargo fuzz list); do
	echo "==> fuzz $target for ${seconds}s"
	# pipefail: a crash fails the run even though tail succeeds.
	RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$seconds" 2>&1 | tail -n 3
done
