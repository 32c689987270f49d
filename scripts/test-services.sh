#!/usr/bin/env bash
# test-services.sh: make sure the services the test suite needs are there,
# starting throwaway ones when none answers, and stop what it started.
#
#   scripts/test-services.sh -- <command...>
#       ensure Postgres, Redis, stripe-mock and promtool, export the variables
#       below, run the command, stop what this script started and exit with
#       the command's status.
#   source scripts/test-services.sh
#       the same setup in the current shell; what was started is stopped when
#       that shell exits (it sets an EXIT trap).
#
# Exports:
#   TEST_DATABASE_URL  Postgres URL (kept if set; else 127.0.0.1:5432/test if it
#                      answers; else a throwaway cluster on a free port)
#   TEST_REDIS_URL     Redis URL (kept if set; else 127.0.0.1:6379/0 if it
#                      answers; else a throwaway redis-server on a free port)
#   STRIPE_MOCK_BIN    stripe-mock binary (go install'ed when missing)
#   PROMTOOL_BIN       promtool (Debian package prometheus, installed when
#                      missing and running as root)
#   PROMETHEUS_BIN     prometheus server binary

TS_DEFAULT_DATABASE_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
TS_DEFAULT_REDIS_URL='redis://127.0.0.1:6379/0'
TS_STRIPE_MOCK_MODULE='github.com/stripe/stripe-mock'
TS_STRIPE_MOCK_VERSION='v0.183.0'

# What this script started, for ts_down.
TS_PG_DIR=""
TS_PG_BINDIR=""
TS_REDIS_DIR=""

ts_log() { printf 'test-services: %s\n' "$*" >&2; }
ts_err() { printf 'test-services: error: %s\n' "$*" >&2; }

# ts_free_port prints a TCP port of 127.0.0.1 that nothing listens on.
ts_free_port() {
	local port _
	for _ in $(seq 1 200); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	ts_err "no free port found"
	return 1
}

# ts_as_postgres runs a command as the postgres user when root (Postgres
# refuses to run as root), else as the current user.
ts_as_postgres() {
	if [[ $(id -u) -ne 0 ]]; then
		"$@"
	elif command -v runuser >/dev/null 2>&1; then
		runuser -u postgres -- "$@"
	else
		su -s /bin/sh postgres -c "$(printf '%q ' "$@")"
	fi
}

# ts_pg_answers URL: the server answers and the database accepts us.
ts_pg_answers() {
	if command -v psql >/dev/null 2>&1; then
		PGCONNECT_TIMEOUT=3 psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1
	elif command -v pg_isready >/dev/null 2>&1; then
		pg_isready -q -t 3 -d "$1"
	else
		return 0 # no client to check with: the tests will say
	fi
}

# ts_pg_bindir prints the directory holding initdb and pg_ctl.
ts_pg_bindir() {
	local d
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(readlink -f "$(command -v initdb)")"
		return 0
	fi
	while read -r d; do
		if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
			echo "$d"
			return 0
		fi
	done < <(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r)
	return 1
}

ts_ensure_postgres() {
	if [[ -n ${TEST_DATABASE_URL:-} ]]; then
		if ! ts_pg_answers "$TEST_DATABASE_URL"; then
			ts_err "TEST_DATABASE_URL is set but that Postgres does not answer"
			return 1
		fi
		ts_log "postgres: using TEST_DATABASE_URL"
		export TEST_DATABASE_URL
		return 0
	fi
	if ts_pg_answers "$TS_DEFAULT_DATABASE_URL"; then
		ts_log "postgres: using the server on 127.0.0.1:5432"
		export TEST_DATABASE_URL=$TS_DEFAULT_DATABASE_URL
		return 0
	fi
	# A server without the test database: create it.
	local admin='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'
	if command -v psql >/dev/null 2>&1 && ts_pg_answers "$admin" &&
		psql "$admin" -qc 'CREATE DATABASE test' >/dev/null 2>&1 &&
		ts_pg_answers "$TS_DEFAULT_DATABASE_URL"; then
		ts_log "postgres: created database test on 127.0.0.1:5432"
		export TEST_DATABASE_URL=$TS_DEFAULT_DATABASE_URL
		return 0
	fi
	ts_start_postgres
}

