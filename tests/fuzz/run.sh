#!/bin/sh
# Runs one libFuzzer target for a while on a working copy of its seed corpus
# and prints one line: executions, coverage, corpus size, crashes.
# Usage: tests/fuzz/run.sh BUILD_DIR NAME SECONDS   (make fuzz calls it)
# Crash, leak and timeout inputs land in BUILD_DIR/artifacts-NAME/; replay one
# with BUILD_DIR/fuzz_NAME FILE, then add it to tests/fuzz/corpus/NAME/ with the fix.
dir=$1 name=$2 secs=$3
bin=$dir/fuzz_$name work=$dir/corpus-$name art=$dir/artifacts-$name log=$dir/$name.log
mkdir -p "$work" "$art"
cp tests/fuzz/corpus/"$name"/* "$work"/
# bounded memory (a header may ask for gigabytes); leaks count as failures
"$bin" -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 -timeout=25 \
  -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$art/" "$work" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
corp=$(ls "$work" | wc -l)
crashes=$(ls "$art" | wc -l)
echo "fuzz $name: ${secs}s, ${execs:-?} executions, cov ${cov:-?}, ft ${ft:-?}, corpus $corp files, $crashes crash/leak/timeout inputs, exit $rc (log $log)"
[ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]
