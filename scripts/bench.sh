#!/usr/bin/env bash
# bench.sh: the benchmarks behind `make bench` (run under withservices, which
# exports TEST_DATABASE_URL). Figures go to docs/benchmarks.md with the
# machine; nothing here runs under make test.
#   scripts/bench.sh [all|sweep|webhooks]
# Environment: BENCH_SWEEP_SIZES (1000,10000,100000), BENCH_SWEEP_FLAGS,
# BENCH_WEBHOOKS_FLAGS (default "-runs 2").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=$(mktemp -d "${TMPDIR:-/tmp}/subsync-bench.XXXXXX")
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/subsyncd" ./cmd/subsyncd
go build -o "$bin/subsync-bench" ./cmd/subsync-bench
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
case ${1:-all} in
all | sweep)
	read -r -a flags <<<"${BENCH_SWEEP_FLAGS:-}"
	"$bin/subsync-bench" -subsyncd "$bin/subsyncd" -sizes "${BENCH_SWEEP_SIZES:-1000,10000,100000}" "${flags[@]}"
	;;&
all | webhooks)
	read -r -a flags <<<"${BENCH_WEBHOOKS_FLAGS:--runs 2}"
	"$bin/subsync-bench" webhooks -subsyncd "$bin/subsyncd" "${flags[@]}"
	;;
sweep) ;;
*)
	echo "usage: $0 [all|sweep|webhooks]" >&2
	exit 2
	;;
esac
