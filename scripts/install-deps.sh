#!/usr/bin/env bash
# Install what the tests, demo and packaging need on Debian 12, and only what is
# missing: quiet and quick when everything is already there, so test.sh can run
# it every time.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
# Tools from `cargo install` land here, which a fresh root shell may not have on PATH.
case ":$PATH:" in
*":$cargo_bin:"*) ;;
*) export PATH="$cargo_bin:$PATH" ;;
esac

log() { echo "install-deps: $*" >&2; }

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

# A command on PATH is as good as the package (python3 from pyenv, rclone from
# its own installer); the sounds and certificates are only data, so ask dpkg
# or look for the files.
missing=()
have_pkg asterisk-core-sounds-en-wav || [[ -f /usr/share/asterisk/sounds/en/hello-world.wav ]] ||
	missing+=(asterisk-core-sounds-en-wav)
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
command -v flac >/dev/null 2>&1 || missing+=(flac)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v dpkg-shlibdeps >/dev/null 2>&1 || missing+=(dpkg-dev)
have_pkg ca-certificates || [[ -f /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)

if ((${#missing[@]})); then
	log "installing Debian packages: ${missing[*]}"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null 2>&1 || {
	log "cargo not found: install the Rust toolchain with rustup first (https://rustup.rs)"
	exit 1
}

# test.sh runs `cargo fmt` and `cargo clippy`; minimal rustup profiles lack them.
for component in rustfmt clippy; do
	sub=${component/rustfmt/fmt}
	if ! cargo "$sub" --version >/dev/null 2>&1; then
		log "adding rustup component $component"
		rustup component add "$component"
	fi
done

# moto's server mode: the S3 Object Lock tests need a server that has it (Garage has not).
if ! command -v moto_server >/dev/null 2>&1; then
	log "installing moto[server] from PyPI for the Object Lock tests"
	python3 -m pip install --quiet 'moto[server]'
fi

# garage.sh knows how to find and build Garage (pinned version, ~15 minutes).
"$repo_root/scripts/garage.sh" install

if ! command -v cargo-deb >/dev/null 2>&1; then
	log "installing cargo-deb with 'cargo install --locked cargo-deb' (a few minutes)"
	cargo install --locked cargo-deb
fi
