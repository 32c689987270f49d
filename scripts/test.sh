#!/usr/bin/env bash
# test.sh: the whole suite (`make test`): gofmt, go vet, go test ./... (the
# Go test kit, internal/testenv, finds or starts Postgres, Redis,
# stripe-mock and promtool; the chaos scenario runs in refetch mode), the
# chaos scenario again in payload mode (with a sweep every 10 s, which
# repairs what events created in the same second leave), then a fuzz smoke
# of every Fuzz target.
#   scripts/test.sh lint    gofmt and go vet only
# Environment: GO_TEST_FLAGS (e.g. -race), GO_TEST_TIMEOUT (20m),
# SMOKE_FUZZTIME (per Fuzz target, 5s).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
failed=()
step() { printf '\n==> %s\n' "$1"; "${@:2}" || failed+=("$1"); }
check_gofmt() {
	local files
	files=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
	[[ -z $files ]] || { printf 'not gofmt-ed (run gofmt -w):\n%s\n' "$files"; return 1; }
}
read -r -a flags <<<"${GO_TEST_FLAGS:-}"
step gofmt check_gofmt
step "go vet" go vet ./...
if [[ ${1:-} != lint ]]; then
	step "go test" go test -count=1 -timeout "${GO_TEST_TIMEOUT:-20m}" "${flags[@]}" ./...
	step "chaos, payload mode" env CHAOS_APPLY_MODE=payload CHAOS_SWEEP_SCHEDULE='@every 10s' \
		go test -count=1 -timeout "${GO_TEST_TIMEOUT:-20m}" "${flags[@]}" -run '^TestChaos$' ./chaos/
	step "fuzz smoke" env FUZZTIME="${SMOKE_FUZZTIME:-5s}" bash scripts/fuzz.sh
fi
if [[ ${#failed[@]} -gt 0 ]]; then
	echo "==== test.sh: FAIL: ${failed[*]}"
	exit 1
fi
echo "==== test.sh: PASS"
