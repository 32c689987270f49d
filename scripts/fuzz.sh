#!/usr/bin/env bash
# fuzz.sh: run every Fuzz target of the repository for FUZZTIME each and
# print, per target, the executions the fuzzer reached. `make fuzz` runs it
# through scripts/test-services.sh, which provides the Postgres the
# database-backed targets need (TEST_DATABASE_URL).
#
#   scripts/fuzz.sh                 every target
#   scripts/fuzz.sh REGEXP          the targets whose name matches REGEXP
#
# Environment:
#   FUZZTIME       per target: a duration (60s, 10m) or a count of
#                  executions (1000000x); default 60s
#   FUZZ_PARALLEL  fuzzing workers per target (go test -parallel); default
#                  GOMAXPROCS
#   FUZZ_LOG_DIR   where each target's full output goes; default a new
#                  temporary directory, printed at the end
#
# A target fails when the fuzzer reports a failing input (written to the
# package's testdata/fuzz/<Target>/, to commit as a regression seed once
# fixed). Go 1.26's coordinator can also end a duration-bound run with a
# bare "context deadline exceeded" and no failing input (go.dev/issue/75804,
# fixed in Go 1.27): such a run is reported as "flake", not as a failure.
# A count (FUZZTIME=1000000x) has no deadline and cannot hit it.
#
# Exit status: 0 when no target failed, 1 otherwise, 2 on usage errors.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

FUZZTIME=${FUZZTIME:-60s}
filter=${1:-.}
log_dir=${FUZZ_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/subsync-fuzz.XXXXXX")}
mkdir -p "$log_dir" || exit 2

if ! [[ $FUZZTIME =~ ^([0-9]+x|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$ ]]; then
	echo "fuzz.sh: FUZZTIME=$FUZZTIME is neither a duration (60s) nor a count (1000000x)" >&2
	exit 2
fi

# fuzz_targets prints "DIR NAME" for each Fuzz function of the *_test.go
# files (the same discovery as scripts/test.sh).
fuzz_targets() {
	grep -rHE --include='*_test.go' --exclude-dir=.git --exclude-dir=vendor --exclude-dir=testdata \
		'^func Fuzz[A-Za-z0-9_]*\(' . |
		sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*|\1 \2|' |
		sort -u
}

# corpus_files lists a target's committed corpus, to tell a new failing
# input from the seeds.
corpus_files() {
	local dir=$1/testdata/fuzz/$2
	[[ -d $dir ]] && ls -1 "$dir" 2>/dev/null
}

# last_progress prints "seconds execs new total" from the last progress line
# of a go test -fuzz log ("fuzz: elapsed: 1m19s, execs: 1000000 (14107/sec),
# new interesting: 36 (total: 93)").
last_progress() {
	grep -E '^fuzz: elapsed: [0-9hms]+, execs: [0-9]+' "$1" | tail -n 1 |
		sed -E 's/^fuzz: elapsed: ([0-9hms]+), execs: ([0-9]+) \([0-9]+\/sec\), new interesting: ([0-9]+) \(total: ([0-9]+)\).*/\1 \2 \3 \4/' |
		awk '{
			s = 0; d = $1
			if (match(d, /[0-9]+h/)) s += 3600 * substr(d, RSTART, RLENGTH - 1)
			if (match(d, /[0-9]+m/)) s += 60 * substr(d, RSTART, RLENGTH - 1)
			if (match(d, /[0-9]+s/)) s += substr(d, RSTART, RLENGTH - 1)
			print s, $2, $3, $4
		}'
}

targets=$(fuzz_targets | awk -v re="$filter" '$2 ~ re')
if [[ -z $targets ]]; then
	echo "fuzz.sh: no Fuzz target matches $filter" >&2
	exit 2
fi

parallel=()
[[ -n ${FUZZ_PARALLEL:-} ]] && parallel=(-parallel "$FUZZ_PARALLEL")

rows=()
failed=0
while read -r dir name; do
	log=$log_dir/$name.log
	before=$(corpus_files "$dir" "$name")
	printf '\n==> %s %s (-fuzztime %s)\n' "$dir" "$name" "$FUZZTIME"
	start=$SECONDS
	# -timeout 0: the fuzz time bounds the run, not go test's 10m default.
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -timeout 0 "${parallel[@]}" "$dir" >"$log" 2>&1
	status=$?
	took=$((SECONDS - start))
	tail -n 3 "$log"
	read -r elapsed execs new total <<<"$(last_progress "$log")"
	after=$(corpus_files "$dir" "$name")
	result=PASS
	if [[ $status -ne 0 ]]; then
		if [[ $before == "$after" ]] && grep -q 'context deadline exceeded' "$log" &&
			! grep -qE 'Failing input written|panic:' "$log"; then
			result=flake
		else
			result=FAIL
			failed=$((failed + 1))
			grep -E 'Failing input written|To re-run' "$log" || tail -n 30 "$log"
		fi
	fi
	rows+=("$(printf '%-22s %-12s %8s %12s %10s %6s %6s  %s' "$name" "$dir" "${took}s" "${execs:-?}" \
		"$([[ -n ${execs:-} && ${elapsed:-0} -gt 0 ]] && echo $((execs / elapsed)) || echo '?')" \
		"${new:-?}" "${total:-?}" "$result")")
done <<<"$targets"

printf '\n==== fuzz.sh: -fuzztime %s per target (logs in %s)\n' "$FUZZTIME" "$log_dir"
printf '%-22s %-12s %8s %12s %10s %6s %6s  %s\n' target package time execs execs/s new corpus result
printf '%s\n' "${rows[@]}"
if [[ $failed -gt 0 ]]; then
	echo "==== fuzz.sh: FAIL: $failed target(s) found failing inputs"
	exit 1
fi
echo "==== fuzz.sh: PASS"
