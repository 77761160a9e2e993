#!/usr/bin/env bash
# Runs each libFuzzer target briefly (FUZZ_SECONDS, default 5) from an
# empty corpus in a scratch directory. Any crash, leak or sanitizer report
# fails the run.
set -u
seconds=${FUZZ_SECONDS:-5}
guests=$(realpath tests/guests/out 2>/dev/null || true)

# Real images as seeds, so the boot-image fuzzers start past the magic checks.
seeds_for() {
	case "$1" in
	fuzz_bzimage) echo "$guests/bzimage" ;;
	fuzz_elf) echo "$guests/pvh.elf $guests/multiboot.elf" ;;
	fuzz_multiboot) echo "$guests/multiboot.elf $guests/multiboot-aout.bin" ;;
	esac
}
passed=0
failed=0
for f in "$@"; do
	work=$(mktemp -d)
	bin=$(realpath "$f")
	mkdir -p "$work/corpus"
	for s in $(seeds_for "$(basename "$f")"); do
		[ -f "$s" ] && cp "$s" "$work/corpus/"
	done
	if (cd "$work" && "$bin" -max_total_time="$seconds" -print_final_stats=1 corpus >log 2>&1); then
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
