#!/bin/sh
# Run one libFuzzer target for a while on a copy of its seed corpus (make fuzz).
#   test/fuzz/run.sh NAME BINARY SECONDS MAX_LEN WORK_DIR [RESULTS_DIR]
# Prints "NAME: N execs in S s, no crash" or names the crash, which is moved
# to test/fuzz/crashes/NAME/ to become a regression case (test/fuzz/regress/
# once the bug is fixed). With RESULTS_DIR, writes NAME.count ("1 0" or
# "0 1") there for test/summary.sh. Exits non-zero on a crash.
name="$1"
bin="$2"
secs="$3"
max_len="$4"
work="$5/$name"
results="$6"

rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
cp test/fuzz/corpus/"$name"/* "$work/corpus/" 2>/dev/null
log="$work/log"
# -rss_limit_mb: a decode that escapes its budget shows up as an OOM, not as
# a slow machine. -timeout: no input should take seconds.
"$bin" -max_total_time="$secs" -max_len="$max_len" -print_final_stats=1 \
    -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$work/artifacts/" \
    "$work/corpus" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
: "${execs:=0}"
crashes=$(find "$work/artifacts" -type f | sort)
if [ "$rc" = 0 ] && [ -z "$crashes" ]; then
    echo "$name: $execs execs in $secs s, no crash"
    [ -n "$results" ] && mkdir -p "$results" && echo "1 0" >"$results/$name.count"
    exit 0
fi
mkdir -p test/fuzz/crashes/"$name"
kept=""
for f in $crashes; do
    mv "$f" test/fuzz/crashes/"$name"/ && kept="$kept test/fuzz/crashes/$name/$(basename "$f")"
done
echo "$name: $execs execs in $secs s, CRASH (rc=$rc):${kept:- no artifact} (log: $log)"
grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz_[a-z]+: )|runtime error' "$log" | head -n 8 | sed 's/^/     | /'
[ -n "$results" ] && mkdir -p "$results" && echo "0 1" >"$results/$name.count"
exit 1
