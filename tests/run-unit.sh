#!/usr/bin/env bash
# Runs every unit-test binary given on the command line; prints one
# summary line "unit: N passed, N failed".
set -u
passed=0
failed=0
for t in "$@"; do
	if out=$("$t" 2>&1); then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAIL: $t"
		echo "$out" | tail -30
	fi
	echo "$out" | grep -E '^\[  (PASSED|FAILED)' | sed "s|^|$(basename "$t"): |"
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
