#!/usr/bin/env bash
# Work inside the default Debian guest, timed by the guest's own clock:
#   md5   dd if=/dev/zero bs=1M count=96 | md5sum
#   loop  a busybox sh loop of 30,000 iterations
#   fork  40 fork+exec of /bin/true
# on shrike's soft engine with the translator (--soft-jit on, the default),
# on its interpreter (--soft-jit off) and on QEMU's TCG emulator (from
# Debian), same kernel, initramfs, memory and kernel command line, in the
# same run; best of $REPS runs each, the runs of the three interleaved.
# The clock is CLOCK_MONOTONIC read from /proc/timer_list ("now at N nsecs",
# read by shell builtins: no fork); both VMMs' guest clocks follow the
# host's. Results are checked (the md5 of 96 MiB of zeros, the loop counts).
# Also records each VMM's peak RSS and its resident memory beyond guest RAM
# (bench/rss.py). Prints a table and writes it to bench/results/guest-work.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-2}
MEM_MIB=${MEM_MIB:-256}
RESULTS=${RESULTS:-bench/results/guest-work.txt}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

. bench/lib.sh

GUEST='now() { { read -r _; read -r _; read -r _ _ T _; } </proc/timer_list; }
now; s=$T; dd if=/dev/zero bs=1M count=96 2>/dev/null | md5sum >/tmp/sum; now
read -r sum _ </tmp/sum; echo "gw md5 $((T - s)) $sum"
now; s=$T; i=0; while [ $i -lt 30000 ]; do i=$((i + 1)); done; now; echo "gw loop $((T - s)) $i"
now; s=$T; i=0; while [ $i -lt 40 ]; do /bin/true; i=$((i + 1)); done; now; echo "gw fork $((T - s)) $i"'
# One command line for both VMMs (shrike's default one plus the command).
append="console=ttyS0 panic=-1 quiet loglevel=0 shrike.cmd=$(printf '%s' "sh -c '$GUEST'" | base64 -w0)"
md5_zeros=$(head -c $((96 * 1048576)) /dev/zero | md5sum | cut -d' ' -f1)

vmm() { # jit|interp|qemu -> the VMM's command line in VMM[] (run directly: rss.py samples it)
	case $1 in
	jit | interp)
		local mode=on
		[ "$1" = interp ] && mode=off
		VMM=(build/shrike run --engine soft --soft-jit "$mode" --memory "${MEM_MIB}M" --append "$append")
		;;
	qemu)
		VMM=(qemu-system-x86_64 -accel tcg -m "${MEM_MIB}M" -nodefaults -display none -serial stdio
			-no-reboot -kernel guest/out/vmlinuz -initrd guest/out/initrd.cpio.gz -append "$append")
		;;
	esac
}

# Each run appends its "gw WORK NS CHECK" lines to $TMP/NAME.out, its memory
# to $TMP/NAME.mem and the 1-minute load before it to $TMP/NAME.load.
load_at_start=$(host_load)
for rep in $(seq "$REPS"); do
	for name in jit interp qemu; do
		vmm "$name"
		cut -d' ' -f1 /proc/loadavg >>"$TMP/$name.load"
		bench/rss.py "$MEM_MIB" "$TMP/$name.mem" -- "${VMM[@]}" </dev/null 2>&1 | tr -d '\r' |
			grep '^gw ' >>"$TMP/$name.out"
		echo "guest-work: run $rep/$REPS $name: $(grep -c . "$TMP/$name.out") results so far" >&2
	done
done

{
	echo "# bench/guest-work.sh on $(hostname) (shared host; see the load line)"
	echo "work in the default guest, ${MEM_MIB} MiB, timed inside the guest, best of $REPS ($(date -u +%F))"
	echo "$load_at_start"
	python3 - "$TMP" "$md5_zeros" <<'PY'
import sys

def lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError:
        return []

tmp, md5 = sys.argv[1], sys.argv[2]
names = ["jit", "interp", "qemu"]
expect = {"md5": md5, "loop": "30000", "fork": "40"}
best, bad, mem, load = {}, set(), {}, {}
for n in names:
    for line in lines(f"{tmp}/{n}.out"):
        _, work, ns, check = line.split()
        if check != expect[work]:
            bad.add((n, work))
            continue
        s = int(ns) / 1e9
        best[n, work] = min(best.get((n, work), s), s)
    rows = [dict(kv.split("=") for kv in l.split()) for l in lines(f"{tmp}/{n}.mem")]
    mem[n] = (max((int(r["peak_rss_kib"]) for r in rows), default=0) / 1024,
              max((int(r["beyond_guest_kib"]) for r in rows), default=0) / 1024)
    load[n] = lines(f"{tmp}/{n}.load")

def cell(n, work):
    if (n, work) in best:
        return "%.3f" % best[n, work]
    return "WRONG" if (n, work) in bad else "fail"

def ratio(a, b):
    return "%.2f" % (a / b) if a and b else "n/a"

hdr = ("", "shrike jit", "shrike interp", "qemu tcg", "jit/qemu", "interp/qemu")
fmt = "  %-34s %11s %14s %10s %9s %12s"
print(fmt % hdr)
labels = {"md5": "dd 96 MiB | md5sum (s)", "loop": "sh loop, 30000 iterations (s)",
          "fork": "40 fork+exec of /bin/true (s)"}
for work, label in labels.items():
    t = [best.get((n, work)) for n in names]
    print(fmt % (label, *[cell(n, work) for n in names], ratio(t[0], t[2]), ratio(t[1], t[2])))
for i, label in enumerate(["peak RSS (MiB)", "resident beyond guest RAM (MiB)"]):
    m = [mem[n][i] for n in names]
    print(fmt % (label, *["%.1f" % x for x in m], ratio(m[0], m[2]), ratio(m[1], m[2])))
print("  ratios: shrike / QEMU, below 1 means shrike is faster (or smaller)")
print("  1-min load before each run: " + ", ".join(f"{n} {' '.join(load[n])}" for n in names))
PY
} | tee "$RESULTS"
