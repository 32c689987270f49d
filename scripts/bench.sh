#!/usr/bin/env bash
# bench.sh: the benchmarks behind `make bench`, which runs this script through
# scripts/test-services.sh (it provides TEST_DATABASE_URL). Each section
# prints its figures; docs/benchmarks.md records them with the machine.
# Nothing here runs under `make test`.
#
#   scripts/bench.sh            every section
#   scripts/bench.sh sweep      only the subscription sweep
#   scripts/bench.sh webhooks   only webhook ingest and apply against pgbench
#
# Environment: BENCH_SWEEP_SIZES (default 1000,10000,100000),
# BENCH_SWEEP_FLAGS (extra subsync-bench flags, e.g. "-skip-latency"),
# BENCH_WEBHOOKS_FLAGS (extra flags of subsync-bench webhooks, e.g.
# "-cases default,hot -old-events 1000000"; default "-runs 2").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
only=${1:-all}
bin=$(mktemp -d "${TMPDIR:-/tmp}/subsync-bench.XXXXXX")
trap 'rm -rf "$bin"' EXIT

section() { printf '\n==> %s\n' "$*"; }

# The subscription sweep: `subsyncd reconcile --job subscriptions` against
# the Stripe fake for each size (first an empty table, then a table in sync),
# then with 100 ms of latency per request and the limiter at 100/s.
bench_sweep() {
	section "subscription sweep (cmd/subsync-bench)"
	go build -o "$bin/subsyncd" ./cmd/subsyncd
	go build -o "$bin/subsync-bench" ./cmd/subsync-bench
	local flags=()
	read -r -a flags <<<"${BENCH_SWEEP_FLAGS:-}"
	echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
	"$bin/subsync-bench" -subsyncd "$bin/subsyncd" -sizes "${BENCH_SWEEP_SIZES:-1000,10000,100000}" "${flags[@]}"
}

# Webhook ingest and apply: `subsyncd serve` taking signed webhooks until
# every one is applied, against pgbench running the same per-event SQL on
# the same server (cases default, hot, refetch; see cmd/subsync-bench).
bench_webhooks() {
	section "webhook ingest and apply against pgbench (cmd/subsync-bench webhooks)"
	go build -o "$bin/subsyncd" ./cmd/subsyncd
	go build -o "$bin/subsync-bench" ./cmd/subsync-bench
	local flags=()
	read -r -a flags <<<"${BENCH_WEBHOOKS_FLAGS:--runs 2}"
	"$bin/subsync-bench" webhooks -subsyncd "$bin/subsyncd" "${flags[@]}"
}

case $only in
all)
	bench_sweep
	bench_webhooks
	;;
sweep) bench_sweep ;;
webhooks) bench_webhooks ;;
*)
	echo "usage: $0 [sweep|webhooks]" >&2
	exit 2
	;;
esac
