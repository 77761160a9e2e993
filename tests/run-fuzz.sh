#!/usr/bin/env bash
# Runs each libFuzzer target briefly (FUZZ_SECONDS, default 5) from an
# empty corpus in a scratch directory. Any crash, leak or sanitizer report
# fails the run.
set -u
seconds=${FUZZ_SECONDS:-5}
passed=0
failed=0
for f in "$@"; do
	work=$(mktemp -d)
	bin=$(realpath "$f")
	if (cd "$work" && "$bin" -max_total_time="$seconds" -print_final_stats=1 >log 2>&1); then
		passed=$((passed + 1))
		runs=$(grep -o 'number_of_executed_units: [0-9]*' "$work/log" | grep -o '[0-9]*$')
		echo "fuzz: $(basename "$f"): ok, ${runs:-?} inputs in ${seconds}s"
	else
		failed=$((failed + 1))
		echo "FAIL: fuzz target $f"
		tail -40 "$work/log"
	fi
	rm -rf "$work"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
