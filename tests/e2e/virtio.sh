#!/usr/bin/env bash
# End-to-end tests of the PCI bus and the virtio devices with the default
# Debian guest, on the engine `--engine auto` picks (the soft engine on hosts
# without VT-x/AMD-V, such as this one). Three boots, about a minute each:
#   1. disks, entropy, lspci and the network, in one guest session;
#   2. data written and synced in the guest survives `kill -9` of shrike;
#   3. the virtio console, with input piped in before the guest's driver runs.
# The network test runs entirely inside a network namespace made here (tap
# device, addresses, the host end of the TCP transfers); nothing leaves it.
set -u
cd "$(dirname "$0")/../.."
SHRIKE=$(realpath "${SHRIKE:-build/shrike}")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
skipped=0
MIB=1048576

if [ ! -f guest/out/vmlinuz ] || [ ! -f guest/out/initrd.cpio.gz ]; then
	echo "##############################################################"
	echo "## SKIPPED: the virtio tests need the default guest (make guest)"
	echo "##############################################################"
	echo "virtio: 0 passed, 0 failed, 3 skipped"
	exit 0
fi

ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() {
	failed=$((failed + 1))
	echo "FAIL $1"
	sed 's/^/     | /' "$TMP/out" "$TMP/err" 2>/dev/null | tail -25
}

# expect NAME REGEX...: every regex must match a line of the guest's output.
expect() {
	local name=$1
	shift
	for re in "$@"; do
		grep -qE -- "$re" "$TMP/out" || { fail "$name: no line matches /$re/"; return 1; }
	done
	ok "$name"
}

# Normalises the guest's tty output (\r\n) for grep.
clean_output() { tr -d '\r' <"$TMP/raw" >"$TMP/out"; }

# ---- 1. disks, entropy, lspci, network ----

can_net() {
	[ "$(id -u)" = 0 ] && [ -c /dev/net/tun ] && command -v socat >/dev/null &&
		command -v ip >/dev/null && unshare --net true 2>/dev/null
}

# The guest's side of boot 1.
GUEST_SCRIPT='
lspci
echo "ro_sha=$(sha256sum </dev/vdb | cut -c1-64)"
yes shrike-pattern | head -c 4194304 >/dev/vda && sync && echo wrote_vda
if dd if=/dev/zero of=/dev/vdb bs=512 count=1 2>/dev/null; then echo ro_write=accepted; else echo ro_write=refused; fi
echo "ro_flag=$(cat /sys/block/vdb/ro)"
echo "hwrng_bytes=$(head -c 64 /dev/hwrng | wc -c)"
if [ -e /sys/class/net/eth0 ]; then
	ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0
	echo "mac=$(cat /sys/class/net/eth0/address)"
	head -c 4194304 /dev/vdb | nc 10.0.2.1 5000; echo "sent=$?"
	echo "recv_sha=$(nc 10.0.2.1 5001 | sha256sum | cut -c1-64)"
fi
'

# Inside the namespace: tap0 at 10.0.2.1, socat receiving on 5000 and
# serving on 5001, then shrike. Arguments: the shrike command line.
netns_run() {
	ip link set lo up &&
		ip tuntap add dev tap0 mode tap &&
		ip addr add 10.0.2.1/24 dev tap0 &&
		ip link set tap0 up || return 99
	socat -u TCP-LISTEN:5000,reuseaddr OPEN:"$TMP/net-recv",creat &
	local recv=$!
	socat -u OPEN:"$TMP/net-send" TCP-LISTEN:5001,reuseaddr &
	local send=$!
	"$@"
	local rc=$?
	kill $recv $send 2>/dev/null
	wait 2>/dev/null
	return $rc
}

