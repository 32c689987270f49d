#!/usr/bin/env bash
# bench.sh: the subscription sweep benchmark behind `make bench` (run under
# withservices, which exports TEST_DATABASE_URL): `subsyncd reconcile --job
# subscriptions` against the Stripe fake for each size, then with latency.
# Figures go to docs/benchmarks.md with the machine. Not part of make test.
# Environment: BENCH_SWEEP_SIZES (1000,10000,100000), BENCH_SWEEP_FLAGS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=$(mktemp -d "${TMPDIR:-/tmp}/subsync-bench.XXXXXX")
trap 'rm -rf "$bin"' EXIT
read -r -a flags <<<"${BENCH_SWEEP_FLAGS:-}"
go build -o "$bin/subsyncd" ./cmd/subsyncd
go build -o "$bin/subsync-bench" ./cmd/subsync-bench
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
"$bin/subsync-bench" -subsyncd "$bin/subsyncd" -sizes "${BENCH_SWEEP_SIZES:-1000,10000,100000}" "${flags[@]}"
