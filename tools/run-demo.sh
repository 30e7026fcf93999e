#!/bin/sh
# make run: a hub and two provincial adapters exchanging messages on
# 127.0.0.1, until Ctrl-C. Everything lives in build/run/.
set -u
BIN=${NHUB_BIN:-build/bin}
RUN=build/run
mkdir -p "$RUN"
HUB_PID=""
RECV_PIDS=""

stop() {
    echo
    echo "run: stopping (SIGTERM to the hub: it finishes the commit in hand)"
    for p in $RECV_PIDS; do kill "$p" 2>/dev/null; done
    [ -n "$HUB_PID" ] && kill -TERM "$HUB_PID" 2>/dev/null && wait "$HUB_PID" 2>/dev/null
    echo "run: stopped. Hub log: $RUN/hub.log; data: $RUN/"
    exit 0
}
trap stop INT TERM

# Development keys (git-ignored): the hub's and the two demo regions'.
# conf/hub.yaml and the adapter configurations name these files.
KEYS=conf/dev-keys
for who in hub 110000 440000; do
    [ -f "$KEYS/$who.key" ] && continue
    if [ "$who" = hub ]; then
        "$BIN/nhub-keygen" --hub --out "$KEYS" >/dev/null || exit 1
    else
        "$BIN/nhub-keygen" --region "$who" --out "$KEYS" >/dev/null || exit 1
    fi
    echo "run: made development keys $KEYS/$who.key (secret) and $KEYS/$who.pub"
done

# The operators' development token for the HTTP API (conf/hub.yaml).
if [ ! -f "$KEYS/operator.token" ]; then
    (umask 077 && openssl rand -hex 24 >"$KEYS/operator.token") || exit 1
    echo "run: made the development operator token $KEYS/operator.token"
fi

if ! "$BIN/nhubd" -c conf/hub.yaml --check >/dev/null; then
    "$BIN/nhubd" -c conf/hub.yaml --check
    exit 1
fi
rm -f "$RUN/ready"
"$BIN/nhubd" -c conf/hub.yaml --ready-fd 3 3>"$RUN/ready" 2>>"$RUN/hub.log" &
HUB_PID=$!
i=0
until grep -q '^ready' "$RUN/ready" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$HUB_PID" 2>/dev/null; then
        echo "run: the hub did not start; last lines of $RUN/hub.log:" >&2
        tail -n 20 "$RUN/hub.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "run: hub $(cut -d' ' -f2 "$RUN/ready") (pid $HUB_PID), log in $RUN/hub.log"
URL=$(cut -d' ' -f3 "$RUN/ready")
[ -n "$URL" ] && echo "run: dashboard $URL/ (operator token: $KEYS/operator.token)"

# Each adapter prints what its application receives, then confirms it.
"$BIN/nhub-adapter" recv -c conf/adapter-440000.yaml 2>>"$RUN/adapter-440000.log" |
    sed -u 's/^/[440000 Guangdong receives] /' &
RECV_PIDS="$RECV_PIDS $!"
"$BIN/nhub-adapter" recv -c conf/adapter-110000.yaml 2>>"$RUN/adapter-110000.log" |
    sed -u 's/^/[110000 Beijing receives]   /' &
RECV_PIDS="$RECV_PIDS $!"

# The payloads: the examples of schemas/examples/, encoded as the hub
# expects them (it checks every payload against its schema).
encode() { # TYPE PROTO EXAMPLE OUT
    protoc-c -Ischemas --encode="$1" "schemas/nhub/$2" <"schemas/examples/$3.txtpb" >"$RUN/$4" ||
        exit 1
}
encode nhub.insured.v1.StatusQuery insured/v1/insured.proto insured-query request.bin
encode nhub.insured.v1.StatusAnswer insured/v1/insured.proto insured-answer answer.bin

echo "run: Beijing (110000) asks Guangdong (440000) to verify an insured person every second;"
echo "run: Guangdong answers. Press Ctrl-C to stop."
n=0
while :; do
    n=$((n + 1))
    out=$("$BIN/nhub-adapter" send -c conf/adapter-110000.yaml --to 440000 --kind request \
        --item SI-VERIFY-002 --type nhub.insured.v1.StatusQuery \
        --payload-file "$RUN/request.bin" --wait 5 2>>"$RUN/adapter-110000.log")
    echo "$out" | sed 's/^/[110000 Beijing sends]      /'
    request=$(echo "$out" | sed -n 's/^msg_id=\([0-9a-f]*\).*/\1/p')
    "$BIN/nhub-adapter" send -c conf/adapter-440000.yaml --to 110000 --kind response \
        --correlation "$request" --item SI-VERIFY-002 --type nhub.insured.v1.StatusAnswer \
        --payload-file "$RUN/answer.bin" --wait 5 2>>"$RUN/adapter-440000.log" |
        sed 's/^/[440000 Guangdong sends]    /'
    sleep 1 # the demo's pace, one exchange a second
done
