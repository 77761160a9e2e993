#!/usr/bin/env bash
# End-to-end tests: boot the in-repo test guests (tests/guests) under
# shrike and check what they print and how shrike exits. Tests that need
# /dev/kvm are reported as SKIPPED, loudly, when it is not usable.
set -u
cd "$(dirname "$0")/../.."
SHRIKE=${SHRIKE:-build/shrike}
G=tests/guests/out
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
skipped=0

pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() {
	failed=$((failed + 1))
	echo "FAIL $1: $2"
	[ -f "$TMP/out" ] && sed 's/^/     | /' "$TMP/out" | tail -25
}

have_kvm() { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }

# run NAME EXPECTED_STATUS ARGS... : runs shrike with a time limit, output in $TMP/out
run() {
	local name=$1 want=$2
	shift 2
	timeout -k 5 60 "$SHRIKE" "$@" ${ENGINE_ARGS:-} </dev/null >"$TMP/out" 2>&1
	local rc=$?
	if [ "$rc" -ne "$want" ]; then
		fail "$name" "exit status $rc, expected $want"
		return 1
	fi
	return 0
}

# expect NAME LINE... : every LINE must appear as a whole line in the output
expect() {
	local name=$1
	shift
	for line in "$@"; do
		if ! grep -qxF -- "$line" "$TMP/out"; then
			fail "$name" "missing line '$line'"
			return 1
		fi
	done
	pass "$name"
}

# expect_grep NAME REGEX... : every extended regex must match some line
expect_grep() {
	local name=$1
	shift
	for re in "$@"; do
		if ! grep -qE -- "$re" "$TMP/out"; then
			fail "$name" "no line matches /$re/"
			return 1
		fi
	done
	pass "$name"
}

sum32() { python3 -c "import sys;print('%08x'%(sum(open(sys.argv[1],'rb').read())&0xffffffff))" "$1"; }

# --- user errors: no KVM needed -------------------------------------------
head -c 4096 /dev/urandom >"$TMP/garbage"
: >"$TMP/empty"
run "garbage kernel refused" 125 run --kernel "$TMP/garbage" &&
	expect_grep "garbage kernel refused" "not a bzImage, ELF with a PVH note, or multiboot kernel"
run "empty kernel refused" 125 run --kernel "$TMP/empty" && expect_grep "empty kernel refused" "empty"
run "missing kernel refused" 125 run --kernel "$TMP/nope" &&
	expect_grep "missing kernel refused" "No such file or directory"
head -c 1000 "$G/bzimage" >"$TMP/truncated-bz"
run "truncated bzImage refused" 125 run --kernel "$TMP/truncated-bz" &&
	expect_grep "truncated bzImage refused" "bzImage"
head -c 3000 "$G/pvh.elf" >"$TMP/truncated-elf"
run "truncated ELF refused" 125 run --kernel "$TMP/truncated-elf" &&
	expect_grep "truncated ELF refused" "ELF|PVH|multiboot"
run "missing initrd refused" 125 run --kernel "$G/bzimage" --initrd "$TMP/nope" &&
	expect_grep "missing initrd refused" "nope.*No such file"
run "too little memory refused" 125 run --kernel "$G/bzimage" --memory 1M &&
	expect_grep "too little memory refused" "--memory 1M: must be between"
