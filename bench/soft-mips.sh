#!/usr/bin/env bash
# The soft engine's speed on a CPU-bound guest loop (the PVH test guest's
# spin=N: N rounds of xorshift32), against QEMU's TCG emulator (from Debian)
# running the same guest in the same run. MIPS comes from shrike's own
# retired-instruction count (--stats); the comparison with QEMU is by wall
# time of the loop alone: time(spin=N) - time(spin=0), best of $REPS.
# shrike runs with its translator (the default) and with --soft-jit off.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000000}
REPS=${REPS:-3}
KERNEL=tests/guests/out/pvh.elf

. bench/lib.sh
shrike() { build/shrike run --engine soft --soft-jit "$1" --kernel "$KERNEL" --append "spin=$2" "${@:3}"; }
qemu() {
	qemu-system-x86_64 -accel tcg -m 256 -nodefaults -display none -serial none \
		-device isa-debug-exit,iobase=0xf4,iosize=4 -kernel "$KERNEL" -append "spin=$1"
}

# "INSNS MIPS" of a whole run with --soft-jit $1, from --stats.
stats() {
	local out
	out=$(shrike "$1" "$N" --stats 2>&1 </dev/null || true)
	echo "$(echo "$out" | grep -o 'instructions retired *[0-9]*' | grep -o '[0-9]*$' || echo '?')" \
		"$(echo "$out" | grep -o '([0-9.]* MIPS)' | tr -d '()' | cut -d' ' -f1 || echo '?')"
}
load=$(host_load)
read -r insns mips < <(stats on)
read -r insns_off mips_off < <(stats off)
s0=$(best_ms shrike on 0)
s1=$(best_ms shrike on "$N")
i0=$(best_ms shrike off 0)
i1=$(best_ms shrike off "$N")
q0=$(best_ms qemu 0)
q1=$(best_ms qemu "$N")
echo "soft engine, CPU-bound loop: spin=$N, best of $REPS ($(date -u +%F))"
echo "  $load"
echo "  shrike --engine soft: $insns instructions retired, $mips MIPS (whole run)"
echo "  shrike --soft-jit off: $insns_off instructions retired, $mips_off MIPS (whole run)"
printf '  %-32s %10s\n' "loop time (ms)" ""
printf '  %-32s %10d\n' "shrike --engine soft" $((s1 - s0))
printf '  %-32s %10d\n' "shrike --soft-jit off" $((i1 - i0))
printf '  %-32s %10d\n' "qemu-system-x86_64 -accel tcg" $((q1 - q0))
python3 -c "print('  shrike / qemu time ratio: %.2f, with --soft-jit off %.2f (lower is better for shrike)' % (($s1 - $s0) / max(1, $q1 - $q0), ($i1 - $i0) / max(1, $q1 - $q0)))"
