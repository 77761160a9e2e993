#!/usr/bin/env bash
# Self-modifying code end to end: the smc test guest (tests/guests/smc.c)
# patches its own code by stores (the next instruction, further ahead in
# the block, a later block, its own loop, another page) and by virtio-blk
# DMA into a code page, and prints what the patched code returned. On the
# soft engine with the translator (default and a small, often flushed
# cache) and without it, and under KVM where /dev/kvm works, the output
# must be exactly the expected text. No KVM needed for the soft runs.
set -u
cd "$(dirname "$0")/../.."
SHRIKE=${SHRIKE:-build/shrike}
GUEST=tests/guests/out/smc.elf
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
skipped=0

if ! [ -x "$SHRIKE" ] || ! [ -f "$GUEST" ]; then
	echo "smc.sh: build first: make && make -C tests/guests" >&2
	exit 1
fi

cat >"$TMP/expected" <<'EOF'
shrike-test: smc
smc: next 4950
smc: ahead 9900
smc: opcode 1224
smc: later block 5050
smc: own loop 1999 20
smc: other page 14850 4444
smc: virtio-blk 1111 2222 3333
exit=0
EOF

# run NAME ARGS... : boots the guest with a fresh disk; the console output
# must be the expected text and the exit status 1 (debug exit with 0).
run() {
	local name=$1
	shift
	head -c 65536 /dev/zero >"$TMP/disk"
	timeout -k 5 60 "$SHRIKE" run --kernel "$GUEST" --disk "$TMP/disk" "$@" </dev/null \
		>"$TMP/out" 2>"$TMP/err"
	local rc=$?
	if [ "$rc" -ne 1 ]; then
		failed=$((failed + 1))
		echo "FAIL $name: exit status $rc, expected 1"
		sed 's/^/     | /' "$TMP/out" "$TMP/err" | tail -20
		return
	fi
	if ! diff -u --label expected --label "$name" "$TMP/expected" <(tr -d '\r' <"$TMP/out") \
		>"$TMP/diff"; then
		failed=$((failed + 1))
		echo "FAIL $name: output differs"
		sed 's/^/     | /' "$TMP/diff"
		return
	fi
	passed=$((passed + 1))
	echo "ok   $name"
}

run "smc, soft engine, translator" --engine soft --soft-jit on
run "smc, soft engine, translator, 128K cache" --engine soft --soft-jit on --soft-jit-cache 128K
run "smc, soft engine, interpreter" --engine soft --soft-jit off
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	run "smc, kvm" --engine kvm
else
	skipped=$((skipped + 1))
	echo "SKIPPED smc under KVM: /dev/kvm is not usable"
fi

echo "smc: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
