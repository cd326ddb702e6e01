#!/bin/sh
# Runs each cmocka test binary given, shows its output, and closes with one
# tally line over all of them: "tests: N passed, N failed, N skipped".
pass=0; fail=0; skip=0; failed=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "$@"; do
  echo "=== $t"
  "$t" >"$log" 2>&1
  rc=$?
  cat "$log"
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\..*/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s).*/\1/p' "$log" | tail -1)
  s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test(s).*/\1/p' "$log" | tail -1)
  pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0})); skip=$((skip + ${s:-0}))
  # a crash or a non-zero exit without a cmocka tally still counts as a failure
  if [ "$rc" -ne 0 ]; then failed="$failed $t"; [ -z "$f" ] && fail=$((fail + 1)); fi
done
echo
[ -n "$failed" ] && echo "failed binaries:$failed"
echo "tests: $pass passed, $fail failed, $skip skipped"
[ -z "$failed" ]
