#!/bin/sh
# Run every test program of one build; write per-program logs and counts.
#   test/run.sh BUILD_DIR RESULTS_DIR
# Tests run from the repository root; NHUB_BIN points them at the build's
# programs. Each program is bounded in time so a hang cannot stall CI.
B="$1"
R="$2"
mkdir -p "$R"
export NHUB_BIN="$B/bin"
rc=0
for t in "$B"/test/unit/test_* "$B"/test/integration/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    log="$R/$name.log"
    start=$(date +%s)
    timeout -k 10 600 "$t" >"$log" 2>&1
    trc=$?
    secs=$(( $(date +%s) - start ))
    pass=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    fail=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    if [ "$trc" != 0 ] && [ "$fail" = 0 ]; then
        fail=1   # crashed, timed out or sanitizer abort: count it
    fi
    echo "$pass $fail" >"$R/$name.count"
    if [ "$trc" = 0 ]; then
        echo "ok   $B $name ($pass passed, ${secs}s)"
    else
        echo "FAIL $B $name (rc=$trc, $fail failed, ${secs}s; log: $log)"
        tail -n 30 "$log" | sed 's/^/     | /'
        rc=1
    fi
done
exit $rc
