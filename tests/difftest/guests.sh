#!/usr/bin/env bash
# Runs the in-repo test guests (tests/guests/out, built by
# `make -C tests/guests`) to completion on both engines, one vCPU, and
# compares their console output and exit statuses. Exit status: 0 when
# every guest behaves identically under --engine kvm and --engine soft,
# 1 otherwise, 0 with a SKIPPED banner when KVM is not usable.
# Not part of `make test` (yet): the lead includes it once the soft CPU
# runs the guests.
set -u
cd "$(dirname "$0")/../.."
SHRIKE=${SHRIKE:-build/shrike}
G=tests/guests/out
TIMEOUT=${DIFFTEST_GUEST_TIMEOUT:-120}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	echo "######################################################################"
	echo "##  guests.sh SKIPPED: /dev/kvm is not usable here; nothing compared."
	echo "######################################################################"
	exit 0
fi
if ! [ -x "$SHRIKE" ] || ! [ -f "$G/bzimage" ]; then
	echo "guests.sh: build first: make && make -C tests/guests" >&2
	exit 1
fi

printf 'module one\n' >"$TMP/mod1"
printf 'second module, longer\n' >"$TMP/mod2"
passed=0
failed=0

# The guests print what the VMM gave them on the console (stdout), which
# must be identical. shrike's own messages (stderr) are shown when they
# differ but do not fail the comparison: PVM reports a CPL0 triple fault
# as an emulation failure where the soft engine names it (same status).
normalize() { tr -d '\r' <"$1"; }

# compare NAME ARGS... : runs the guest on both engines and compares.
compare() {
	local name=$1
	shift
	local rk rs
	timeout -k 5 "$TIMEOUT" "$SHRIKE" run --engine kvm --cpus 1 "$@" </dev/null >"$TMP/kvm" 2>"$TMP/kvm.err"
	rk=$?
	timeout -k 5 "$TIMEOUT" "$SHRIKE" run --engine soft --cpus 1 "$@" </dev/null >"$TMP/soft" 2>"$TMP/soft.err"
	rs=$?
	if [ "$rk" -eq "$rs" ] && diff -q <(normalize "$TMP/kvm") <(normalize "$TMP/soft") >/dev/null; then
		passed=$((passed + 1))
		echo "same $name (exit status $rk)"
		if ! diff -q "$TMP/kvm.err" "$TMP/soft.err" >/dev/null; then
			echo "     note: shrike's messages differ:"
			diff --label kvm --label soft -u "$TMP/kvm.err" "$TMP/soft.err" | tail -n +3 |
				sed 's/^/     | /'
		fi
		return
	fi
	failed=$((failed + 1))
	echo "DIFF $name: exit status kvm $rk, soft $rs$([ "$rs" -eq 124 ] && echo ' (soft timed out)')"
	diff -u --label kvm --label soft <(normalize "$TMP/kvm") <(normalize "$TMP/soft") | head -40 |
		sed 's/^/     | /'
	tail -3 "$TMP/soft.err" | sed 's/^/     soft stderr: /'
}

compare "multiboot" --kernel "$G/multiboot.elf" --memory 64M --initrd "$TMP/mod1" \
	--initrd "$TMP/mod2" --append "hello world exit=3"
compare "multiboot a.out" --kernel "$G/multiboot-aout.bin" --append "exit=2"
compare "multiboot poweroff" --kernel "$G/multiboot.elf" --append "poweroff"
compare "pvh" --kernel "$G/pvh.elf" --initrd "$TMP/mod1" --append "pvh exit=4"
compare "pvh reset" --kernel "$G/pvh.elf" --append "reset"
compare "bzimage" --kernel "$G/bzimage" --initrd "$TMP/mod2" --append "bz exit=5"
compare "bzimage triple fault" --kernel "$G/bzimage" --append "triple"
compare "bzimage io loop" --kernel "$G/bzimage" --append "ioloop=1000 exit=1"
compare "pvh cpu loop" --kernel "$G/pvh.elf" --append "spin=20000 exit=2"
compare "multiboot cpu loop" --kernel "$G/multiboot.elf" --append "spin=20000 exit=2"
# virtio-rng (tests/guests/virtio.c): the output names no random values.
compare "pvh virtio-rng" --kernel "$G/pvh.elf" --append "rng=64 exit=1"
compare "multiboot virtio-rng" --kernel "$G/multiboot.elf" --append "rng=4096"
compare "bzimage without virtio-rng" --kernel "$G/bzimage" --no-rng --append "rng=64"

echo "guests.sh: $passed same, $failed different"
[ "$failed" -eq 0 ]
