#!/usr/bin/env bash
# virtio throughput of the default Debian guest, in the same run:
#   - virtio-blk sequential read and write (dd, 1 MiB blocks, O_DIRECT in the
#     guest) against the same image files read/written by dd on the host;
#   - TCP over virtio-net and a tap device, guest->host and host->guest
#     (busybox nc in the guest, socat on the host), inside a network
#     namespace made here;
# for shrike (`--engine auto`: the soft engine on this host) and for QEMU's
# TCG emulator from Debian with virtio-blk-pci / virtio-net-pci on the same
# kernel, initramfs, images and commands. Guest figures are timed with the
# guest's own clock (/proc/uptime, 10 ms resolution; both engines' clocks
# follow the host's), host figures are the host dd's report.
# Needs root (network namespace, tap devices).
set -uo pipefail
cd "$(dirname "$0")/.."
MEM=${MEM:-256M}
MIB=1048576
DISK_MIB=${DISK_MIB:-64}
NET_MIB=${NET_MIB:-32}
SHRIKE=$(realpath build/shrike)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
[ "$(id -u)" = 0 ] || { echo "bench/virtio.sh: needs root (network namespace, tap)" >&2; exit 1; }

head -c $((DISK_MIB * MIB)) /dev/urandom >"$TMP/read.img"
truncate -s $((DISK_MIB * MIB)) "$TMP/write.img"
head -c $((NET_MIB * MIB)) /dev/zero >"$TMP/net-send"

# The host's dd: "N bytes (...) copied, S s, R" -> MB/s.
dd_rate() { sed -n 's/.*copied, \([0-9.]*\) s[a-z]*, .*/\1/p' | head -1 |
	awk -v b=$((DISK_MIB * MIB)) '$1 > 0 { printf "%.1f", b / $1 / 1e6 }'; }

GUEST='
t() { cut -d" " -f1 /proc/uptime; }
took() { echo "$1_seconds=$(awk "BEGIN{print $3 - $2}")"; }
s=$(t); dd if=/dev/vda of=/dev/null bs=1M iflag=direct 2>/dev/null; took read $s $(t)
s=$(t); dd if=/dev/zero of=/dev/vdb bs=1M count='$DISK_MIB' oflag=direct 2>/dev/null; took write $s $(t)
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0
s=$(t); head -c '$((NET_MIB * MIB))' /dev/zero | nc 10.0.2.1 5000; took tx $s $(t)
s=$(t); nc 10.0.2.1 5001 | wc -c | sed "s/^/rx_bytes=/"; took rx $s $(t)
'

# In the namespace: a tap for the VM and the host end of both transfers.
netns_bench() {
	ip link set lo up
	ip tuntap add dev tap0 mode tap
	ip addr add 10.0.2.1/24 dev tap0
	ip link set tap0 up
	socat -u TCP-LISTEN:5000,reuseaddr OPEN:/dev/null &
	local a=$!
	socat -u OPEN:"$TMP/net-send" TCP-LISTEN:5001,reuseaddr &
	local b=$!
	"$@" </dev/null || true
	kill $a $b 2>/dev/null || true
}
export TMP
export -f netns_bench

run_vm() { # NAME CMD... -> $TMP/NAME.out
	local name=$1
	shift
	timeout -k 5 1200 unshare --net bash -c 'netns_bench "$@"' netns "$@" 2>&1 | tr -d '\r' \
		>"$TMP/$name.out"
}

enc=$(printf '%s' "sh -c '$GUEST'" | base64 -w0)
append="console=ttyS0 panic=-1 quiet loglevel=0 shrike.cmd=$enc"
truncate -s 0 "$TMP/write.img"
truncate -s $((DISK_MIB * MIB)) "$TMP/write.img"
run_vm shrike "$SHRIKE" run --memory "$MEM" --disk "$TMP/read.img" --disk "$TMP/write.img" \
	--net tap=tap0 -- sh -c "$GUEST"
truncate -s 0 "$TMP/write.img"
truncate -s $((DISK_MIB * MIB)) "$TMP/write.img"
run_vm qemu qemu-system-x86_64 -accel tcg -m "$MEM" -nodefaults -display none -serial stdio \
	-no-reboot -kernel guest/out/vmlinuz -initrd guest/out/initrd.cpio.gz -append "$append" \
	-drive file="$TMP/read.img",format=raw,if=none,id=d0,cache=none -device virtio-blk-pci,drive=d0 \
	-drive file="$TMP/write.img",format=raw,if=none,id=d1,cache=none -device virtio-blk-pci,drive=d1 \
	-netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0

host_read=$(dd if="$TMP/read.img" of=/dev/null bs=1M iflag=direct 2>&1 | dd_rate)
host_write=$(dd if=/dev/zero of="$TMP/write.img" bs=1M count="$DISK_MIB" oflag=direct 2>&1 | dd_rate)

rate_of() { # NAME read|write|tx|rx BYTES -> MB/s from the guest's "<what>_seconds=S"
	awk -F= -v k="$2_seconds" -v b="$3" '$1 == k && $2 > 0 { printf "%.1f", b / $2 / 1e6 }' \
		"$TMP/$1.out"
}
# The guests' own output, for the record and for diagnosis.
for n in shrike qemu; do
	grep -E '_seconds=|rx_bytes=' "$TMP/$n.out" | sed "s/^/  $n: /" >&2 || true
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "virtio throughput, default guest, $MEM, ${DISK_MIB} MiB disk / ${NET_MIB} MiB TCP ($(date -u +%F))"
printf '  %-28s %10s %10s %10s %14s\n' "" shrike qemu-tcg host "shrike/qemu"
for k in read write; do
	s=$(rate_of shrike "$k" $((DISK_MIB * MIB)))
	q=$(rate_of qemu "$k" $((DISK_MIB * MIB)))
	h=$host_read
	[ "$k" = write ] && h=$host_write
	printf '  %-28s %10s %10s %10s %14s\n' "blk sequential $k MB/s" "${s:-fail}" "${q:-fail}" "$h" \
		"$(ratio "${s:-0}" "${q:-0}")"
done
for k in tx rx; do
	s=$(rate_of shrike "$k" $((NET_MIB * MIB)))
	q=$(rate_of qemu "$k" $((NET_MIB * MIB)))
	label="TCP guest->host MB/s"
	[ "$k" = rx ] && label="TCP host->guest MB/s"
	printf '  %-28s %10s %10s %10s %14s\n' "$label" "${s:-fail}" "${q:-fail}" "-" \
		"$(ratio "${s:-0}" "${q:-0}")"
done
