#!/bin/bash
# Assemble shrike's default guest from Debian packages (see guest/README.md).
#
#   guest/out/vmlinuz         bzImage of linux-image-<release> (Debian cloud kernel)
#   guest/out/vmlinux         the ELF inside it, bootable through its PVH note
#   guest/out/kernel-release  e.g. 6.1.0-56-cloud-amd64
#   guest/out/initrd.cpio.gz  busybox-static, /init, outb, the virtio modules
#
# Runs as root on Debian 12. Idempotent: each output is rebuilt only when it
# is older than its inputs; downloads are kept in guest/cache.
set -Eeuo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=$HERE/cache
OUT=$HERE/out
CC=${GUEST_CC:-gcc}
META_PKG=linux-image-cloud-amd64
# The drivers shrike's devices need; their dependencies are added from .modinfo.
WANTED_MODULES="virtio virtio_ring virtio_pci virtio_pci_modern_dev
  virtio_pci_legacy_dev virtio_blk virtio_net net_failover failover
  virtio_console virtio_rng"

log() { echo "guest: $*" >&2; }
die() { log "error: $*"; exit 1; }
trap 'log "error: command failed at line $LINENO"' ERR

# True when $1 is missing or older than any of the other arguments.
stale() {
	local out=$1 in
	shift
	[[ -e $out ]] || return 0
	for in in "$@"; do
		[[ $in -nt $out ]] && return 0
	done
	return 1
}

# apt may lack package lists on a fresh machine: update once, then retry.
APT_UPDATED=0
apt_retry() {
	"$@" && return 0
	[[ $APT_UPDATED == 1 ]] && return 1
	log "apt failed; running apt-get update once"
	apt-get update -qq && APT_UPDATED=1
	"$@"
}

# The versioned kernel package the meta package currently depends on.
resolve_kernel_pkg() {
	apt-cache depends "$META_PKG" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ && !found { print $2; found = 1 }' |
		grep .
}

candidate_version() {
	apt-cache policy "$1" | awk '$1 == "Candidate:" { print $2 }' | grep -v '(none)'
}

# Downloads package $1 into the cache unless that version is there; prints the .deb path.
fetch_deb() {
	local pkg=$1 ver deb
	ver=$(apt_retry candidate_version "$pkg") || die "no candidate for $pkg"
	deb=$CACHE/${pkg}_${ver//:/%3a}_amd64.deb
	if [[ ! -s $deb ]]; then
		log "downloading $pkg $ver"
		(cd "$CACHE" && apt_retry apt-get download -qq -o APT::Sandbox::User=root "$pkg=$ver") >&2 ||
			die "apt-get download $pkg failed"
	fi
	[[ -s $deb ]] || die "expected $deb"
	echo "$deb"
}

# Extracts $1 into directory $2 unless it already holds this .deb.
extract_deb() {
	local deb=$1 dir=$2
	if stale "$dir/.extracted" "$deb"; then
		rm -rf "$dir"
		mkdir -p "$dir"
		dpkg-deb -x "$deb" "$dir"
		touch "$dir/.extracted"
	fi
}

# (Pipelines here never stop reading early: with pipefail, a writer killed by
# SIGPIPE would fail the build.)

# Little-endian unsigned integer of $3 bytes at offset $2 of file $1.
read_le() {
	od -An -t "u$3" -j "$(($2))" -N "$3" "$1" | tr -d ' \n'
}

# Picks the decompressor from the payload's magic bytes (the kernel's own list).
payload_decompressor() {
	local magic
	magic=$(od -An -tx1 -N 6 "$1" | tr -d ' \n')
	case $magic in
	1f8b*) echo "gzip -dc" ;;
	fd377a585a00) echo "xz -dc" ;;
	28b52ffd*) echo "zstd -dcq" ;;
	02214c18*) echo "lz4 -dc" ;;
	425a68*) echo "bzip2 -dc" ;;
	5d0000*) echo "xz -dc --format=lzma" ;;
	894c5a4f*) echo "lzop -dc" ;;
	*) return 1 ;;
	esac
}

