#!/usr/bin/env bash
# Makes sure a MariaDB answers on 127.0.0.1:3306 and that root can log in there
# over TCP without a password: what the VICIdial database tests
# (tests/integration/vicidial/) expect. Installs Debian's mariadb-server if it
# is missing and starts it without systemd if nothing answers. Idempotent:
# silent and quick when all is already so.
set -euo pipefail

port=3306
mariadbd=/usr/sbin/mariadbd

log() { echo "mariadb.sh: $*" >&2; }

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

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

root_over_tcp() {
	mariadb --protocol=tcp -h 127.0.0.1 -P "$port" -u root --connect-timeout=5 \
		-e 'SELECT 1' >/dev/null 2>&1
}

if answers && root_over_tcp; then
	exit 0
fi

if [[ ! -x $mariadbd ]]; then
	log "installing mariadb-server"
	# Keep the package's scripts from starting it (no systemd here): this
	# script starts it below. An existing policy is left as it is.
	policy=/usr/sbin/policy-rc.d
	added_policy=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
		as_root chmod 755 "$policy"
		added_policy=1
	fi
	as_root apt-get update -qq
	status=0
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		mariadb-server mariadb-client >/dev/null || status=$?
	((added_policy)) && as_root rm -f "$policy"
	((status == 0)) || {
		log "apt-get install mariadb-server failed ($status)"
		exit "$status"
	}
fi

if ! answers; then
	if [[ ! -d /var/lib/mysql/mysql ]]; then
		log "initialising /var/lib/mysql"
		as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
	fi
	as_root install -d -o mysql -g mysql -m 0755 /run/mysqld
	log "starting $mariadbd"
	as_root start-stop-daemon --start --oknodo --background --exec "$mariadbd" -- --user=mysql
	for _ in $(seq 1 120); do
		answers && break
		sleep 0.5
	done
	answers || {
		log "nothing answers on 127.0.0.1:$port after 60 s (see /var/log/mysql/, or bind-address/skip-networking in /etc/mysql/)"
		exit 1
	}
fi

if ! root_over_tcp; then
	# Debian's root@localhost logs in by unix_socket only; the tests log in
	# over TCP as root@127.0.0.1 (skip-name-resolve) or root@localhost.
	log "allowing root without a password over TCP from 127.0.0.1"
	as_root mariadb --protocol=socket -u root <<-'SQL'
		CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
		GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
		ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
		FLUSH PRIVILEGES;
	SQL
fi

root_over_tcp || {
	log "root cannot log in over TCP on 127.0.0.1:$port"
	exit 1
}
