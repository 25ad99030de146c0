#!/bin/sh
# A private PostgreSQL cluster for the tests: initdb in a temp folder,
# listening on 127.0.0.1 on a free port (unix sockets in the folder too),
# fsync off (test data), trust authentication on loopback only.
#
#   tests/support/pg.sh start [DIR]  prints "export SLUICE_TEST_PG=...;
#                                    export SLUICE_TEST_PG_DIR=..." for eval
#   tests/support/pg.sh stop [DIR]   stops the cluster and removes DIR
#                                    (default $SLUICE_TEST_PG_DIR)
#   tests/support/pg.sh psql SQL     runs SQL on $SLUICE_TEST_PG
#
# PG_FSYNC=on keeps fsync and synchronous_commit on (benchmarks compare
# durable commits); tests run with them off.
#
# As root, the cluster runs as the "postgres" user (initdb refuses root),
# which must own the data folder. When no PostgreSQL binaries are found,
# start prints nothing on stdout and exits 3 (the caller decides: CI fails,
# a developer's `make test` skips the PostgreSQL variants).
set -eu

pg_bin() {
	for d in /usr/lib/postgresql/*/bin /usr/local/pgsql/bin; do
		if [ -x "$d/initdb" ]; then
			echo "$d"
			return 0
		fi
	done
	command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)" && return 0
	return 1
}

# as_owner CMD...: runs CMD as the cluster's owner.
as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

free_port() {
	# Ask the kernel for one: bind port 0 and read what it gave.
	perl -MIO::Socket::INET -e \
		'my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0) or die; print $s->sockport'
}

cmd_start() {
	bin=$(pg_bin) || {
		echo "pg.sh: PostgreSQL binaries not found (initdb); install the postgresql package" >&2
		exit 3
	}
	dir=${1:-$(mktemp -d /tmp/sluice-pg-XXXXXX)}
	mkdir -p "$dir"
	chmod 755 "$dir"
	user=$(id -un)
	if [ "$(id -u)" = 0 ]; then
		id postgres >/dev/null 2>&1 || {
			echo "pg.sh: running as root needs a 'postgres' user to own the cluster" >&2
			exit 3
		}
		chown postgres "$dir"
		user=postgres
	fi
	as_owner "$bin/initdb" -D "$dir/data" -U "$user" -A trust -E UTF8 --no-locale --no-sync \
		>"$dir/initdb.log" 2>&1 || {
		echo "pg.sh: initdb failed:" >&2
		cat "$dir/initdb.log" >&2
		exit 1
	}
	durable="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	[ "${PG_FSYNC:-off}" = on ] && durable="-c fsync=on -c synchronous_commit=on"
	tries=0
	while :; do
		port=$(free_port)
		if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
			-o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir \
$durable -c max_connections=200 -c shared_buffers=64MB" start >"$dir/pg_ctl.log" 2>&1; then
			break
		fi
		tries=$((tries + 1))
		if [ $tries -ge 3 ]; then
			echo "pg.sh: the server did not start:" >&2
			cat "$dir/server.log" >&2 2>/dev/null || true
			exit 1
		fi
	done
	as_owner "$bin/createdb" -h "$dir" -p "$port" -U "$user" sluice_test >>"$dir/pg_ctl.log" 2>&1
	echo "$port" >"$dir/port"
	echo "export SLUICE_TEST_PG=postgres://$user@127.0.0.1:$port/sluice_test"
	echo "export SLUICE_TEST_PG_DIR=$dir"
	echo "pg.sh: PostgreSQL ($(basename "$(dirname "$bin")")) on 127.0.0.1:$port, data in $dir" >&2
}

cmd_stop() {
	dir=${1:-${SLUICE_TEST_PG_DIR:-}}
	[ -n "$dir" ] && [ -d "$dir" ] || return 0
	if [ -d "$dir/data" ]; then
		if bin=$(pg_bin); then
			as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
		fi
	fi
	rm -rf "$dir"
}

cmd_psql() {
	bin=$(pg_bin)
	"$bin/psql" -X -q -t -A -v ON_ERROR_STOP=1 "${SLUICE_TEST_PG:?}" -c "$1"
}

case ${1:-} in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
psql) shift; cmd_psql "$@" ;;
*)
	echo "usage: $0 start [DIR] | stop [DIR] | psql SQL" >&2
	exit 2
	;;
esac
