#!/usr/bin/env bash
# The test command: dependencies, a local Garage for the S3 tests, then format,
# lint and tests. Any failing step fails the run with its exit code.
#
# Garage is left running on purpose: the next run reuses it in seconds
# (scripts/garage.sh stop to stop it).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
case ":$PATH:" in
*":$cargo_bin:"*) ;;
*) export PATH="$cargo_bin:$PATH" ;;
esac

garage_dir=${RECVAULT_GARAGE_DIR:-$repo_root/.work/garage}

scripts/install-deps.sh test
scripts/garage.sh start "$garage_dir"
# The VICIdial database tests need MariaDB on 127.0.0.1:3306.
scripts/mariadb.sh

# The S3 conformance tests read RECVAULT_TEST_S3_* from the environment.
set -a
# shellcheck source=/dev/null
. "$garage_dir/env"
set +a

echo "==> cargo fmt --all -- --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "==> cargo test --all-targets"
cargo test --all-targets

echo "==> scripts/fuzz.sh"
scripts/fuzz.sh

if [[ -x scripts/check-deb.sh ]]; then
	echo "==> scripts/check-deb.sh"
	scripts/check-deb.sh
fi
