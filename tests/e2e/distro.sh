#!/usr/bin/env bash
# End-to-end test: a stock Debian 12 system boots from a virtio-blk disk.
# The image (scripts/debian-image.sh: debootstrap minbase with systemd,
# udev, the cloud kernel) is built once and cached; each boot uses a fresh
# sparse copy. The guest's shrike-report unit (enabled by `shrike.report`
# on the command line) prints `systemctl is-system-running --wait`, the
# failed units and whether the serial getty shows its login prompt, then
# powers off. Checked: the state is `running`, no unit failed, the login
# prompt appeared on ttyS0, and shrike exits 0 on the clean poweroff.
#
# The boot runs on the soft engine (translator and interpreter), and on the kvm engine when the host CPU
# has VT-x/AMD-V (KVM's PVM backend, without them, cannot run a full Linux
# boot; --engine auto makes the same choice). If the Debian mirror cannot
# be reached, the test is SKIPPED, loudly: the network alone never fails it.
#
# Environment: DEBIAN_IMAGE_DIR (image cache, see the script),
# DISTRO_TIMEOUT (seconds per boot, default 1200), DISTRO_MEMORY (512M).
set -u
cd "$(dirname "$0")/../.."
SHRIKE=${SHRIKE:-build/shrike}
DIR=${DEBIAN_IMAGE_DIR:-guest/cache/debian-12}
LIMIT=${DISTRO_TIMEOUT:-1200}
MEM=${DISTRO_MEMORY:-512M}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
skipped=0

banner() {
	echo "##################################################################"
	echo "## SKIPPED: $*"
	echo "##################################################################"
}

finish() {
	echo "distro: $passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
	exit
}

ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() {
	failed=$((failed + 1))
	echo "FAIL $1"
	# The report's own lines first (the console interleaves them with
	# systemd's and the getty's output), then the end of the console.
	[ -f "$TMP/out" ] && grep 'shrike-report:' "$TMP/out" | sed 's/^/     > /'
	[ -f "$TMP/out" ] && sed 's/^/     | /' "$TMP/out" | tail -40
	[ -s "$TMP/err" ] && sed 's/^/     ! /' "$TMP/err" | tail -10
}

# expect NAME REGEX...: every extended regex must match a line of the output.
expect() {
	local name=$1 re
	shift
	for re in "$@"; do
		grep -qE -- "$re" "$TMP/out" || { fail "$name: no line matches /$re/"; return 1; }
	done
	ok "$name"
}

# ---- the image ----
if [ "$(id -u)" != 0 ]; then
	banner "the Debian image needs root (debootstrap, file owners)"
	skipped=$((skipped + 3))
	finish
fi
scripts/debian-image.sh >"$TMP/image.log" 2>&1
rc=$?
if [ $rc -eq 75 ]; then
	tail -n 5 "$TMP/image.log"
	banner "the Debian mirror cannot be reached; the distribution boot is NOT tested"
	skipped=$((skipped + 3))
	finish
elif [ $rc -ne 0 ]; then
	cp "$TMP/image.log" "$TMP/out"
	fail "scripts/debian-image.sh exited $rc"
	finish
fi
ok "Debian image ($(cat "$DIR/kernel-release"))"

# boot ENGINE [OPTION...]: boots a fresh copy of the image with shrike
# run --engine ENGINE OPTION...; checks state, failed units, prompt, status.
boot() {
	local engine=$1 name="Debian boot, --engine $*" t0 rc
	shift
	cp --sparse=always "$DIR/rootfs.img" "$TMP/rootfs.img"
	t0=$(date +%s)
	# No console= here: `root=` makes shrike add console=ttyS0 (the CLI's job).
	timeout -k 10 "$LIMIT" "$SHRIKE" run --engine "$engine" "$@" --memory "$MEM" \
		--kernel "$DIR/vmlinuz" --initrd "$DIR/initrd.img" --disk "$TMP/rootfs.img" \
		--append "root=/dev/vda shrike.report" </dev/null >"$TMP/raw" 2>"$TMP/err"
	rc=$?
	tr -d '\r' <"$TMP/raw" >"$TMP/out"
	rm -f "$TMP/rootfs.img"
	echo "     ($name: $(($(date +%s) - t0)) s wall;" \
		"$(grep -m1 -o 'shrike-report: uptime: .*' "$TMP/out" | sed 's/shrike-report: //') at the report)"
	grep 'shrike-report: failed:' "$TMP/out" | sed 's/^/     /'
	if [ $rc -ne 0 ]; then
		fail "$name: exit status $rc, expected 0 (clean poweroff)"
		return 1
	fi
	expect "$name" \
		'shrike-report: is-system-running: running$' \
		'login: ' \
		'shrike-report: login prompt on /dev/ttyS0: yes$' \
		'reboot: Power down'
	if grep -q 'shrike-report: failed:' "$TMP/out"; then
		fail "$name: failed units"
	fi
}

# The soft engine in both execution modes: the translator and the interpreter.
boot soft --soft-jit on
boot soft --soft-jit off

if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	boot kvm
else
	banner "the kvm-engine Debian boot needs a host CPU with VT-x/AMD-V and /dev/kvm"
	skipped=$((skipped + 1))
fi
finish