ts_start_postgres() {
	local bindir dir port
	if ! bindir=$(ts_pg_bindir); then
		ts_err "no Postgres answers on 127.0.0.1:5432 and no server binaries (initdb, pg_ctl) are in PATH or /usr/lib/postgresql/*/bin: install the Debian package postgresql (apt-get install -y postgresql), or set TEST_DATABASE_URL"
		return 1
	fi
	if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
		useradd --system --no-create-home --shell /usr/sbin/nologin postgres || {
			ts_err "could not create the postgres user (Postgres refuses to run as root)"
			return 1
		}
	fi
	dir=$(mktemp -d "${TMPDIR:-/tmp}/subsync-test-pg.XXXXXX") || return 1
	TS_PG_DIR=$dir TS_PG_BINDIR=$bindir
	if [[ $(id -u) -eq 0 ]]; then
		chown postgres: "$dir" || return 1
	fi
	port=$(ts_free_port) || return 1
	ts_log "postgres: starting a throwaway cluster ($bindir) on 127.0.0.1:$port"
	# initdb needs a working directory the postgres user can read.
	if ! (cd "$dir" && LC_ALL=C ts_as_postgres "$bindir/initdb" -D "$dir/data" -U postgres \
		--auth=trust --no-locale -E UTF8 --no-sync) >"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		ts_err "initdb failed"
		return 1
	fi
	if ! (cd "$dir" && LC_ALL=C ts_as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
		-o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200" \
		start) >/dev/null; then
		cat "$dir/postgres.log" >&2 2>/dev/null
		ts_err "pg_ctl start failed"
		return 1
	fi
	local createdb=$bindir/createdb
	[[ -x $createdb ]] || createdb=createdb
	if ! "$createdb" -h 127.0.0.1 -p "$port" -U postgres test; then
		ts_err "createdb test failed"
		return 1
	fi
	export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/test?sslmode=disable"
}

ts_stop_postgres() {
	[[ -n $TS_PG_DIR ]] || return 0
	if [[ -f $TS_PG_DIR/data/postmaster.pid ]]; then
		(cd "$TS_PG_DIR" && ts_as_postgres "$TS_PG_BINDIR/pg_ctl" -D "$TS_PG_DIR/data" -m immediate -w stop) >/dev/null 2>&1 ||
			ts_err "could not stop the throwaway Postgres in $TS_PG_DIR"
	fi
	rm -rf "$TS_PG_DIR"
	TS_PG_DIR=""
}

# ts_redis_ping HOST PORT
ts_redis_ping() {
	if command -v redis-cli >/dev/null 2>&1; then
		[[ $(timeout 3 redis-cli -h "$1" -p "$2" ping 2>/dev/null) == PONG ]]
	else
		(
			exec 3<>"/dev/tcp/$1/$2" || exit 1
			printf 'PING\r\n' >&3
			IFS= read -r -t 3 line <&3 || exit 1
			[[ $line == +PONG* ]]
		) 2>/dev/null
	fi
}

ts_ensure_redis() {
	if [[ -n ${TEST_REDIS_URL:-} ]]; then
		if command -v redis-cli >/dev/null 2>&1 &&
			[[ $(timeout 3 redis-cli -u "$TEST_REDIS_URL" ping 2>/dev/null) != PONG ]]; then
			ts_err "TEST_REDIS_URL is set but that Redis does not answer PING"
			return 1
		fi
		ts_log "redis: using TEST_REDIS_URL"
		export TEST_REDIS_URL
		return 0
	fi
	if ts_redis_ping 127.0.0.1 6379; then
		ts_log "redis: using the server on 127.0.0.1:6379"
		export TEST_REDIS_URL=$TS_DEFAULT_REDIS_URL
		return 0
	fi
	if ! command -v redis-server >/dev/null 2>&1; then
		ts_err "no Redis answers on 127.0.0.1:6379 and redis-server is not in PATH: install the Debian package redis-server (apt-get install -y redis-server), or set TEST_REDIS_URL"
		return 1
	fi
	local dir port _
	dir=$(mktemp -d "${TMPDIR:-/tmp}/subsync-test-redis.XXXXXX") || return 1
	TS_REDIS_DIR=$dir
	port=$(ts_free_port) || return 1
	ts_log "redis: starting a throwaway redis-server on 127.0.0.1:$port"
	if ! redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
		--daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"; then
		ts_err "redis-server failed to start"
		return 1
	fi
	for _ in $(seq 1 100); do
		if ts_redis_ping 127.0.0.1 "$port"; then
			export TEST_REDIS_URL="redis://127.0.0.1:$port/0"
			return 0
		fi
		sleep 0.1
	done
	cat "$dir/redis.log" >&2 2>/dev/null
	ts_err "the throwaway redis-server does not answer PING"
	return 1
}

ts_stop_redis() {
	[[ -n $TS_REDIS_DIR ]] || return 0
	local pid _
	if pid=$(cat "$TS_REDIS_DIR/redis.pid" 2>/dev/null) && [[ -n $pid ]]; then
		kill "$pid" 2>/dev/null
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null
	fi
	rm -rf "$TS_REDIS_DIR"
	TS_REDIS_DIR=""
}

# ts_stripe_mock_ok BIN: BIN was built from the pinned stripe-mock version
# (go version -m reads the build info; a binary without one is accepted).
ts_stripe_mock_ok() {
	local mod
	mod=$(go version -m "$1" 2>/dev/null | awk '$1 == "mod" {print $2, $3}')
	[[ -z $mod || $mod == "$TS_STRIPE_MOCK_MODULE $TS_STRIPE_MOCK_VERSION" ]]
}

ts_ensure_stripe_mock() {
	local bin gobin
	gobin=$(go env GOBIN)
	[[ -n $gobin ]] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
	for bin in "${STRIPE_MOCK_BIN:-}" "$(command -v stripe-mock 2>/dev/null)" "$gobin/stripe-mock"; do
		if [[ -n $bin && -x $bin ]] && ts_stripe_mock_ok "$bin"; then
			export STRIPE_MOCK_BIN=$bin
			return 0
		fi
	done
	ts_log "stripe-mock: go install $TS_STRIPE_MOCK_MODULE@$TS_STRIPE_MOCK_VERSION"
	if ! go install "$TS_STRIPE_MOCK_MODULE@$TS_STRIPE_MOCK_VERSION"; then
		ts_err "go install $TS_STRIPE_MOCK_MODULE@$TS_STRIPE_MOCK_VERSION failed"
		return 1
	fi
	export STRIPE_MOCK_BIN=$gobin/stripe-mock
}

ts_ensure_promtool() {
	if [[ -n ${PROMTOOL_BIN:-} && -x ${PROMTOOL_BIN:-} ]]; then
		:
	elif command -v promtool >/dev/null 2>&1; then
		PROMTOOL_BIN=$(command -v promtool)
	elif [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		ts_log "promtool: apt-get install -y prometheus"
		export DEBIAN_FRONTEND=noninteractive
		if ! apt-get install -y -q --no-install-recommends prometheus >&2; then
			apt-get update -q >&2 && apt-get install -y -q --no-install-recommends prometheus >&2 || {
				ts_err "apt-get install prometheus failed (promtool comes with the Debian package prometheus)"
				return 1
			}
		fi
		PROMTOOL_BIN=$(command -v promtool) || {
			ts_err "promtool still missing after installing the Debian package prometheus"
			return 1
		}
	else
		ts_err "promtool not found: install the Debian package prometheus (apt-get install -y prometheus)"
		return 1
	fi
	export PROMTOOL_BIN
	PROMETHEUS_BIN=$(command -v prometheus 2>/dev/null || echo /usr/bin/prometheus)
	export PROMETHEUS_BIN
}

# ts_up ensures every service; ts_down stops what ts_up started.
ts_up() {
	if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
		export PATH="/usr/local/go/bin:$PATH"
	fi
	ts_ensure_postgres &&
		ts_ensure_redis &&
		ts_ensure_stripe_mock &&
		ts_ensure_promtool
}

ts_down() {
	ts_stop_redis
	ts_stop_postgres
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -uo pipefail
	[[ ${1:-} == -- ]] && shift
	if [[ $# -eq 0 ]]; then
		echo "usage: $0 -- <command...>   (or: source $0)" >&2
		exit 2
	fi
	trap ts_down EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	ts_up || exit 1
	"$@"
	exit $?
else
	trap ts_down EXIT
	ts_up
fi