run "bad cpu count refused" 125 run --kernel "$G/bzimage" --cpus 0 && expect_grep "bad cpu count refused" "--cpus"
run "unknown option refused" 125 run --frobnicate && expect_grep "unknown option refused" "unknown option"
run "help" 0 --help && expect_grep "help" "^usage: shrike run"
run "version" 0 --version && expect_grep "version" "^shrike [0-9]"
# Each error is one line on stderr, never a crash dump.
run "one-line error" 125 run --kernel "$TMP/garbage" && [ "$(wc -l <"$TMP/out")" -eq 1 ] &&
	pass "one-line error" || { [ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "one-line error" "more than one line"; }

# Missing /dev/kvm: hide /dev in a private mount namespace.
if unshare --mount true 2>/dev/null; then
	timeout 30 unshare --mount sh -c "mount -t tmpfs none /dev && exec $SHRIKE run --kernel $G/bzimage --engine kvm" \
		</dev/null >"$TMP/out" 2>&1
	rc=$?
	if [ $rc -eq 125 ] && grep -q "cannot open /dev/kvm" "$TMP/out"; then
		pass "missing /dev/kvm reported"
	else
		fail "missing /dev/kvm reported" "status $rc"
	fi
else
	skipped=$((skipped + 1))
	echo "SKIPPED missing /dev/kvm test: cannot create a mount namespace here"
fi

# --- guests under KVM ---------------------------------------------------------
if ! have_kvm; then
	echo "##########################################################"
	echo "## SKIPPED: the KVM end-to-end tests need a usable /dev/kvm"
	echo "##########################################################"
	skipped=$((skipped + 20))
else
	# These boot under KVM explicitly: on hosts without VT-x/AMD-V, auto picks the soft engine.
	ENGINE_ARGS="--engine kvm"
	head -c 100000 /dev/urandom >"$TMP/mod1"
	printf 'module two\n' >"$TMP/mod2"
	s1=$(sum32 "$TMP/mod1")
	s2=$(sum32 "$TMP/mod2")

	for n in 1 2 4; do
		run "multiboot --cpus $n" 15 run --kernel "$G/multiboot.elf" --cpus $n --append "exit=7" &&
			expect "multiboot --cpus $n" "shrike-test: multiboot" "fw_cfg: signature=QEMU cpus=$n ram=268435456" \
				"cpus online: $n" "exit=7"
	done
	run "multiboot info and modules" 1 run --kernel "$G/multiboot.elf" --memory 64M \
		--initrd "$TMP/mod1" --initrd "$TMP/mod2" --append "hello world" &&
		expect "multiboot info and modules" "cmdline: hello world" "mem_lower=639 mem_upper=64512" \
			"modules: 2" "module 0: size=100000 sum=$s1 name=$TMP/mod1" \
			"module 1: size=11 sum=$s2 name=$TMP/mod2" "fw_cfg: signature=QEMU cpus=1 ram=67108864" \
			"unclaimed: ff" "rtc: year=$(date -u +%Y)"
	run "multiboot a.out kludge" 5 run --kernel "$G/multiboot-aout.bin" --append "exit=2" &&
		expect "multiboot a.out kludge" "shrike-test: multiboot" "cpus online: 1" "exit=2"
	run "pvh boot" 9 run --kernel "$G/pvh.elf" --initrd "$TMP/mod1" --append "pvh exit=4" &&
		expect "pvh boot" "shrike-test: pvh" "magic: ok" "cmdline: pvh exit=4" "modules: 1" \
			"module 0: size=100000 sum=$s1" "rsdp: yes" "memmap: 4 entries, ram=261759"
	run "bzimage boot" 7 run --kernel "$G/bzimage" --initrd "$TMP/mod1" --append "bz exit=3" &&
		expect "bzimage boot" "shrike-test: bzimage" "cmdline: bz exit=3" "initrd: size=100000 sum=$s1" \
			"e820: 4 entries, ram=261759"
	run "bzimage above 4G hole" 1 run --kernel "$G/bzimage" --memory 4G &&
		expect "bzimage above 4G hole" "e820: 5 entries, ram=4193919"
	run "acpi poweroff exits 0" 0 run --kernel "$G/multiboot.elf" --cpus 2 --append "poweroff" &&
		expect "acpi poweroff exits 0" "poweroff"
	run "i8042 reset exits 0" 0 run --kernel "$G/pvh.elf" --append "reset" && expect "i8042 reset exits 0" "reset"
	run "triple fault is a crash" 123 run --kernel "$G/bzimage" --append "triple" &&
		expect_grep "triple fault is a crash" "^triple$" \
			"guest crashed on vCPU 0: (triple fault|engine internal error)"
	run "exit statistics" 1 run --kernel "$G/multiboot.elf" --stats &&
		expect_grep "exit statistics" "^exit statistics: [0-9]+ exits" "^  io +[0-9]+$" \
			"uart8250 +0x3f8-0x3ff +[0-9]+$" "fw_cfg +0x510-0x511" "\(unclaimed\) +0x2e0 +1$"
	run "verbose names the engine" 1 run --kernel "$G/pvh.elf" --verbose &&
		expect_grep "verbose names the engine" "engine kvm, 1 vCPU" "loaded .*pvh.elf as ELF \\(PVH\\)"

	# virtio-rng through the guests' polled driver (tests/guests/virtio.c):
	# PCI scan, BAR sizing, capabilities, feature negotiation, one queue,
	# INTx (ISR) and then MSI-X to the LAPIC. Under KVM both notifications
	# must arrive through the ioeventfd, never as an MMIO exit.
	rng_lines=("rng: isr=1 then 0" "rng: status=0f, after reset 00")
	run "virtio-rng from multiboot" 5 run --kernel "$G/multiboot.elf" --stats --append "rng=64 exit=2" &&
		expect "virtio-rng from multiboot" "rng: 64 bytes, nonzero" "${rng_lines[@]}" \
			"rng: msi-x 64 bytes, nonzero, vector 41 pending" "exit=2" &&
		expect_grep "virtio-rng notifies by ioeventfd" \
			"pci 00:01\.0 virtio-rng: 2 notifications \(0 by MMIO exit\), 2 interrupts"
	head -c 1048576 /dev/zero >"$TMP/disk"
	run "virtio-rng behind a disk" 1 run --kernel "$G/bzimage" --disk "$TMP/disk" --append "rng=4096" &&
		expect "virtio-rng behind a disk" "rng: 4096 bytes, nonzero" "${rng_lines[@]}" \
			"rng: msi-x 4096 bytes, nonzero, vector 41 pending"
	run "virtio-rng from pvh" 1 run --kernel "$G/pvh.elf" --append "rng=1" &&
		expect_grep "virtio-rng from pvh" "^rng: 1 bytes, (nonzero|all zero)$" "^rng: status=0f, after reset 00$"
	run "no virtio-rng with --no-rng" 1 run --kernel "$G/pvh.elf" --no-rng --append "rng=64" &&
		expect "no virtio-rng with --no-rng" "rng: error no device" "exit=0"

	# The Debian kernel, entered through PVH, must reach its first console
	# lines. Under this host's PVM-based KVM that takes ~40 s (kernel code
	# is emulated at ~1.5 MIPS), so the test waits up to 5 minutes, then
	# stops shrike with SIGINT, which must end it cleanly with status 130.
	if [ -f guest/out/vmlinux ]; then
		"$SHRIKE" run --engine kvm --kernel guest/out/vmlinux --initrd guest/out/initrd.cpio.gz \
			--append "console=ttyS0 earlyprintk=serial" </dev/null >"$TMP/out" 2>&1 &
		pid=$!
		for _ in $(seq 1 1500); do
			grep -q "BIOS-e820" "$TMP/out" && break
			kill -0 $pid 2>/dev/null || break
			sleep 0.2
		done
		kill -INT $pid 2>/dev/null
		wait $pid
		rc=$?
		if [ $rc -ne 130 ]; then
			fail "debian kernel via PVH" "exit status $rc after SIGINT, expected 130"
		else
			expect_grep "debian kernel via PVH" "Linux version $(cat guest/out/kernel-release)" \
				"Command line: console=ttyS0 earlyprintk=serial" \
				"BIOS-e820: \[mem 0x0000000000100000-0x000000000fffffff\] usable"
		fi
	else
		skipped=$((skipped + 1))
		echo "SKIPPED debian kernel via PVH: guest/out/vmlinux not built (make guest)"
	fi
fi

echo "e2e: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
