#!/usr/bin/env bash
# Boot time of a stock Debian 12 system to multi-user: shrike's soft engine
# against QEMU's TCG emulator (from Debian), in the same run, with the same
# kernel, initrd, root image (scripts/debian-image.sh), memory and command
# line, the disk as virtio-blk-pci and an entropy device on both. Each boot
# gets a fresh copy of the image. The time is the wall time from the start
# of the VMM to the console line "shrike-report: is-system-running: running"
# (the image's report unit, after `systemctl is-system-running --wait`);
# the guest then powers off. shrike runs with its translator (the default)
# and with --soft-jit off. Results also go to bench/results/distro-boot.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-2}
MEM=${MEM:-512M}
DIR=${DEBIAN_IMAGE_DIR:-guest/cache/debian-12}
RESULTS=${RESULTS:-bench/results/distro-boot.txt}
append="root=/dev/vda console=ttyS0 shrike.report"
running='^shrike-report: is-system-running: running'

. bench/lib.sh

rc=0
scripts/debian-image.sh || rc=$?
if [ $rc -eq 75 ]; then
	echo "#### SKIPPED: bench/distro-boot.sh: the Debian mirror cannot be reached ####"
	exit 0
fi
[ $rc -eq 0 ] || exit $rc

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

shrike=(build/shrike run --engine soft --memory "$MEM" --stats --kernel "$DIR/vmlinuz"
	--initrd "$DIR/initrd.img" --disk "$TMP/rootfs.img" --append "$append")
interp=("${shrike[@]}" --soft-jit off)
qemu=(qemu-system-x86_64 -accel tcg -m "$MEM" -nodefaults -display none -serial stdio -no-reboot
	-kernel "$DIR/vmlinuz" -initrd "$DIR/initrd.img" -append "$append"
	-drive "file=$TMP/rootfs.img,format=raw,if=none,id=root"
	-device virtio-blk-pci,drive=root -device virtio-rng-pci)

# measure NAME CMD...: one boot; appends "ms uptime" to $TMP/NAME.
measure() {
	local name=$1 ms status up
	shift
	cp --sparse=always "$DIR/rootfs.img" "$TMP/rootfs.img"
	read -r ms status < <(line_ms "$TMP/$name.out" "$running" "$@")
	up=$(tr -d '\r' <"$TMP/$name.out" | sed -n 's/^shrike-report: uptime: \([0-9.]*\) s$/\1/p' | head -n 1)
	if [ "$ms" -lt 0 ] || [ "$status" -ne 0 ]; then
		echo "$name: no 'running' line or exit status $status; the end of its output:" >&2
		tr -d '\r' <"$TMP/$name.out" | tail -n 20 >&2
		exit 1
	fi
	echo "$ms ${up:-?}" >>"$TMP/$name"
	if [ "$name" != qemu ]; then
		grep -o 'instructions retired.*MIPS)' "$TMP/$name.out" | tr -s ' ' >"$TMP/$name.mips" || true
	fi
}

load=$(host_load)
for _ in $(seq "$REPS"); do
	measure shrike "${shrike[@]}"
	measure interp "${interp[@]}"
	measure qemu "${qemu[@]}"
done
best() { sort -n "$TMP/$1" | head -n 1; }
seconds() { python3 -c "print('%.2f' % ($1 / 1000.0))"; }
read -r s_ms s_up < <(best shrike)
read -r i_ms i_up < <(best interp)
read -r q_ms q_up < <(best qemu)
{
	echo "# bench/distro-boot.sh (wall times vary by about ±30% with the host's load)"
	echo "Debian 12 (debootstrap minbase + systemd, $(cat "$DIR/kernel-release")) to multi-user, $MEM, best of $REPS ($(date -u +%F))"
	echo "  $load"
	echo "  start to 'is-system-running: running' (wall; guest uptime at that point)"
	printf '  shrike --engine soft:              %s s  (uptime %s s; %s)\n' \
		"$(seconds "$s_ms")" "$s_up" "$(cat "$TMP/shrike.mips" 2>/dev/null)"
	printf '  shrike --soft-jit off:             %s s  (uptime %s s; %s)\n' \
		"$(seconds "$i_ms")" "$i_up" "$(cat "$TMP/interp.mips" 2>/dev/null)"
	printf '  qemu-system-x86_64 -accel tcg:     %s s  (uptime %s s)\n' "$(seconds "$q_ms")" "$q_up"
	python3 -c "print('  shrike / qemu time ratio: %.2f, with --soft-jit off %.2f (below 1 means shrike boots faster)' % ($s_ms / $q_ms, $i_ms / $q_ms))"
} | tee "$RESULTS"
