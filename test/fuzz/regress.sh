#!/bin/sh
# Run every kept input of test/fuzz/regress/NAME/ once through its target
# (make fuzz-regress): inputs that once crashed must stay fixed.
#   test/fuzz/regress.sh NAME BINARY [RESULTS_DIR]
# With RESULTS_DIR, writes NAME-regress.count (passed, failed inputs).
name="$1"
bin="$2"
results="$3"
dir=test/fuzz/regress/"$name"
log=$(mktemp) || exit 1
pass=0
fail=0
for f in "$dir"/*; do
    [ -f "$f" ] || continue
    if "$bin" -runs=1 "$f" >"$log" 2>&1; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "$name: regression input $f fails:"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz_[a-z]+: )|runtime error' "$log" |
            head -n 8 | sed 's/^/     | /'
    fi
done
rm -f "$log"
echo "$name: $pass regression inputs ok, $fail failing"
[ -n "$results" ] && mkdir -p "$results" && echo "$pass $fail" >"$results/$name-regress.count"
[ "$fail" = 0 ]
