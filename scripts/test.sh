#!/usr/bin/env bash
# test.sh: the whole test suite. `make test` runs it through
# scripts/test-services.sh, which provides Postgres, Redis, stripe-mock and
# promtool and exports TEST_DATABASE_URL, TEST_REDIS_URL, STRIPE_MOCK_BIN,
# PROMTOOL_BIN and PROMETHEUS_BIN.
#
#   scripts/test.sh        gofmt, go vet, go test, fuzz smoke, promtool rules
#   scripts/test.sh lint   gofmt and go vet only
#
# Every step runs even after one fails; the last line says which failed and
# the exit status is non-zero if any did.
#
# Environment: GO_TEST_FLAGS (extra go test flags, e.g. -race or -v),
# GO_TEST_TIMEOUT (default 20m), SMOKE_FUZZTIME (per Fuzz target, default 5s).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

GO_TEST_TIMEOUT=${GO_TEST_TIMEOUT:-20m}
SMOKE_FUZZTIME=${SMOKE_FUZZTIME:-5s}
read -r -a go_test_flags <<<"${GO_TEST_FLAGS:-}"

passed=()
failed=()

# step NAME COMMAND...: run one step and record its outcome.
step() {
	local name=$1
	shift
	printf '\n==> %s\n' "$name"
	if "$@"; then
		passed+=("$name")
	else
		failed+=("$name")
		printf '!!! %s failed\n' "$name"
	fi
}

# go_files lists the Go files gofmt must accept.
go_files() {
	find . \( -path ./.git -o -path ./vendor -o -name testdata -o -name node_modules \) -prune \
		-o -type f -name '*.go' -print
}

check_gofmt() {
	local files
	files=$(go_files | xargs -r gofmt -l) || return 1
	if [[ -n $files ]]; then
		echo "these files are not gofmt'ed (run gofmt -w on them):"
		printf '  %s\n' $files
		return 1
	fi
}

# fuzz_targets prints "DIR NAME" for each Fuzz function of the *_test.go files.
fuzz_targets() {
	grep -rHE --include='*_test.go' --exclude-dir=.git --exclude-dir=vendor --exclude-dir=testdata \
		'^func Fuzz[A-Za-z0-9_]*\(' . |
		sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*|\1 \2|' |
		sort -u
}

check_promtool() {
	local promtool=${PROMTOOL_BIN:-promtool}
	if ! command -v "$promtool" >/dev/null 2>&1; then
		echo "promtool not found: install the Debian package prometheus, or run through scripts/test-services.sh"
		return 1
	fi
	"$promtool" "$@"
}

step "gofmt" check_gofmt
step "go vet" go vet ./...

if [[ ${1:-} != lint ]]; then
	step "go test" go test -count=1 -timeout "$GO_TEST_TIMEOUT" "${go_test_flags[@]}" ./...

	targets=$(fuzz_targets)
	if [[ -z $targets ]]; then
		printf '\n==> fuzz smoke: no Fuzz targets found\n'
	fi
	while read -r dir name; do
		[[ -n $name ]] || continue
		step "fuzz $dir $name" go test -run '^$' -fuzz "^${name}\$" -fuzztime "$SMOKE_FUZZTIME" "$dir"
	done <<<"$targets"

	if [[ -f configs/prometheus/alerts.yml ]]; then
		step "promtool check rules" check_promtool check rules configs/prometheus/alerts.yml
		if [[ -f configs/prometheus/alerts_test.yml ]]; then
			step "promtool test rules" check_promtool test rules configs/prometheus/alerts_test.yml
		else
			step "promtool test rules (configs/prometheus/alerts_test.yml missing)" false
		fi
	fi
fi

# join prints its arguments separated by ", ".
join() {
	local out=$1
	shift
	for s in "$@"; do out+=", $s"; done
	printf '%s' "$out"
}

echo
if [[ ${#failed[@]} -eq 0 ]]; then
	echo "==== test.sh: PASS: all ${#passed[@]} steps succeeded ($(join "${passed[@]}"))"
	exit 0
fi
echo "==== test.sh: FAIL: ${#failed[@]} of $((${#passed[@]} + ${#failed[@]})) steps failed ($(join "${failed[@]}"))"
exit 1
