#!/usr/bin/env bash
# End-to-end tests of the default Debian guest on the soft engine: the
# kernel and busybox initramfs from guest/out, booted with `--engine soft`,
# running commands through the init protocol (shrike.cmd, status port,
# poweroff). No KVM needed. Each boot takes about a minute on this host.
set -u
cd "$(dirname "$0")/../.."
SHRIKE=${SHRIKE:-build/shrike}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0

if [ ! -f guest/out/vmlinuz ] || [ ! -f guest/out/initrd.cpio.gz ]; then
	echo "##############################################################"
	echo "## SKIPPED: the Linux tests need the default guest (make guest)"
	echo "##############################################################"
	echo "linux-soft: 0 passed, 0 failed, 5 skipped"
	exit 0
fi
release=$(cat guest/out/kernel-release)

# boot NAME WANT_STATUS COMMAND... : boots the default guest with COMMAND
boot() {
	local name=$1 want=$2
	shift 2
	local t0=$(date +%s)
	timeout -k 5 600 "$SHRIKE" run --engine soft --memory 256M ${OPTS:-} -- "$@" </dev/null >"$TMP/raw" 2>"$TMP/err"
	local rc=$?
	tr -d '\r' <"$TMP/raw" >"$TMP/out" # the guest's tty turns \n into \r\n
	echo "     ($name: $(( $(date +%s) - t0 )) s)"
	if [ $rc -ne "$want" ]; then
		failed=$((failed + 1))
		echo "FAIL $name: exit status $rc, expected $want"
		sed 's/^/     | /' "$TMP/out" "$TMP/err" | tail -20
		return 1
	fi
	return 0
}

check() { # NAME REGEX...: every regex must match a line of the guest's output
	local name=$1
	shift
	for re in "$@"; do
		if ! grep -qE -- "$re" "$TMP/out"; then
			failed=$((failed + 1))
			echo "FAIL $name: no line matches /$re/"
			sed 's/^/     | /' "$TMP/out" | tail -20
			return 1
		fi
	done
	passed=$((passed + 1))
	echo "ok   $name"
}

boot "uname -r" 0 uname -r && check "uname -r" "^${release}\$"

# One boot checks what the guest sees; the command's status (42) must come back.
boot "guest view and exit status" 42 sh -c '
	echo "cpus=$(grep -c ^processor /proc/cpuinfo)"
	grep -m1 ^flags /proc/cpuinfo
	awk "/MemTotal/ {print \"memtotal_kb=\" \$2}" /proc/meminfo
	echo "pipeline=$(seq 1 100 | grep 7 | wc -l)"
	(exit 3); echo "subshell=$?"
	exit 42' &&
	check "guest view and exit status" "^cpus=1$" "^flags.* sse2 .*" "^flags.* apic " \
		"^memtotal_kb=2[0-9]{5}$" "^pipeline=19$" "^subshell=3$"

# A dynamically linked Debian program (coreutils' env, with ld.so and libc.so.6
# from libc6; see guest/build.sh): the loader maps the libraries, glibc's
# start-up checks the x86-64 baseline ISA level in CPUID, and env prints the
# variable set here. The loader's --list shows that libc was really loaded.
# In both execution modes: the translator and the interpreter.
for jit in on off; do
	name="dynamic Debian program (env), --soft-jit $jit"
	OPTS="--soft-jit $jit" boot "$name" 0 sh -c '
		SHRIKE_DYN=hello-from-glibc /usr/local/bin/env; echo "env_status=$?"
		/usr/local/bin/env --version | head -n 1
		/lib64/ld-linux-x86-64.so.2 --list /usr/local/bin/env' &&
		check "$name" "^SHRIKE_DYN=hello-from-glibc$" "^env_status=0$" \
			"^env \\(GNU coreutils\\) " "libc\\.so\\.6 => /lib/x86_64-linux-gnu/libc\\.so\\.6"
done

boot "reboot ends shrike cleanly" 0 reboot -f && { passed=$((passed + 1)); echo "ok   reboot ends shrike cleanly"; }

echo "linux-soft: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
