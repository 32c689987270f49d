#!/usr/bin/env bash
# demo.sh: the whole subsync loop on this machine, no Stripe account, no
# network beyond loopback. `make demo` runs it under scripts/test-services.sh,
# which exports TEST_DATABASE_URL (and TEST_REDIS_URL) for a Postgres (and a
# Redis) it found or started.
#
#   1. build bin/subsyncd and bin/stripefake (make build), and the demo driver
#   2-9. cmd/subsync-demo: a fresh database subsync_demo_<random>; the Stripe
#      fake seeded with subscriptions across the three plans; subsyncd serve;
#      signed webhooks, some dropped; changes in Stripe whose webhooks are
#      lost and rows corrupted by hand; subsyncd reconcile --dry-run, then
#      reconcile, then --dry-run again; the final table and metrics; shutdown.
#
# Exits 0 when every step did what it shows, non-zero with a message
# otherwise. Whatever happens, nothing is left behind: the driver stops
# subsyncd and drops its database, and the EXIT trap below kills the driver
# if it is still running, drops the database if it still exists and removes
# the temporary directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
: "${TEST_DATABASE_URL:=postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
export TEST_DATABASE_URL

started=$SECONDS
tmp=$(mktemp -d "${TMPDIR:-/tmp}/subsync-demo.XXXXXX")
db_name="subsync_demo_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
driver_pid=""

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	if [[ -n $driver_pid ]] && kill -0 "$driver_pid" 2>/dev/null; then
		kill -TERM "$driver_pid" 2>/dev/null || true
		wait "$driver_pid" 2>/dev/null || true
	fi
	# Backstop: the driver drops its database itself; if it died first, do it here.
	if command -v psql >/dev/null 2>&1 &&
		[[ $(PGCONNECT_TIMEOUT=5 psql "$TEST_DATABASE_URL" -Atqc \
			"SELECT 1 FROM pg_database WHERE datname = '$db_name'" 2>/dev/null) == 1 ]]; then
		echo "demo: dropping the leftover database $db_name" >&2
		psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null 2>&1 ||
			echo "demo: could not drop database $db_name" >&2
	fi
	rm -rf "$tmp"
	if [[ $status -ne 0 ]]; then
		echo "demo: FAILED (exit status $status)" >&2
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# header TEXT prints a section header padded to 78 columns, as the driver does.
header() {
	local line="=== $1 "
	while [[ ${#line} -lt 78 ]]; do line+="="; done
	printf '\n%s\n' "$line"
}

header "1. Build: bin/subsyncd, bin/stripefake and the demo driver"
make --no-print-directory build
CGO_ENABLED=0 go build -trimpath -o "$tmp/subsync-demo" ./cmd/subsync-demo
echo "  built in $((SECONDS - started))s"

# In the background and waited for, so that a signal reaches the trap at once.
"$tmp/subsync-demo" -bin bin -workdir "$tmp" -database-name "$db_name" -database-url "$TEST_DATABASE_URL" &
driver_pid=$!
status=0
wait "$driver_pid" || status=$?
driver_pid=""
if [[ $status -ne 0 ]]; then
	exit "$status"
fi

header "Done in $((SECONDS - started))s: every step did what it showed, nothing is left running"
