# Shared by the benchmark scripts (sourced): timing of whole commands.

# best_ms CMD... : best wall time of $REPS runs of CMD, in milliseconds
# (output discarded, failures ignored: the caller checks results itself).
best_ms() {
	local best= t0 t1 ms
	for _ in $(seq "$REPS"); do
		t0=$(date +%s%N)
		"$@" >/dev/null 2>&1 </dev/null || true
		t1=$(date +%s%N)
		ms=$(((t1 - t0) / 1000000))
		if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
	done
	echo "$best"
}

# line_ms OUT REGEX CMD... : runs CMD to completion (stdin /dev/null, stdout
# and stderr to file OUT) and prints "MS STATUS": the wall time in
# milliseconds from the start until CMD first printed a line matching the
# Python regex REGEX (-1 if it never did), and CMD's exit status.
line_ms() {
	python3 - "$@" <<'PY'
import re, subprocess, sys, time
out, pattern, cmd = sys.argv[1], re.compile(sys.argv[2].encode()), sys.argv[3:]
hit = -1
with open(out, "wb") as f:
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in p.stdout:
        if hit < 0 and pattern.search(line):
            hit = int((time.monotonic() - t0) * 1000)
        f.write(line)
    rc = p.wait()
print(hit, rc)
PY
}

# host_load : the host's load averages now, for judging the noise of a run.
host_load() {
	echo "host load at start: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min averages, $(nproc) cores)"
}
