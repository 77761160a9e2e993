#!/usr/bin/env bash
# Installs the Debian 12 packages shrike needs to build, test and assemble
# its default guest. Idempotent: installs only what is missing.
set -euo pipefail

packages=(
	build-essential gcc-multilib clang libclang-rt-14-dev make
	libcmocka-dev liburing-dev
	libcapstone-dev   # the disassembler the emitter's unit test and fuzz target check against
	busybox-static cpio zstd xz-utils gzip lz4 binutils
	qemu-system-x86   # the peer shrike is measured against in bench/, never part of shrike
	iproute2 python3
	socat             # the host end of the virtio-net TCP tests and benchmarks
	debootstrap wget e2fsprogs  # the Debian 12 image of tests/e2e/distro.sh (scripts/debian-image.sh)
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
