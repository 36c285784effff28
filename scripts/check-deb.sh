#!/usr/bin/env bash
# CI check for the Debian package. Builds it (scripts/build-deb.sh), checks
# its contents, installs it on this machine (no systemd as PID 1 needed),
# runs the installed binary and systemd-analyze on the installed unit, then
# removes and purges it. Must run as root. Leaves the machine as it found it:
# whatever this script created (package, users, groups, spool) is removed on
# exit, also on failure.
#
# Usage: scripts/check-deb.sh [path/to/recvault_VERSION_amd64.deb]
#   With a path, that package is checked instead of building one.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Tools from `cargo install` (cargo-deb) land here; a fresh root shell may not
# have it on PATH.
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
case ":$PATH:" in
*":$cargo_bin:"*) ;;
*) export PATH="$cargo_bin:$PATH" ;;
esac

MAX_EXPOSURE=2.0
UNIT=/lib/systemd/system/recvault.service
CONFIG=/etc/recvault/recvault.toml
STATE_DIR=/var/lib/recvault
SPOOL=/var/spool/asterisk/monitorDONE
export DEBIAN_FRONTEND=noninteractive

fail() {
    echo "check-deb: FAIL: $*" >&2
    exit 1
}
ok() { echo "check-deb: ok: $*"; }

[[ $(id -u) -eq 0 ]] || fail "must run as root (it installs and purges the package)"

apt_updated=0
# ensure_tool COMMAND PACKAGE: install PACKAGE from Debian if COMMAND is missing.
ensure_tool() {
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "check-deb: installing $2 for $1" >&2
    if [[ $apt_updated -eq 0 ]]; then
        apt-get update -qq
        apt_updated=1
    fi
    apt-get install -y -qq "$2" >/dev/null
    command -v "$1" >/dev/null 2>&1 || fail "$1 still missing after installing $2"
}
ensure_tool dpkg-deb dpkg
ensure_tool jq jq
ensure_tool systemd-analyze systemd
ensure_tool man man-db
ensure_tool adduser adduser
ensure_tool setpriv util-linux
ensure_tool shellcheck shellcheck
ensure_tool lintian lintian

# --- remember what was here, so the cleanup removes only what we created ----
if dpkg-query -W -f='${Status}' recvault 2>/dev/null | grep -qv 'not-installed'; then
    echo "check-deb: recvault is already installed or half-installed; purging it first" >&2
    dpkg -P recvault >/dev/null
fi
had_user=0; getent passwd recvault >/dev/null && had_user=1
had_group=0; getent group recvault >/dev/null && had_group=1
had_asterisk=0; getent group asterisk >/dev/null && had_asterisk=1
had_spool=0; [[ -e $SPOOL ]] && had_spool=1
# The topmost spool directory this script creates, if any.
created_spool_root=""

