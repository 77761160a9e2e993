#!/bin/sh
# Runs a command as on a machine without /dev/kvm: in a private mount
# namespace whose /dev is a tmpfs holding everything of the real /dev
# (bind-mounted) except kvm. For testing the paths that replace KVM with
# recorded results, e.g.
#   tests/difftest/without-kvm.sh build/difftest
#   tests/difftest/without-kvm.sh tests/difftest/guests.sh
# Needs the privilege to create a mount namespace (root, or unprivileged
# user namespaces with `unshare -r`).
if [ $# -eq 0 ]; then
	echo "usage: without-kvm.sh COMMAND [ARGS...]" >&2
	exit 2
fi
exec unshare --mount sh -c '
	set -e
	old=$(mktemp -d)
	mount --bind /dev "$old"
	mount -t tmpfs -o mode=755 none /dev
	for e in "$old"/* "$old"/.[!.]*; do
		n=${e##*/}
		[ "$n" = kvm ] && continue
		if [ -L "$e" ]; then
			cp -a "$e" "/dev/$n"
		elif [ -d "$e" ]; then
			mkdir "/dev/$n" && mount --rbind "$e" "/dev/$n"
		elif [ -e "$e" ]; then
			: >"/dev/$n" && mount --bind "$e" "/dev/$n"
		fi
	done
	umount -l "$old"
	rmdir "$old"
	[ ! -e /dev/kvm ]
	exec "$@"
' without-kvm "$@"
