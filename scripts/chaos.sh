#!/usr/bin/env bash
# chaos.sh: the full-size chaos scenario (`make chaos`). The scenario starts
# its own throwaway Postgres cluster and Redis (it restarts and crashes
# them), builds subsyncd and runs it as a child process against the Stripe
# fake; see chaos/doc.go.
#
# Environment (defaults here are the full size; `make test` runs the small
# default of the test itself):
#   CHAOS_SUBSCRIPTIONS (200), CHAOS_CHANGES (2000), CHAOS_FAULTS,
#   CHAOS_PACE, CHAOS_SEED, CHAOS_CONVERGE_TIMEOUT, CHAOS_SWEEP_SCHEDULE,
#   CHAOS_APPLY_MODE (refetch, or payload),
#   CHAOS_TIMEOUT (go test -timeout, 30m).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CHAOS_SUBSCRIPTIONS=${CHAOS_SUBSCRIPTIONS:-200}
export CHAOS_CHANGES=${CHAOS_CHANGES:-2000}

echo "chaos: ${CHAOS_SUBSCRIPTIONS} subscriptions, ${CHAOS_CHANGES} changes" \
	"(go test -count=1 -run TestChaos -v -timeout ${CHAOS_TIMEOUT:-30m} ./chaos/)"
exec go test -count=1 -run '^TestChaos$' -v -timeout "${CHAOS_TIMEOUT:-30m}" ./chaos/
