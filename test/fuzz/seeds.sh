#!/bin/sh
# Regenerate the committed seed corpora under test/fuzz/corpus/ (make fuzz-seeds).
#   test/fuzz/seeds.sh MKSEEDS_BINARY
# Protobuf seeds come from mkseeds.c; configuration seeds are conf/hub.yaml
# and small variants written here, valid and broken, one per rule of conf.h
# and cfg.h, so the fuzzer starts next to every error path.
set -e
C=test/fuzz/corpus
rm -rf "$C"
mkdir -p "$C/fuzz_frames" "$C/fuzz_envelope" "$C/fuzz_config" "$C/fuzz_catalog" "$C/fuzz_payload" "$C/fuzz_pbjson"
"$1" "$C"

d="$C/fuzz_config"
cp conf/hub.yaml "$d/hub.yaml"
w() { cat >"$d/$1"; }

w minimal.yaml <<'EOF'
hub: {listen: "tcp://127.0.0.1:7400", data_dir: /tmp/nhub}
regions:
  - {code: "110000", name: Beijing}
EOF
w limits.yaml <<'EOF'
hub:
  listen: ipc:///run/nhub.sock
  data_dir: d
  region: "000000"
limits:
  max_frame: 65536
  batch_max: 1
  map_size: 1024KiB
  map_size_max: 1TiB
  dedup_window: 365d
  redeliver_after: 10ms
  redeliver_max: 1h
  credit_max: +1000000
  heartbeat: 1000
  peer_timeout: 1d
log:
  level: debug
regions:
  - code: "110000"
    name: "北京"
  - code: "120000"
    name: 'Tianjin'
EOF
w empty_sections.yaml <<'EOF'
hub:
  listen: "tcp://*:7400"
  data_dir: "x"
limits:
log: ~
regions:
  - code: "310000"
    name: Shanghai
EOF
w dup_region.yaml <<'EOF'
hub: {listen: "tcp://a:1", data_dir: d}
regions:
  - {code: "110000", name: a}
  - {code: "120000", name: b}
  - {code: "110000", name: c}
EOF
w alias.yaml <<'EOF'
hub: &h {listen: "tcp://a:1", data_dir: d}
regions: [{code: "110000", name: *h}]
EOF
w unknown_key.yaml <<'EOF'
hub: {listen: "tcp://a:1", data_dir: d, regoin: "000000"}
regions: [{code: "110000", name: a}]
EOF
w cross_key.yaml <<'EOF'
hub: {listen: "tcp://a:1", data_dir: d}
limits: {map_size: 2GiB, map_size_max: 1GiB, heartbeat: 5s, peer_timeout: 9s}
regions: [{code: "000000", name: own}]
EOF
w bad_values.yaml <<'EOF'
hub: {listen: "tcp://a:1", data_dir: d, region: 12345}
limits: {max_frame: 1MB, batch_max: -1, dedup_window: 1.5d, credit_max: 99999999999999999999}
log: {level: off}
regions: [{code: "11000x", name: "tab\there"}]
EOF
w nul_escape.yaml <<'EOF'
hub: {listen: "tcp://a:1\0", data_dir: d}
regions: [{code: "110000", name: "a\x00b"}]
EOF
w two_docs.yaml <<'EOF'
hub: {listen: "tcp://a:1", data_dir: d}
regions: [{code: "110000", name: a}]
---
hub: {}
EOF
w top_scalar.yaml <<'EOF'
--- !!str just text
EOF
printf 'hub:\n  listen: "tcp://a:1"\n  data_dir: "\377\376"\nregions: [{code: "110000", name: a}]\n' \
    >"$d/bad_utf8.yaml"
printf '64MiB' >"$d/size"
printf '18446744073709551615B' >"$d/size_max"
printf '7d' >"$d/duration"
printf '9223372036854775807ms' >"$d/duration_max"

# Catalogue seeds: the committed catalogues and one variant per rule of
# broker/catalog.h.
d="$C/fuzz_catalog"
cp schemas/catalog.yaml "$d/catalog.yaml"
cp test/data/catalog-test.yaml "$d/catalog-test.yaml"
w small.yaml <<'EOF'
version: 1
items:
  - {code: SI-A, name: "甲", kinds: [request, response], senders: ["110000"], receivers: ["*"], time_limit: 3d}
  - {code: SI-N, name: n, kinds: [notice], senders: ["*"], receivers: ["440000", "650000"]}
EOF
w bad_version.yaml <<'EOF'
version: 2
items: [{code: SI-A, name: a, kinds: [push], senders: ["110000"], receivers: ["440000"]}]
EOF
w bad_kind.yaml <<'EOF'
version: 1
items: [{code: SI-A, name: a, kinds: [push, push, shout], senders: ["110000"], receivers: ["440000"]}]
EOF
w bad_region.yaml <<'EOF'
version: 1
items: [{code: SI-A, name: a, kinds: [push], senders: ["11000", "*"], receivers: [440000]}]
EOF
w bad_limit.yaml <<'EOF'
version: 1
items: [{code: "SI A", name: "", kinds: [], senders: [], receivers: ["440000"], time_limit: 400d}]
EOF
w duplicate.yaml <<'EOF'
version: 1
items:
  - &i {code: SI-A, name: a, kinds: [notice], senders: ["110000"], receivers: ["440000"]}
  - *i
EOF
