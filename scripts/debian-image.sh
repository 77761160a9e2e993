#!/usr/bin/env bash
# Builds a bootable Debian 12 (bookworm) root file system image for shrike:
#
#   debootstrap --variant=minbase \
#       --include=systemd-sysv,udev,linux-image-cloud-amd64,kmod bookworm
#
# written to a raw ext4 image with `mkfs.ext4 -d` (no loop mounts), plus the
# kernel and the initramfs-tools initrd taken out of it. Outputs, in
# $DEBIAN_IMAGE_DIR (default guest/cache/debian-12):
#
#   rootfs.img      raw ext4 image of the whole system (sparse, $DEBIAN_IMAGE_SIZE)
#   vmlinuz         the image's kernel (linux-image-cloud-amd64)
#   initrd.img      its initramfs-tools initrd, with virtio_pci and virtio_blk
#   kernel-release  e.g. 6.1.0-37-cloud-amd64
#
# Boot it with: shrike run --kernel vmlinuz --initrd initrd.img --disk rootfs.img \
#                          --append "root=/dev/vda"
#
# With `shrike.report` on the kernel command line, a oneshot unit waits for
# `systemctl is-system-running --wait` once multi-user.target is reached,
# prints the state, `systemctl --failed` and the login-prompt state on the
# console (lines starting with "shrike-report:"), then powers off. Without
# it the system stays up with a serial getty on the console; root has no
# password (a throwaway test system).
#
# The mirror is the first bookworm `deb` source of the machine's apt
# configuration (/etc/apt/sources.list, sources.list.d/*.list and *.sources),
# or $DEBIAN_MIRROR. Cached: the debootstrap tree and its .debs are kept in
# $DEBIAN_IMAGE_DIR, and each output is rebuilt only when missing or made by
# an older revision of this script. Runs as root.
#
# Exit status: 0 with the outputs in place, 75 (EX_TEMPFAIL) when the mirror
# cannot be reached, 1 on any other failure.
set -Eeuo pipefail

# Bump when the customisation below changes: the image is then rebuilt from
# the cached debootstrap tree (BASE_REVISION: the debootstrap tree itself).
BASE_REVISION=1
IMAGE_REVISION=3

HERE=$(cd "$(dirname "$0")/.." && pwd)
DIR=${DEBIAN_IMAGE_DIR:-$HERE/guest/cache/debian-12}
SIZE=${DEBIAN_IMAGE_SIZE:-2G}
SUITE=bookworm
INCLUDE=systemd-sysv,udev,linux-image-cloud-amd64,kmod
ROOT=$DIR/root
EX_TEMPFAIL=75

log() { echo "debian-image: $*" >&2; }
die() { log "error: $*"; exit 1; }
trap 'log "error: command failed at line $LINENO"' ERR

# Prints "URI" for every one-line `deb` entry of a sources.list file whose
# suite is $SUITE (options in [...] are skipped).
mirrors_oneline() {
	awk -v suite="$SUITE" '
		/^[ \t]*#/ || NF < 3 || $1 != "deb" { next }
		{
			i = 2
			if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
			if ($(i + 1) == suite) print $i
		}' "$1"
}

# The same for a deb822 .sources file: stanzas with Types: deb, Suites
# containing $SUITE and not Enabled: no; every URI of such a stanza.
mirrors_deb822() {
	awk -v suite="$SUITE" '
		function flush() {
			if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no")
				for (k = 1; k <= nu; k++) print uri[k]
			types = suites = enabled = ""; nu = 0
		}
		/^[ \t]*#/ { next }
		/^[ \t]*$/ { flush(); next }
		{
			field = tolower($1); sub(/:$/, "", field)
			value = $0; sub(/^[^:]*:[ \t]*/, "", value)
			if (field == "types") types = value
			else if (field == "suites") suites = value
			else if (field == "enabled") enabled = tolower(value)
			else if (field == "uris") { nu = split(value, uri, /[ \t]+/) }
		}
		END { flush() }' "$1"
}

