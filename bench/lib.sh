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

# host_load : the host's load averages now, for judging the noise of a run.
host_load() {
	echo "host load at start: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min averages, $(nproc) cores)"
}