# bzImage -> vmlinux, per the x86 boot protocol (Documentation/x86/boot.rst):
# the protected-mode part starts at (setup_sects + 1) * 512 and the compressed
# kernel lies at payload_offset/payload_length within it (protocol >= 2.08).
# The kernel build appends the uncompressed size as a le32 after the stream;
# strip it before decompressing, then check the result against it.
extract_vmlinux() {
	local bz=$1 dst=$2 proto setup_sects start len payload tool want got
	proto=$(read_le "$bz" 0x206 2)
	((proto >= 0x208)) || die "boot protocol $proto too old for payload fields"
	setup_sects=$(read_le "$bz" 0x1f1 1)
	((setup_sects == 0)) && setup_sects=4
	start=$(((setup_sects + 1) * 512 + $(read_le "$bz" 0x248 4)))
	len=$(read_le "$bz" 0x24c 4)
	(( len > 4 && start + len <= $(stat -c %s "$bz") )) || die "payload out of bounds"
	payload=$(mktemp)
	dd if="$bz" of="$payload" iflag=skip_bytes,count_bytes skip="$start" count="$len" status=none
	want=$(read_le "$payload" $((len - 4)) 4)
	tool=$(payload_decompressor "$payload") || die "unknown payload compression"
	log "decompressing vmlinux with ${tool%% *}"
	truncate -s $((len - 4)) "$payload"
	$tool <"$payload" >"$dst.tmp"
	rm -f "$payload"
	got=$(stat -c %s "$dst.tmp")
	((got == want)) || die "vmlinux is $got bytes, header says $want"
	[[ $(od -An -c -N 4 "$dst.tmp" | tr -d ' \n') == '177ELF' ]] || die "vmlinux is not ELF"
	# XEN_ELFNOTE_PHYS32_ENTRY (18 = 0x12): the PVH entry point.
	readelf -n "$dst.tmp" | grep -E 'Xen.*(0x00000012|PHYS32_ENTRY)' >/dev/null ||
		die "vmlinux has no Xen PVH note"
	mv "$dst.tmp" "$dst"
}

# Module name -> .ko path (names use '_' where file names may use '-').
module_path() {
	find "$MODDIR/kernel" -name '*.ko' | awk -v want="$1" '{
		n = $0; sub(/.*\//, "", n); sub(/\.ko$/, "", n); gsub(/-/, "_", n)
		if (n == want && !found) { print; found = 1 }
	}'
}

module_depends() {
	objcopy -O binary --only-section=.modinfo "$1" /dev/stdout |
		tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '
}

# Appends module $1 to LOAD_ORDER after its dependencies (depth-first; the
# module graph is acyclic, and the depth bound guards against a bad one).
add_module() {
	local name=$1 depth=${2:-0} path dep
	[[ " $LOAD_ORDER " == *" $name "* ]] && return 0
	((depth < 16)) || die "module dependency chain too deep at $name"
	path=$(module_path "$name")
	if [[ -z $path ]]; then
		grep -q "/${name//_/[-_]}\.ko$" "$MODDIR/modules.builtin" &&
			{ log "$name is built in"; return 0; }
		die "module $name not found in $MODDIR"
	fi
	for dep in $(module_depends "$path"); do
		add_module "$dep" $((depth + 1))
	done
	LOAD_ORDER="$LOAD_ORDER $name"
	MODULE_FILE[$name]=$path
}

