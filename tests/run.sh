#!/bin/sh
# Runs each cmocka test binary given, shows its output, and closes with one
# tally line over all of them: "tests: N passed, N failed, N skipped".
#   AIBOX_EMULATOR  a command each binary runs under (make check-arm64: qemu)
#   RUN_JOBS        binaries run at once (default 1); the output still comes
#                   binary by binary, in the order given
pass=0; fail=0; skip=0; failed=""
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
jobs=${RUN_JOBS:-1}
# lane l runs the binaries l, l + jobs, l + 2 jobs, ... one after the other
lane=0
while [ "$lane" -lt "$jobs" ]; do
  (
    i=0
    for t in "$@"; do
      if [ $((i % jobs)) -eq "$lane" ]; then
        # $AIBOX_EMULATOR unquoted on purpose: a command and its options
        $AIBOX_EMULATOR "$t" >"$logs/$i.log" 2>&1
        echo $? >"$logs/$i.rc.part" && mv "$logs/$i.rc.part" "$logs/$i.rc"   # whole, or not there
      fi
      i=$((i + 1))
    done
  ) &
  lane=$((lane + 1))
done
# shown as each finishes, in the order given
i=0
for t in "$@"; do
  log="$logs/$i.log"
  while [ ! -f "$logs/$i.rc" ]; do sleep 0.2; done
  rc=$(cat "$logs/$i.rc")
  i=$((i + 1))
  echo "=== $t"
  cat "$log"
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\..*/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s).*/\1/p' "$log" | tail -1)
  s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test(s).*/\1/p' "$log" | tail -1)
  pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0})); skip=$((skip + ${s:-0}))
  # a crash or a non-zero exit without a cmocka tally still counts as a failure
  if [ "$rc" -ne 0 ]; then failed="$failed $t"; [ -z "$f" ] && fail=$((fail + 1)); fi
done
wait
echo
[ -n "$failed" ] && echo "failed binaries:$failed"
echo "tests: $pass passed, $fail failed, $skip skipped"
[ -z "$failed" ]
