#!/usr/bin/env python3
"""Run a VMM and report its resident memory, separating guest RAM out.

usage: bench/rss.py GUEST_MIB REPORT -- COMMAND [ARG...]

Runs COMMAND (stdin, stdout and stderr inherited) and samples its
/proc/PID/smaps every INTERVAL seconds. Appends one line to REPORT:

  peak_rss_kib=N beyond_guest_kib=M

peak_rss_kib is the kernel's peak resident set of the process (ru_maxrss,
the same figure as VmHWM or /usr/bin/time's %M). beyond_guest_kib is the
largest sampled sum of Pss over every mapping but guest RAM: the VMM's own
memory (code, heap, caches, translated code) whatever the guest touched.
Pss rather than Rss so a memfd mapped twice (shrike's code cache: one
writable and one executable view) counts once. Guest RAM is the anonymous
mapping of at least GUEST_MIB and at most 8 MiB more (QEMU pads it for
alignment) with the most resident pages. Exits with COMMAND's status;
COMMAND is killed after TIMEOUT seconds.
"""
import resource
import subprocess
import sys
import time

INTERVAL = 0.2
TIMEOUT = 1200  # seconds; a hung guest is killed, its run reported failed


def sample(pid, guest_kib):
    """Pss of all mappings minus the guest-RAM mapping, in KiB (None if gone)."""
    try:
        with open(f"/proc/{pid}/smaps") as f:
            text = f.read()
    except OSError:
        return None
    total = 0
    guest = 0
    size = 0
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key == "Size":
            size = int(rest.split()[0])
        elif key == "Pss":
            pss = int(rest.split()[0])
            total += pss
            if guest_kib <= size <= guest_kib + 8192:
                guest = max(guest, pss)
    return total - guest


def main():
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        sys.exit(__doc__.split("\n\n")[1])
    guest_kib = int(sys.argv[1]) * 1024
    report = sys.argv[2]
    proc = subprocess.Popen(sys.argv[4:])
    beyond = 0
    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
        kib = sample(proc.pid, guest_kib)
        if kib is not None:
            beyond = max(beyond, kib)
        time.sleep(INTERVAL)
    # poll() reaped the child: its rusage is in RUSAGE_CHILDREN now.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(report, "a") as f:
        f.write(f"peak_rss_kib={peak} beyond_guest_kib={beyond}\n")
    sys.exit(proc.returncode if proc.returncode >= 0 else 128 - proc.returncode)


if __name__ == "__main__":
    main()
