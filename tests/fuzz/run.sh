#!/bin/sh
# Runs one libFuzzer target for a while on a working copy of its seed corpus
# and prints one line: executions, coverage, corpus size, crashes.
# Usage: tests/fuzz/run.sh BUILD_DIR NAME SECONDS   (make fuzz calls it)
# With FUZZ_CPU=1, SECONDS is the fuzzer's CPU time instead of wall time: on a
# shared machine several targets can run at once and each still gets its
# full budget (the run is stopped gracefully with SIGUSR1 when reached).
# Crash, leak and timeout inputs land in BUILD_DIR/artifacts-NAME/; replay one
# with BUILD_DIR/fuzz_NAME FILE, then add it to tests/fuzz/corpus/NAME/ with the fix.
# A dictionary tests/fuzz/NAME.dict is used when there is one; FUZZ_ARGS adds
# libFuzzer options (e.g. FUZZ_ARGS="-fork=1 -ignore_crashes=1" keeps going
# after a finding, collecting every artifact; executions then come from the
# last status line). The working
# corpus is kept between runs (BUILD_DIR/corpus-NAME), so a later run starts
# from what the earlier ones found.
dir=$1 name=$2 secs=$3
bin=$dir/fuzz_$name work=$dir/corpus-$name art=$dir/artifacts-$name log=$dir/$name.log
mkdir -p "$work" "$art"
cp tests/fuzz/corpus/"$name"/* "$work"/
dict=
[ -f tests/fuzz/"$name".dict ] && dict=-dict=tests/fuzz/"$name".dict
# bounded memory (a header may ask for gigabytes); leaks count as failures
start=$(date +%s)
# known upstream defects, checked to stay in bounds, are listed in ubsan.supp;
# any other report halts the run
wall=$secs
[ "${FUZZ_CPU:-0}" = 1 ] && wall=$((secs * 6)) # a backstop only
UBSAN_OPTIONS=suppressions=tests/fuzz/ubsan.supp:halt_on_error=1:print_stacktrace=1 \
"$bin" -max_total_time="$wall" -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 -timeout=25 \
  -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$art/" $dict $FUZZ_ARGS "$work" >"$log" 2>&1 &
pid=$!
if [ "${FUZZ_CPU:-0}" = 1 ]; then
  tick=$(getconf CLK_TCK)
  # user + system time of the fuzzer (fields 14, 15 of /proc/PID/stat)
  while kill -0 "$pid" 2>/dev/null; do
    used=$(awk -v t="$tick" '{ printf "%d", ($14 + $15) / t }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    [ "${used:-0}" -ge "$secs" ] && { kill -USR1 "$pid" 2>/dev/null; break; }
    sleep 5
  done
fi
wait "$pid"
rc=$?
took=$(( $(date +%s) - start ))
# CPU time of this script's children (the fuzzer, in the main): wall time on
# a loaded machine is not fuzzing time
# (times must run in this shell, not in a $(...) subshell)
times >"$dir/$name.times"
cpu=$(tail -1 "$dir/$name.times" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } printf "%d", s }')
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
[ -z "$execs" ] && execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -1)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
corp=$(ls "$work" | wc -l)
crashes=$(ls "$art" | wc -l)
[ "${FUZZ_CPU:-0}" = 1 ] && budget="${secs}s CPU" || budget="${secs}s"
echo "fuzz $name: ${took}s (budget ${budget}; ${cpu}s CPU), ${execs:-?} executions, cov ${cov:-?}, ft ${ft:-?}, corpus $corp files, $crashes crash/leak/timeout inputs, exit $rc (log $log)"
# what stopped it, in one line
[ "$rc" -ne 0 ] && grep -m1 -E '^SUMMARY:|ERROR: libFuzzer|==ERROR|runtime error' "$log" | sed "s/^/fuzz $name: /"
[ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]