boot_devices() {
	truncate -s $((8 * MIB)) "$TMP/rw.img"
	head -c $((8 * MIB)) /dev/urandom >"$TMP/ro.img"
	head -c $((4 * MIB)) /dev/urandom >"$TMP/net-send"
	local args=(run --memory 256M --disk "$TMP/rw.img" --disk "$TMP/ro.img,ro")
	local t0=$(date +%s) rc
	if can_net; then
		args+=(--net tap=tap0,mac=52:54:00:12:34:56 -- sh -c "$GUEST_SCRIPT")
		export TMP
		export -f netns_run
		timeout -k 5 600 unshare --net bash -c 'netns_run "$@"' netns "$SHRIKE" "${args[@]}" \
			</dev/null >"$TMP/raw" 2>"$TMP/err"
		rc=$?
	else
		echo "##############################################################"
		echo "## SKIPPED: virtio-net needs root, /dev/net/tun, socat and ip"
		echo "##############################################################"
		skipped=$((skipped + 1))
		args+=(-- sh -c "$GUEST_SCRIPT")
		timeout -k 5 600 "$SHRIKE" "${args[@]}" </dev/null >"$TMP/raw" 2>"$TMP/err"
		rc=$?
	fi
	clean_output
	echo "     (devices boot: $(($(date +%s) - t0)) s)"
	[ $rc -eq 0 ] || { fail "devices boot: exit status $rc"; return 1; }
}

check_devices() {
	expect "lspci lists the host bridge and the virtio devices" \
		"^00:00.0 0600: 8086:29c0" "^00:01.0 0100: 1af4:1042 \(rev 01\)" \
		"^00:02.0 0100: 1af4:1042" "^00:0[3-9].0 (00ff|ff00): 1af4:1044"
	expect "guest reads the host's image" "^ro_sha=$(sha256sum <"$TMP/ro.img" | cut -c1-64)\$"
	if grep -q '^wrote_vda$' "$TMP/out" &&
		cmp -s -n $((4 * MIB)) <(yes shrike-pattern | head -c $((4 * MIB))) "$TMP/rw.img" &&
		cmp -s -i $((4 * MIB)) "$TMP/rw.img" <(head -c $((8 * MIB)) /dev/zero); then
		ok "guest's writes are in the image file"
	else
		fail "guest's writes are in the image file"
	fi
	expect "read-only disk refuses writes" "^ro_write=refused$" "^ro_flag=1$"
	expect "guest reads /dev/hwrng" "^hwrng_bytes=64$"
	if grep -q '^mac=' "$TMP/out"; then
		expect "guest sees the MAC" "^mac=52:54:00:12:34:56$"
		if cmp -s -n $((4 * MIB)) "$TMP/ro.img" "$TMP/net-recv" &&
			[ "$(stat -c %s "$TMP/net-recv")" = $((4 * MIB)) ]; then
			ok "TCP guest->host over the tap arrives intact"
		else
			fail "TCP guest->host over the tap arrives intact"
		fi
		expect "TCP host->guest over the tap arrives intact" \
			"^recv_sha=$(sha256sum <"$TMP/net-send" | cut -c1-64)\$"
	fi
}

boot_devices && check_devices

# ---- 2. sync, then kill -9 ----

boot_kill() {
	truncate -s $((8 * MIB)) "$TMP/kill.img"
	local t0=$(date +%s)
	"$SHRIKE" run --memory 256M --disk "$TMP/kill.img" -- sh -c \
		'yes durable-data | head -c 1048576 >/dev/vda; sync; echo synced; sleep 1000' \
		</dev/null >"$TMP/raw" 2>"$TMP/err" &
	local pid=$! waited=0
	while ! grep -q synced "$TMP/raw" 2>/dev/null && kill -0 $pid 2>/dev/null && [ $waited -lt 600 ]; do
		sleep 1
		waited=$((waited + 1))
	done
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	clean_output
	echo "     (kill -9 boot: $(($(date +%s) - t0)) s)"
	if grep -q synced "$TMP/out" &&
		cmp -s -n $MIB <(yes durable-data | head -c $MIB) "$TMP/kill.img"; then
		ok "synced data survives kill -9 of shrike"
	else
		fail "synced data survives kill -9 of shrike"
	fi
}
boot_kill

# ---- 3. virtio console ----

boot_console() {
	local t0=$(date +%s)
	printf '%s\n' 'echo piped-$((6*7)); cat /sys/class/tty/console/active; exit 3' |
		timeout -k 5 600 "$SHRIKE" run --memory 256M --console virtio >"$TMP/raw" 2>"$TMP/err"
	local rc=$?
	clean_output
	echo "     (console boot: $(($(date +%s) - t0)) s)"
	[ $rc -eq 3 ] || { fail "virtio console: exit status $rc, expected 3"; return 1; }
	expect "virtio console carries piped input and output" "^piped-42$" "^hvc0$"
}
boot_console

echo "virtio: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
