#!/usr/bin/env bash
# demo.sh: the whole subsync loop on this machine, no Stripe account, no
# network beyond loopback. `make demo` runs it under withservices, which
# exports TEST_DATABASE_URL for a Postgres it found or started. It builds
# bin/subsyncd, bin/stripefake and the driver, cmd/subsync-demo, which does
# the rest (see its doc) in a database of its own that it drops at the end;
# a throwaway server goes with withservices.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${TEST_DATABASE_URL:?run through make demo, which finds or starts Postgres}"
started=$SECONDS
tmp=$(mktemp -d "${TMPDIR:-/tmp}/subsync-demo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
printf '\n=== 1. Build: bin/subsyncd, bin/stripefake and the demo driver %s\n' "$(printf '=%.0s' {1..13})"
make --no-print-directory build
CGO_ENABLED=0 go build -trimpath -o "$tmp/subsync-demo" ./cmd/subsync-demo
echo "  built in $((SECONDS - started))s"
db_name="subsync_demo_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
"$tmp/subsync-demo" -bin bin -workdir "$tmp" -database-name "$db_name" -database-url "$TEST_DATABASE_URL"
printf '\n=== Done in %ss: every step did what it showed, nothing is left running\n' "$((SECONDS - started))"
