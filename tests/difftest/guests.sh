#!/usr/bin/env bash
# Runs the in-repo test guests (tests/guests/out, built by
# `make -C tests/guests`) to completion, one vCPU, on the soft engine in
# both of its modes (the translator, the default, and --soft-jit off, the
# interpreter), and compares their console output and exit status with the
# KVM engine's: with KVM run here when /dev/kvm is usable, else with the
# outputs and statuses recorded from KVM in tests/difftest/recorded/guests/
# (written by `guests.sh --record`, which needs KVM; `make
# difftest-record` runs it). Where KVM is usable, the recording is checked
# against it too, so that a stale one fails here, where it can be renewed.
# Exit status: 0 when everything agrees, 1 otherwise, 2 on a usage error.
set -u
cd "$(dirname "$0")/../.."
SHRIKE=${SHRIKE:-build/shrike}
G=tests/guests/out
RECORDED=${DIFFTEST_GUESTS_RECORDED:-tests/difftest/recorded/guests}
TIMEOUT=${DIFFTEST_GUEST_TIMEOUT:-120}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

record=false
case "${1:-}" in
--record) record=true ;;
"") ;;
*)
	echo "usage: guests.sh [--record]" >&2
	exit 2
	;;
esac
have_kvm=false
[ -r /dev/kvm ] && [ -w /dev/kvm ] && have_kvm=true
if ! [ -x "$SHRIKE" ] || ! [ -f "$G/bzimage" ]; then
	echo "guests.sh: build first: make && make -C tests/guests" >&2
	exit 1
fi
if $record; then
	if ! $have_kvm; then
		echo "guests.sh: --record needs a usable /dev/kvm" >&2
		exit 2
	fi
	mkdir -p "$RECORDED"
	rm -f "$RECORDED"/*.txt
elif ! $have_kvm; then
	echo "guests.sh: /dev/kvm is not usable here: the soft engine is compared with the"
	echo "guests.sh: outputs and exit statuses recorded from KVM in $RECORDED"
fi

printf 'module one\n' >"$TMP/mod1"
printf 'second module, longer\n' >"$TMP/mod2"
passed=0
failed=0

# The guests print what the VMM gave them on the console (stdout), which
# must be identical. shrike's own messages (stderr) are shown when they
# differ but do not fail the comparison: PVM reports a CPL0 triple fault
# as an emulation failure where the soft engine names it (same status).
# What varies from run to run is replaced, so that a recording stays
# valid: the temporary directory (module names) and the RTC's year when
# it is this year (in UTC or local time).
normalize() {
	tr -d '\r' <"$1" | sed -e "s|$TMP|TMP|g" \
		-e "s/^rtc: year=\($(date -u +%Y)\|$(date +%Y)\)\$/rtc: year=(this year)/"
}

# run OUT ENGINE-ARGS... -- GUEST-ARGS...: one run; its status in OUT.status.
run() {
	local out=$1
	shift
	timeout -k 5 "$TIMEOUT" "$SHRIKE" run --cpus 1 "$@" </dev/null >"$out" 2>"$out.err"
	echo $? >"$out.status"
}

# The recording of a guest: its exit status, its arguments (the temporary
# directory's name replaced) and its console output.
expected_file() { echo "$RECORDED/$(echo "$1" | tr ' /' '--').txt"; }
write_expected() { # NAME OUT ARGS...
	local f
	f=$(expected_file "$1")
	local out=$2
	shift 2
	{
		echo "status $(cat "$out.status")"
		echo "args ${*//$TMP/TMP}"
		normalize "$out"
	} >"$f"
}
# Splits a recording into REF (output) and REF.status; fails when it is
# missing or was recorded with other arguments.
read_expected() { # NAME REF ARGS...
	local f
	f=$(expected_file "$1")
	local ref=$2
	shift 2
	[ -f "$f" ] || { echo "no recording $f"; return 1; }
	local args="args ${*//$TMP/TMP}"
	[ "$(sed -n 2p "$f")" = "$args" ] || { echo "$f was recorded with other arguments"; return 1; }
	sed -n '1s/^status //p' "$f" >"$ref.status"
	tail -n +3 "$f" >"$ref"
	: >"$ref.err"
}

# same REF RUN: equal output and status.
same() {
	[ "$(cat "$1.status")" = "$(cat "$2.status")" ] &&
		diff -q <(normalize "$1") <(normalize "$2") >/dev/null
}

show_diff() { # LABEL-A A LABEL-B B
	local sb
	sb=$(cat "$4.status")
	echo "     exit status $1 $(cat "$2.status"), $3 $sb$([ "$sb" -eq 124 ] && echo " ($3 timed out)")"
	diff -u --label "$1" --label "$3" <(normalize "$2") <(normalize "$4") | head -40 |
		sed 's/^/     | /'
	[ -s "$4.err" ] && tail -3 "$4.err" | sed "s/^/     $3 stderr: /"
}

# compare NAME ARGS...: the guest on KVM (or its recording) and on both
# soft modes.
compare() {
	local name=$1
	shift
	local ref=$TMP/ref what=kvm
	if $record; then
		run "$ref" --engine kvm "$@"
		write_expected "$name" "$ref" "$@"
		passed=$((passed + 1))
		echo "recorded $name (exit status $(cat "$ref.status"))"
		return
	fi
	if $have_kvm; then
		run "$ref" --engine kvm "$@"
		if ! read_expected "$name" "$TMP/rec" "$@" >"$TMP/why" || ! same "$ref" "$TMP/rec"; then
			failed=$((failed + 1))
			echo "STALE $name: the recording differs from KVM's run: tests/difftest/guests.sh --record"
			[ -s "$TMP/why" ] && sed 's/^/     /' "$TMP/why"
			[ -s "$TMP/why" ] || show_diff recorded "$TMP/rec" kvm "$ref"
		fi
	else
		what=recorded
		if ! read_expected "$name" "$ref" "$@" >"$TMP/why"; then
			failed=$((failed + 1))
			echo "DIFF $name: $(cat "$TMP/why"); record on a machine with KVM: tests/difftest/guests.sh --record"
			return
		fi
	fi
	local mode args
	for mode in translator interpreter; do
		args=(--engine soft)
		[ $mode = interpreter ] && args+=(--soft-jit off)
		run "$TMP/soft" "${args[@]}" "$@"
		if same "$ref" "$TMP/soft"; then
			passed=$((passed + 1))
			echo "same $name, $mode (exit status $(cat "$ref.status"))"
			if [ $what = kvm ] && ! diff -q "$ref.err" "$TMP/soft.err" >/dev/null; then
				echo "     note: shrike's messages differ:"
				diff --label $what --label soft -u "$ref.err" "$TMP/soft.err" | tail -n +3 |
					sed 's/^/     | /'
			fi
		else
			failed=$((failed + 1))
			echo "DIFF $name, $mode:"
			show_diff $what "$ref" "soft" "$TMP/soft"
		fi
	done
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

if $record; then
	echo "guests.sh: recorded $passed guests in $RECORDED"
	exit 0
fi
if $have_kvm; then
	echo "guests.sh: $passed same, $failed different (the soft engine's two modes against KVM; the recording checked)"
else
	echo "guests.sh: $passed same, $failed different (the soft engine's two modes compared against recorded KVM outputs)"
fi
[ "$failed" -eq 0 ]
