#!/bin/sh
# make check's schema compatibility step: each business schema version
# against its predecessor, with nhub-schema-check.
#   tools/schema-compat.sh BIN_DIR RESULTS_DIR
# nhub.insured.v2 must be a compatible change of v1; nhub.push.v2 is the
# documented incompatible one (schemas/README.md) and must report exactly
# that: Feedback field 6 renamed and retyped. Writes RESULTS_DIR/schema-compat.count.
bin="$1"
results="$2"
tmp=$(mktemp -d)
mkdir -p "$results"
trap 'rm -rf "$tmp"' EXIT
set -e
for p in insured/v1/insured insured/v2/insured push/v1/push push/v2/push; do
    protoc-c --descriptor_set_out="$tmp/$(echo "$p" | cut -d/ -f1-2 | tr / -).pb" \
        --include_imports -Ischemas "schemas/nhub/$p.proto"
done
set +e
pass=0
fail=0
if "$bin/nhub-schema-check" "$tmp/insured-v1.pb" "$tmp/insured-v2.pb" >"$tmp/insured.out"; then
    pass=$((pass + 1))
    echo "ok   schema-compat nhub.insured v1 -> v2: compatible"
else
    fail=$((fail + 1))
    echo "FAIL schema-compat nhub.insured v1 -> v2 is not compatible:"
    sed 's/^/     | /' "$tmp/insured.out"
fi
"$bin/nhub-schema-check" "$tmp/push-v1.pb" "$tmp/push-v2.pb" >"$tmp/push.out"
rc=$?
grep '^nhub-schema-check: breaking:' "$tmp/push.out" >"$tmp/push.breaking"
cat >"$tmp/push.want" <<'WANT'
nhub-schema-check: breaking: nhub.push.v1.Feedback.handled_time (field 6): renamed handled_time -> handled_ms
nhub-schema-check: breaking: nhub.push.v1.Feedback.handled_time (field 6): type string -> int64
WANT
if [ "$rc" = 1 ] && cmp -s "$tmp/push.breaking" "$tmp/push.want"; then
    pass=$((pass + 1))
    echo "ok   schema-compat nhub.push v1 -> v2: exactly the documented breaking change"
else
    fail=$((fail + 1))
    echo "FAIL schema-compat nhub.push v1 -> v2 (exit $rc), expected only Feedback field 6:"
    sed 's/^/     | /' "$tmp/push.out"
fi
echo "$pass $fail" >"$results/schema-compat.count"
[ "$fail" = 0 ]