# Copies PATH (a file or a symlink) from tree SRC to tree DST; an absolute
# symlink's target is copied too, resolved in SRC (depth-bounded).
copy_from_tree() {
	local src=$1 path=$2 dst=$3 depth=${4:-0} target
	((depth < 8)) || die "symlink chain too deep at $path"
	[[ -e $src/$path || -L $src/$path ]] || die "$path is not in $src"
	mkdir -p "$dst/$(dirname "$path")"
	cp -a "$src/$path" "$dst/$path"
	if [[ -L $src/$path ]]; then
		target=$(readlink "$src/$path")
		[[ $target == /* ]] || target=$(dirname "$path")/$target
		copy_from_tree "$src" "${target#/}" "$dst" $((depth + 1))
	fi
}

# A dynamically linked Debian program in the initramfs (issue 9): coreutils'
# env as /usr/local/bin/env (busybox's applet keeps /usr/bin/env), with its
# ELF interpreter and the libraries it names (DT_NEEDED), all from libc6.
# Running it exercises ld.so and libc's start-up, ISA-level check included.
install_dynamic_program() {
	local root=$1 prog=$COREUTILS_ROOT/usr/bin/env interp lib
	install -D -m 755 "$prog" "$root/usr/local/bin/env"
	interp=$(readelf -l "$prog" | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p')
	[[ -n $interp ]] || die "$prog has no ELF interpreter"
	copy_from_tree "$LIBC_ROOT" "${interp#/}" "$root"
	for lib in $(readelf -d "$prog" | sed -n 's/.*Shared library: \[\(.*\)\]$/\1/p'); do
		copy_from_tree "$LIBC_ROOT" "lib/x86_64-linux-gnu/$lib" "$root"
	done
}

build_initrd() {
	local root name
	root=$(mktemp -d)
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root,etc}
	cp "$BUSYBOX_ROOT/bin/busybox" "$root/bin/busybox"
	# Applet links made here, not at boot, so /init starts with a full PATH.
	"$root/bin/busybox" --list-full | while read -r applet; do
		[[ -e $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
	done
	chmod 1777 "$root/tmp"
	chmod 700 "$root/root"
	mknod -m 600 "$root/dev/console" c 5 1
	install -m 755 "$HERE/init" "$root/init"
	install -m 755 "$OUT/outb" "$root/sbin/outb"
	install -m 755 "$HERE/lspci" "$root/usr/bin/lspci"
	install_dynamic_program "$root"

	declare -gA MODULE_FILE=()
	LOAD_ORDER=""
	for name in $WANTED_MODULES; do
		add_module "$name"
	done
	mkdir -p "$root/lib/modules/$RELEASE"
	for name in $LOAD_ORDER; do
		cp "${MODULE_FILE[$name]}" "$root/lib/modules/$RELEASE/$name.ko"
		echo "$name.ko" >>"$root/lib/modules/$RELEASE/load-order"
	done
	log "modules:$LOAD_ORDER"

	# Sorted names keep the archive's order stable across builds.
	(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
		"$BUSYBOX_ROOT/bin/busybox" cpio -o -H newc 2>/dev/null) |
		gzip -9n >"$OUT/initrd.cpio.gz.tmp"
	rm -rf "$root"
	mv "$OUT/initrd.cpio.gz.tmp" "$OUT/initrd.cpio.gz"
}

main() {
	local kpkg kdeb bbdeb libcdeb cudeb kroot vmlinuz
	mkdir -p "$CACHE" "$OUT"
	kpkg=$(apt_retry resolve_kernel_pkg) || die "cannot resolve $META_PKG"
	RELEASE=${kpkg#linux-image-}
	kdeb=$(fetch_deb "$kpkg")
	bbdeb=$(fetch_deb busybox-static)
	libcdeb=$(fetch_deb libc6)
	cudeb=$(fetch_deb coreutils)
	kroot=$CACHE/root-$kpkg
	BUSYBOX_ROOT=$CACHE/root-busybox-static
	extract_deb "$kdeb" "$kroot"
	extract_deb "$bbdeb" "$BUSYBOX_ROOT"
	LIBC_ROOT=$CACHE/root-libc6
	COREUTILS_ROOT=$CACHE/root-coreutils
	extract_deb "$libcdeb" "$LIBC_ROOT"
	extract_deb "$cudeb" "$COREUTILS_ROOT"
	MODDIR=$kroot/lib/modules/$RELEASE
	vmlinuz=$kroot/boot/vmlinuz-$RELEASE
	[[ -f $vmlinuz && -d $MODDIR ]] || die "$kdeb lacks vmlinuz or modules for $RELEASE"

	if stale "$OUT/vmlinuz" "$vmlinuz" || [[ $(cat "$OUT/kernel-release" 2>/dev/null) != "$RELEASE" ]]; then
		cp "$vmlinuz" "$OUT/vmlinuz"
		echo "$RELEASE" >"$OUT/kernel-release"
	fi
	if stale "$OUT/vmlinux" "$OUT/vmlinuz"; then
		extract_vmlinux "$OUT/vmlinuz" "$OUT/vmlinux"
	fi
	if stale "$OUT/outb" "$HERE/outb.c"; then
		"$CC" -Os -static -nostdlib -ffreestanding -fno-stack-protector -fno-pie \
			-no-pie -fno-asynchronous-unwind-tables -Wall -Wextra -Werror \
			-Wl,--build-id=none -Wl,-n -s -o "$OUT/outb" "$HERE/outb.c"
	fi
	if stale "$OUT/initrd.cpio.gz" "$HERE/init" "$HERE/lspci" "$HERE/build.sh" "$OUT/outb" "$kdeb" "$bbdeb" \
		"$libcdeb" "$cudeb"; then
		build_initrd
	fi
	log "ready for $RELEASE:"
	du -h --apparent-size "$OUT"/{vmlinuz,vmlinux,initrd.cpio.gz} >&2
}

main "$@"