cleanup() {
    local rc=$?
    set +e
    if dpkg-query -W -f='${Status}' recvault 2>/dev/null | grep -qv 'not-installed'; then
        dpkg -P recvault >/dev/null 2>&1
    fi
    if [[ $had_user -eq 0 ]] && getent passwd recvault >/dev/null; then
        userdel recvault
    fi
    if [[ $had_group -eq 0 ]] && getent group recvault >/dev/null; then
        groupdel recvault
    fi
    if [[ -n $created_spool_root ]]; then
        rm -rf "$created_spool_root"
    fi
    if [[ $had_asterisk -eq 0 ]] && getent group asterisk >/dev/null; then
        groupdel asterisk
    fi
    rm -rf "${work:-}"
    if [[ $rc -eq 0 ]]; then
        echo "check-deb: all checks passed; machine cleaned"
    else
        echo "check-deb: failed (exit $rc); machine cleaned" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
work=$(mktemp -d)

# --- static checks on the packaging sources ---------------------------------
shellcheck -s sh packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm
shellcheck scripts/build-deb.sh scripts/check-deb.sh
ok "shellcheck: maintainer scripts and build scripts"

package_json=$(cargo metadata --no-deps --format-version 1 \
    | jq '.packages[] | select(.name == "recvault")')
[[ $(jq '.metadata.deb != null' <<<"$package_json") == true ]] \
    || fail "Cargo.toml has no [package.metadata.deb]: paste packaging/cargo-deb.toml.fragment at its end"
version=$(jq -r .version <<<"$package_json")
# Debian's synopsis is the first Description line, at most 79 characters;
# cargo-deb wraps a longer Cargo.toml description into the long text.
description=$(jq -r .description <<<"$package_json")
[[ ${#description} -le 79 ]] \
    || fail "Cargo.toml description is ${#description} characters; Debian's synopsis allows 79: shorten it"
ok "Cargo.toml has the package metadata and a short description"
changelog_version=$(sed -n '1s/^recvault (\([^)]*\)).*/\1/p' packaging/changelog)
[[ $changelog_version == "$version" ]] \
    || fail "packaging/changelog is at '$changelog_version' but Cargo.toml at '$version'; add a changelog entry"
ok "packaging/changelog matches version $version"

# --- build -------------------------------------------------------------------
if [[ $# -ge 1 ]]; then
    deb=$1
else
    deb=$(bash scripts/build-deb.sh | tail -n 1)
fi
[[ -f $deb ]] || fail "no package at '$deb'"
[[ $(basename "$deb") == "recvault_${version}_amd64.deb" ]] \
    || fail "package is named $(basename "$deb"), expected recvault_${version}_amd64.deb"
ok "built $deb"

# --- package contents ----------------------------------------------------------
field() { dpkg-deb --field "$deb" "$1"; }
[[ $(field Package) == recvault ]] || fail "Package: $(field Package)"
[[ $(field Version) == "$version" ]] || fail "Version: $(field Version), expected $version"
[[ $(field Architecture) == amd64 ]] || fail "Architecture: $(field Architecture)"
[[ $(field Section) == admin ]] || fail "Section: $(field Section), expected admin"
[[ $(field Priority) == optional ]] || fail "Priority: $(field Priority), expected optional"
field Depends | grep -Eq '(^|, )adduser($|,| )' || fail "Depends lacks adduser: $(field Depends)"
field Depends | grep -Eq 'libc6' || fail "Depends lacks the \$auto libc6 dependency: $(field Depends)"
ok "control fields (Depends: $(field Depends))"

dpkg-deb --control "$deb" "$work/control"
grep -qx /etc/recvault/recvault.toml "$work/control/conffiles" 2>/dev/null \
    || fail "/etc/recvault/recvault.toml is not a conffile"
for script in postinst prerm postrm; do
    [[ -x $work/control/$script ]] || fail "maintainer script $script missing or not executable"
    cmp -s "$work/control/$script" "packaging/debian/$script" \
        || fail "packaged $script differs from packaging/debian/$script"
done
ok "conffiles and maintainer scripts"

dpkg-deb -c "$deb" >"$work/contents"
# expect_file PATH MODE: PATH is in the package, owned by root, with MODE
# (as ls prints it).
expect_file() {
    local path=$1 mode=$2 line
    line=$(awk -v p="./$path" '$NF == p' "$work/contents")
    [[ -n $line ]] || fail "package lacks /$path"
    read -r got_mode got_owner _ <<<"$line"
    [[ $got_mode == "$mode" ]] || fail "/$path has mode $got_mode, expected $mode"
    [[ $got_owner == root/root || $got_owner == 0/0 ]] \
        || fail "/$path is owned by $got_owner, expected root (0/0)"
}
expect_file usr/bin/recvault -rwxr-xr-x
expect_file lib/systemd/system/recvault.service -rw-r--r--
expect_file etc/recvault/recvault.toml -rw-r-----
expect_file usr/share/man/man1/recvault.1.gz -rw-r--r--
expect_file usr/share/bash-completion/completions/recvault -rw-r--r--
expect_file usr/share/zsh/vendor-completions/_recvault -rw-r--r--
expect_file usr/share/doc/recvault/README.md -rw-r--r--
expect_file usr/share/doc/recvault/README.Debian -rw-r--r--
expect_file usr/share/doc/recvault/copyright -rw-r--r--
expect_file usr/share/doc/recvault/changelog.gz -rw-r--r--
expect_file usr/share/lintian/overrides/recvault -rw-r--r--
expect_file usr/share/doc/recvault/examples/recvault.toml -rw-r--r--
ok "package contents and modes"

# The generated assets are real: roff with a .TH, bash that parses.
dpkg-deb -x "$deb" "$work/root"
zcat "$work/root/usr/share/man/man1/recvault.1.gz" | grep -q '^\.TH' \
    || fail "man page has no .TH header"
bash -n "$work/root/usr/share/bash-completion/completions/recvault" \
    || fail "bash completion does not parse"
if command -v zsh >/dev/null 2>&1; then
    zsh -n "$work/root/usr/share/zsh/vendor-completions/_recvault" || fail "zsh completion does not parse"
fi
ok "man page and completions"
cmp -s "$work/root/lib/systemd/system/recvault.service" systemd/recvault.service \
    || fail "packaged unit differs from systemd/recvault.service"
cmp -s "$work/root/etc/recvault/recvault.toml" config.example.toml \
    || fail "packaged /etc/recvault/recvault.toml differs from config.example.toml"
ok "packaged unit and config are the repository's"
# Debian 12's lintian; intentional deviations are in packaging/lintian-overrides.
lintian --fail-on error,warning "$deb" 2>/dev/null \
    || fail "lintian reports errors or warnings (lintian -i $deb for details)"
ok "lintian: no errors or warnings"

# --- install ---------------------------------------------------------------
# A machine without an asterisk group must install cleanly (with a notice);
# a dialer has the group and the user must land in it. Test both when we can.
if [[ $had_asterisk -eq 0 ]]; then
    dpkg -i "$deb" >"$work/install-nogroup.log" 2>&1 \
        || { cat "$work/install-nogroup.log" >&2; fail "dpkg -i without an asterisk group"; }
    grep -q "no 'asterisk' group" "$work/install-nogroup.log" \
        || fail "postinst did not say that the asterisk group is missing"
    ok "installs without an asterisk group, and says so"
    dpkg -r recvault >/dev/null
    groupadd --system asterisk
fi
if [[ $had_spool -eq 0 ]]; then
    created_spool_root=/var/spool/asterisk
    [[ -e $created_spool_root ]] && created_spool_root=$SPOOL
    # As on a dialer: the asterisk group may write the finished spool.
    install -d -m 0755 /var/spool/asterisk
    install -d -g asterisk -m 2775 "$SPOOL"
fi

dpkg -i "$deb" >"$work/install.log" 2>&1 \
    || { cat "$work/install.log" >&2; fail "dpkg -i $deb"; }
ok "dpkg -i (systemd as PID 1: $([[ -d /run/systemd/system ]] && echo yes || echo no))"

# Identity and permissions.
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd recvault) || fail "no recvault user"
[[ $uid -lt 1000 ]] || fail "recvault is not a system user (uid $uid)"
[[ $home == "$STATE_DIR" ]] || fail "recvault home is $home, expected $STATE_DIR"
[[ $shell == /usr/sbin/nologin ]] || fail "recvault shell is $shell, expected /usr/sbin/nologin"
id -nG recvault | tr ' ' '\n' | grep -qx asterisk || fail "recvault is not in the asterisk group: $(id -nG recvault)"
ok "recvault system user (uid $uid) in groups: $(id -nG recvault)"

# expect_stat PATH OWNER:GROUP MODE
expect_stat() {
    local got
    got=$(stat -c '%U:%G %a' "$1") || fail "$1 missing"
    [[ $got == "$2 $3" ]] || fail "$1 is '$got', expected '$2 $3'"
}
expect_stat /usr/bin/recvault root:root 755
expect_stat "$UNIT" root:root 644
expect_stat /etc/recvault root:recvault 750
expect_stat "$CONFIG" root:recvault 640
expect_stat /etc/recvault/link.key root:recvault 640
[[ $(tr -d '\n' </etc/recvault/link.key | wc -c) -ge 32 ]] || fail "/etc/recvault/link.key is shorter than 32 bytes"
expect_stat "$STATE_DIR" recvault:recvault 750
ok "installed ownership and modes"

[[ -L /etc/systemd/system/multi-user.target.wants/recvault.service ]] \
    || fail "the unit is not enabled (no multi-user.target.wants link)"
ok "unit enabled, not started"

# The binary.
recvault --version | grep -qF "$version" || fail "recvault --version: '$(recvault --version)'"
ok "recvault --version: $(recvault --version)"
recvault check --offline --config "$CONFIG" || fail "recvault check --offline --config $CONFIG (as root)"
# As the unit's ExecStartPre runs it: as recvault, with its groups.
setpriv --reuid=recvault --regid=recvault --init-groups \
    recvault check --offline --config "$CONFIG" \
    || fail "recvault check --offline as the recvault user"
ok "recvault check --offline (as root and as recvault)"
# The unit's privileged ExecStartPre (move_mix is off in the shipped config).
recvault vicidial cron-check --config "$CONFIG" >/dev/null \
    || fail "recvault vicidial cron-check --config $CONFIG (as root, as the unit runs it)"
ok "recvault vicidial cron-check (as root)"
setpriv --reuid=recvault --regid=recvault --init-groups \
    sh -c "touch '$SPOOL/.check-deb' && rm '$SPOOL/.check-deb'" \
    || fail "the recvault user cannot create and delete files in $SPOOL"
ok "recvault can write and delete in $SPOOL"
man -w recvault >/dev/null || fail "man recvault: no page found"

# The unit, as installed. verify exits 0 on unknown keys and bad values, so
# any output at all is a failure.
verify_out=$(systemd-analyze verify "$UNIT" 2>&1) || fail "systemd-analyze verify: $verify_out"
[[ -z $verify_out ]] || fail "systemd-analyze verify printed: $verify_out"
ok "systemd-analyze verify $UNIT"

systemd-analyze security --offline=true "$UNIT" >"$work/security.txt" 2>&1 || true
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$work/security.txt")
[[ -n $exposure ]] || { cat "$work/security.txt" >&2; fail "no exposure level from systemd-analyze security"; }
echo "check-deb: systemd-analyze security exposure: $exposure (limit $MAX_EXPOSURE)"
awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }' \
    || { grep '✗' "$work/security.txt" >&2 || true; fail "exposure $exposure > $MAX_EXPOSURE"; }
ok "exposure $exposure <= $MAX_EXPOSURE"

# --- remove keeps the ledger, purge deletes it ------------------------------
touch "$STATE_DIR/ledger.sqlite3"
dpkg -r recvault >"$work/remove.log" 2>&1 || { cat "$work/remove.log" >&2; fail "dpkg -r"; }
[[ ! -e /usr/bin/recvault ]] || fail "/usr/bin/recvault still there after dpkg -r"
[[ -f $STATE_DIR/ledger.sqlite3 ]] || fail "dpkg -r deleted $STATE_DIR"
[[ -f $CONFIG ]] || fail "dpkg -r deleted the conffile $CONFIG"
ok "dpkg -r keeps $STATE_DIR and $CONFIG"

dpkg -P recvault >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "dpkg -P"; }
[[ ! -e $STATE_DIR ]] || fail "dpkg -P left $STATE_DIR"
[[ ! -e /etc/recvault ]] || fail "dpkg -P left /etc/recvault"
! dpkg-statoverride --list | grep -q recvault || fail "dpkg -P left statoverrides: $(dpkg-statoverride --list | grep recvault)"
for link in /etc/systemd/system/multi-user.target.wants/recvault.service /etc/systemd/system/recvault.service; do
    [[ ! -e $link && ! -L $link ]] || fail "dpkg -P left $link"
done
ok "dpkg -P removes $STATE_DIR, /etc/recvault, statoverrides and unit links"
