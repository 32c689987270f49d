#!/usr/bin/env bash
# fuzz.sh: every Fuzz target of the repository (found here, the one list)
# for FUZZTIME each (a duration, 60s, or a count, 1000000x), printing per
# target its executions and result. `scripts/fuzz.sh REGEXP` runs the
# targets whose name matches. A failing input is written to the package's
# testdata/fuzz/<Target>/, to commit as a seed once fixed. Go 1.26 can end
# a duration-bound run with a bare "context deadline exceeded" and no
# failing input (go.dev/issue/75804): that run is reported as "flake".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
FUZZTIME=${FUZZTIME:-60s}
log_dir=${FUZZ_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/subsync-fuzz.XXXXXX")}
targets=$(grep -rE --include='*_test.go' --exclude-dir=testdata '^func Fuzz[A-Za-z0-9_]*\(' . |
	sed -E 's|^(.*)/[^/]*:func (Fuzz[A-Za-z0-9_]*)\(.*|\1 \2|' | sort -u | awk -v re="${1:-.}" '$2 ~ re')
[[ -n $targets ]] || { echo "fuzz.sh: no Fuzz target matches ${1:-.}" >&2; exit 2; }
parallel=()
[[ -n ${FUZZ_PARALLEL:-} ]] && parallel=(-parallel "$FUZZ_PARALLEL")
rows=() failed=0
while read -r dir name; do
	log=$log_dir/$name.log
	before=$(ls "$dir/testdata/fuzz/$name" 2>/dev/null)
	printf '==> %s %s (-fuzztime %s)\n' "$dir" "$name" "$FUZZTIME"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -timeout 0 "${parallel[@]}" "$dir" >"$log" 2>&1
	status=$? result=PASS
	execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
	if [[ $status -ne 0 ]]; then
		if [[ $before == "$(ls "$dir/testdata/fuzz/$name" 2>/dev/null)" ]] &&
			grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:' "$log"; then
			result=flake
		else
			result=FAIL failed=$((failed + 1))
			grep -E 'Failing input written|To re-run' "$log" || tail -n 30 "$log"
		fi
	fi
	rows+=("$(printf '%-24s %-14s %12s  %s' "$name" "$dir" "${execs:-?}" "$result")")
done <<<"$targets"
printf '\n==== fuzz.sh: -fuzztime %s per target (logs in %s)\n' "$FUZZTIME" "$log_dir"
printf '%s\n' "$(printf '%-24s %-14s %12s  %s' target package execs result)" "${rows[@]}"
[[ $failed -eq 0 ]] || { echo "==== fuzz.sh: FAIL: $failed target(s) found failing inputs"; exit 1; }
echo "==== fuzz.sh: PASS"