# The mirror debootstrap uses: $DEBIAN_MIRROR, else the apt configuration.
find_mirror() {
	local f
	if [[ -n ${DEBIAN_MIRROR:-} ]]; then
		echo "$DEBIAN_MIRROR"
		return
	fi
	{
		[[ -f /etc/apt/sources.list ]] && mirrors_oneline /etc/apt/sources.list
		for f in /etc/apt/sources.list.d/*; do
			case $f in
			*.list) mirrors_oneline "$f" ;;
			*.sources) mirrors_deb822 "$f" ;;
			esac
		done
	} | grep -E '^(https?|file)://' | head -n 1 | grep . ||
		die "no '$SUITE' deb source in /etc/apt (set DEBIAN_MIRROR)"
}

# True when the mirror answers for $SUITE (file:// mirrors are checked on disk).
mirror_reachable() {
	local url=${1%/}/dists/$SUITE/Release
	case $url in
	file://*) [[ -r ${url#file://} ]] ;;
	*) wget -q -O /dev/null --tries=2 --timeout=20 "$url" ;;
	esac
}

# True when stamp $1 is missing or holds something other than $2.
stamp_stale() { [[ ! -f $1 || $(cat "$1") != "$2" ]]; }

build_base() {
	local mirror=$1
	log "debootstrap $SUITE from $mirror (several minutes)"
	rm -rf "$ROOT" "$DIR/base.stamp"
	mkdir -p "$DIR/debs"
	if ! debootstrap --variant=minbase --include="$INCLUDE" --cache-dir="$DIR/debs" \
		"$SUITE" "$ROOT" "$mirror" >"$DIR/debootstrap.log" 2>&1; then
		tail -n 15 "$DIR/debootstrap.log" >&2
		# A download failure is the network's, not ours: say so with 75.
		if grep -qE "Couldn't download|Failed getting release|Couldn't get|Failed to download" \
			"$DIR/debootstrap.log"; then
			log "debootstrap could not download from $mirror"
			exit $EX_TEMPFAIL
		fi
		die "debootstrap failed (log: $DIR/debootstrap.log)"
	fi
	echo "$BASE_REVISION $SUITE $mirror" >"$DIR/base.stamp"
}

# Files added to the debootstrap tree; idempotent (all are overwritten).
customise() {
	# The kernel's virtio drivers are modules: the initrd must carry the ones
	# that reach the root disk (MODULES=most has them too; this makes sure).
	cat >"$ROOT/etc/initramfs-tools/modules" <<-'EOF'
		# shrike: the root file system is on virtio-blk behind virtio-pci
		virtio_pci
		virtio_blk
		ext4
	EOF
	# The fsck hook cannot probe /dev/vda from here: name the type.
	echo FSTYPE=ext4 >"$ROOT/etc/initramfs-tools/conf.d/shrike"
	cat >"$ROOT/etc/fstab" <<-'EOF'
		/dev/vda / ext4 defaults,errors=remount-ro 0 1
	EOF
	echo shrike-debian >"$ROOT/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\tshrike-debian\n' >"$ROOT/etc/hosts"
	# A machine id now, so that the first boot is not a "first boot"
	# (systemd-firstboot would otherwise ask questions on the console).
	if [[ ! -s $ROOT/etc/machine-id ]]; then
		{ od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; echo; } >"$ROOT/etc/machine-id"
	fi
	# Root logs in on the console without a password: a throwaway test system.
	sed -i 's/^root:[^:]*:/root::/' "$ROOT/etc/shadow"

	install -m 755 /dev/stdin "$ROOT/usr/local/sbin/shrike-report" <<-'EOF'
		#!/bin/sh
		# Reports the boot's outcome on the console, then powers off
		# (shrike-report.service, only with shrike.report on the kernel command line).
		# Each line opens /dev/console anew: agetty's vhangup() on the serial
		# line revokes descriptors opened before it, and SIGHUP is ignored.
		trap '' HUP
		say() { echo "shrike-report: $*" >/dev/console 2>/dev/null; }
		state=$(systemctl is-system-running --wait)
		say "is-system-running: $state"
		say "uptime: $(cut -d' ' -f1 /proc/uptime) s"
		systemctl --failed --no-legend --plain | while read -r line; do say "failed: $line"; done
		# The login prompt: agetty on the console's tty has printed it once it
		# waits for input, in select() (do_select) or in read(). Up to 60 s.
		read -r active </sys/class/tty/console/active
		tty=/dev/${active##* }
		prompt=no
		for _ in $(seq 60); do
			for p in /proc/[0-9]*; do
				read -r comm <"$p/comm" 2>/dev/null || continue
				[ "$comm" = agetty ] && [ "$(readlink "$p/fd/0")" = "$tty" ] || continue
				case $(cat "$p/wchan" 2>/dev/null) in
				do_select | *tty_read* | wait_woken) prompt=yes ;;
				esac
			done
			[ $prompt = yes ] && break
			sleep 1
		done
		# Let the UART drain the prompt before the poweroff.
		sleep 1
		say "login prompt on $tty: $prompt"
		say "powering off"
		systemctl poweroff
	EOF
	cat >"$ROOT/etc/systemd/system/shrike-report.service" <<-'EOF'
		[Unit]
		Description=Report the boot state on the console and power off (shrike tests)
		ConditionKernelCommandLine=shrike.report
		After=multi-user.target

		[Service]
		# simple, not oneshot: a oneshot's start job would keep the system
		# "starting", and is-system-running --wait would wait for itself.
		Type=simple
		ExecStart=/usr/local/sbin/shrike-report

		[Install]
		WantedBy=multi-user.target
	EOF
	ln -sf /etc/systemd/system/shrike-report.service \
		"$ROOT/etc/systemd/system/multi-user.target.wants/shrike-report.service"

	log "update-initramfs in the image"
	chroot "$ROOT" update-initramfs -u -k all >"$DIR/update-initramfs.log" 2>&1 ||
		{ tail -n 15 "$DIR/update-initramfs.log" >&2; die "update-initramfs failed"; }
	chroot "$ROOT" apt-get clean
}

# The kernel release installed in the tree (exactly one is expected).
kernel_release() {
	local k
	k=$(cd "$ROOT/boot" && ls vmlinuz-* 2>/dev/null) || die "no kernel in $ROOT/boot"
	[[ $(wc -w <<<"$k") == 1 ]] || die "several kernels in $ROOT/boot: $k"
	echo "${k#vmlinuz-}"
}

build_image() {
	local release
	rm -f "$DIR/image.stamp"
	customise
	release=$(kernel_release)
	chroot "$ROOT" lsinitramfs "/boot/initrd.img-$release" >"$DIR/initrd.list"
	grep -Eq '(^|/)virtio_blk\.ko' "$DIR/initrd.list" || die "the initrd lacks virtio_blk"
	cp "$ROOT/boot/vmlinuz-$release" "$DIR/vmlinuz"
	cp "$ROOT/boot/initrd.img-$release" "$DIR/initrd.img"
	echo "$release" >"$DIR/kernel-release"
	log "mkfs.ext4 -d ($SIZE)"
	rm -f "$DIR/rootfs.img.tmp"
	truncate -s "$SIZE" "$DIR/rootfs.img.tmp"
	mkfs.ext4 -q -F -L debian-root -d "$ROOT" "$DIR/rootfs.img.tmp"
	mv "$DIR/rootfs.img.tmp" "$DIR/rootfs.img"
	echo "$IMAGE_REVISION $(cat "$DIR/base.stamp")" >"$DIR/image.stamp"
}

main() {
	local mirror
	[[ $(id -u) == 0 ]] || die "run as root (debootstrap and the image's file owners need it)"
	command -v debootstrap >/dev/null || die "debootstrap is missing (scripts/install-deps.sh)"
	command -v wget >/dev/null || die "wget is missing (scripts/install-deps.sh)"
	mkdir -p "$DIR"
	# One build at a time (a test and a benchmark may ask together).
	exec 9>"$DIR/.lock"
	flock 9
	mirror=$(find_mirror)
	if stamp_stale "$DIR/base.stamp" "$BASE_REVISION $SUITE $mirror"; then
		if ! mirror_reachable "$mirror"; then
			log "the mirror $mirror does not answer for $SUITE"
			exit $EX_TEMPFAIL
		fi
		build_base "$mirror"
	fi
	if stamp_stale "$DIR/image.stamp" "$IMAGE_REVISION $(cat "$DIR/base.stamp")" ||
		[[ ! -s $DIR/rootfs.img || ! -s $DIR/vmlinuz || ! -s $DIR/initrd.img ]]; then
		build_image
	fi
	log "ready: $DIR/{rootfs.img,vmlinuz,initrd.img} ($(cat "$DIR/kernel-release"))"
}

main "$@"
