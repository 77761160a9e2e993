#!/usr/bin/env bash
# Boot-to-command time of the default Debian guest: shrike's soft engine
# against QEMU's TCG emulator (from Debian) booting the same kernel and
# initramfs with the same memory, console and command, in the same run.
# The command is `true`; the guest's init powers off right after it.
# shrike runs with its translator (the default) and with --soft-jit off.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
MEM=${MEM:-256M}
append="console=ttyS0 panic=-1 quiet loglevel=0 shrike.cmd=$(printf "'true'" | base64 -w0)"

. bench/lib.sh
best_s() { python3 -c "print('%.2f' % ($(best_ms "$@") / 1000.0))"; }
shrike() { build/shrike run --engine soft --soft-jit "$1" --memory "$MEM" "${@:2}" -- true; }
mips() { shrike "$1" --stats 2>&1 </dev/null | grep -o 'instructions retired.*MIPS)' | tr -s ' '; }
qemu() {
	qemu-system-x86_64 -accel tcg -m "$MEM" -nodefaults -display none -serial stdio -no-reboot \
		-kernel guest/out/vmlinuz -initrd guest/out/initrd.cpio.gz -append "$append"
}

load=$(host_load)
stats_on=$(mips on || true)
stats_off=$(mips off || true)
s=$(best_s shrike on)
i=$(best_s shrike off)
q=$(best_s qemu)
echo "boot to command (true) and poweroff, default guest, $MEM, best of $REPS ($(date -u +%F))"
echo "  $load"
echo "  shrike --engine soft:              $s s  ($stats_on)"
echo "  shrike --soft-jit off:             $i s  ($stats_off)"
echo "  qemu-system-x86_64 -accel tcg:     $q s"
python3 -c "print('  shrike / qemu time ratio: %.2f, with --soft-jit off %.2f (below 1 means shrike boots faster)' % ($s / $q, $i / $q))"
