#!/usr/bin/env bash
# Cost of one port-I/O VM exit handled by shrike, against the smallest
# possible KVM loop (bench/kvm-min.c) and against QEMU (from Debian, with
# KVM), all in the same run on the same multiboot test guest.
#
# Per-exit cost for a VMM = (time with ioloop=N - time with ioloop=0) / N,
# best of $REPS runs each, so boot and teardown cancel out.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200000}
REPS=${REPS:-3}
KERNEL=tests/guests/out/multiboot.elf
mkdir -p build/bench
cc -O2 -o build/bench/kvm-min bench/kvm-min.c

. bench/lib.sh
per_exit_us() { python3 -c "print('%.3f' % (($2 - $1) * 1000.0 / $N))" "$1" "$2"; }

shrike() { build/shrike run --engine kvm --kernel "$KERNEL" --append "ioloop=$1"; }
qemu() {
	qemu-system-x86_64 -accel kvm -M pc -m 256 -nodefaults -display none -serial none \
		-device isa-debug-exit,iobase=0xf4,iosize=4 -kernel "$KERNEL" -append "ioloop=$1"
}

min_line=$(build/bench/kvm-min "$N")
min_us=$(echo "$min_line" | grep -o '[0-9.]* us per exit' | cut -d' ' -f1)
s0=$(best_ms shrike 0)
s1=$(best_ms shrike "$N")
shrike_us=$(per_exit_us "$s0" "$s1")
if command -v qemu-system-x86_64 >/dev/null; then
	q0=$(best_ms qemu 0)
	q1=$(best_ms qemu "$N")
	qemu_us=$(per_exit_us "$q0" "$q1")
else
	qemu_us=n/a
fi

echo "port-I/O exit cost, N=$N exits, best of $REPS ($(date -u +%F), $(uname -r))"
printf '  %-28s %10s %8s\n' "VMM" "us/exit" "ratio"
printf '  %-28s %10s %8s\n' "minimal KVM loop" "$min_us" "1.00"
printf '  %-28s %10s %8s\n' "shrike (kvm engine)" "$shrike_us" "$(python3 -c "print('%.2f' % ($shrike_us / $min_us))")"
if [ "$qemu_us" != n/a ]; then
	printf '  %-28s %10s %8s\n' "qemu-system-x86_64 -accel kvm" "$qemu_us" "$(python3 -c "print('%.2f' % ($qemu_us / $min_us))")"
fi
echo "  (shrike boot+teardown: ${s0} ms; qemu: ${q0:-n/a} ms)"
