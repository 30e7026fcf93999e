#!/bin/sh
# make run: the hub on conf/hub.yaml and six simulated provincial platforms
# (nhub-sim) trading through it on 127.0.0.1, until Ctrl-C. The hub runs
# with the demonstration catalogue conf/catalog-demo.yaml (time limits of
# seconds, so cases are reminded, go overdue and expire while one watches);
# Guangdong goes offline for a while and comes back.
#
# Environment, for tests and for a run beside another hub:
#   NHUB_BIN         the programs (default build/bin)
#   NHUB_RUN_DIR     everything the run writes: the hub's store and log, the
#                    provinces' stores and log, the configuration the hub
#                    reads (default build/run)
#   NHUB_RUN_LISTEN  the hub's ZeroMQ endpoint (default tcp://127.0.0.1:7400;
#                    tcp://127.0.0.1:* picks a free port)
#   NHUB_RUN_HTTP    the dashboard's address (default 127.0.0.1:7480;
#                    127.0.0.1:0 picks a free port)
#   NHUB_SIM_ARGS    more nhub-sim options, e.g. "--rate 50 --seed 7"
#
# Ctrl-C (SIGINT to the whole process group) or SIGTERM stops the
# provinces, then the hub, and waits until both are gone.
set -u
cd "$(dirname "$0")/.." || exit 1
BIN=${NHUB_BIN:-build/bin}
RUN=${NHUB_RUN_DIR:-build/run}
LISTEN=${NHUB_RUN_LISTEN:-tcp://127.0.0.1:7400}
HTTP=${NHUB_RUN_HTTP:-127.0.0.1:7480}
KEYS=conf/dev-keys
# The provinces: regions of conf/hub.yaml with development keys there.
PROVINCES="110000 310000 330000 420000 440000 510000"
OFFLINE=440000:25:20 # Guangdong: offline 25 s into the run, for 20 s
mkdir -p "$RUN" || exit 1
HUB_PID=""
SIM_PID=""

# Wait up to $2 tenths of a second for process $1 ($3 names it) to end,
# then kill it; say so if it did not end well.
gone() {
    i=0
    while kill -0 "$1" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt "$2" ]; then
            echo "run: the $3 (pid $1) did not stop in time; killing it"
            kill -KILL "$1" 2>/dev/null
            break
        fi
        sleep 0.1
    done
    wait "$1" 2>/dev/null
    st=$?
    [ "$st" = 0 ] || echo "run: the $3 exited with status $st; see its log in $RUN/"
}

stop() {
    trap '' INT TERM
    echo
    echo "run: stopping the provinces, then the hub (it finishes the commit in hand)"
    if [ -n "$SIM_PID" ]; then
        kill -TERM "$SIM_PID" 2>/dev/null
        gone "$SIM_PID" 50 simulator
    fi
    if [ -n "$HUB_PID" ]; then
        kill -TERM "$HUB_PID" 2>/dev/null
        gone "$HUB_PID" 100 hub
    fi
    echo "run: stopped; nothing is left running. Logs: $RUN/hub.log, $RUN/sim.log; data: $RUN/"
    exit 0
}
trap stop INT TERM

# Development keys (git-ignored): the hub's and the provinces'.
# conf/hub.yaml names these files.
for who in hub $PROVINCES; do
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

# The hub reads conf/hub.yaml with four values replaced: its endpoint, its
# data directory, the dashboard's address and the catalogue.
CFG="$RUN/hub.yaml"
sed -e "s|^  listen: \"tcp://127.0.0.1:7400\"|  listen: \"$LISTEN\"|" \
    -e "s|^  data_dir: \"build/run/hub\"|  data_dir: \"$RUN/hub\"|" \
    -e "s|^  catalog: \"schemas/catalog.yaml\"|  catalog: \"conf/catalog-demo.yaml\"|" \
    -e "s|^  listen: \"127.0.0.1:7480\"|  listen: \"$HTTP\"|" conf/hub.yaml >"$CFG" || exit 1
for want in "listen: \"$LISTEN\"" "data_dir: \"$RUN/hub\"" "catalog: \"conf/catalog-demo.yaml\"" \
    "listen: \"$HTTP\""; do
    if ! grep -qF "$want" "$CFG"; then
        echo "run: conf/hub.yaml changed shape: cannot set $want in $CFG" >&2
        exit 1
    fi
done
if ! "$BIN/nhubd" -c "$CFG" --check >/dev/null; then
    "$BIN/nhubd" -c "$CFG" --check
    exit 1
fi

rm -f "$RUN/ready"
"$BIN/nhubd" -c "$CFG" --ready-fd 3 3>"$RUN/ready" 2>>"$RUN/hub.log" &
HUB_PID=$!
i=0
until grep -q '^ready' "$RUN/ready" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$HUB_PID" 2>/dev/null; then
        echo "run: the hub did not start; last lines of $RUN/hub.log:" >&2
        tail -n 20 "$RUN/hub.log" >&2
        kill -TERM "$HUB_PID" 2>/dev/null
        gone "$HUB_PID" 100 hub
        exit 1
    fi
    sleep 0.1
done
ENDPOINT=$(cut -d' ' -f2 "$RUN/ready")
URL=$(cut -d' ' -f3 "$RUN/ready")
echo "run: hub $ENDPOINT (pid $HUB_PID) on conf/hub.yaml with the demonstration catalogue"
echo "run:   conf/catalog-demo.yaml; its log in $RUN/hub.log"
[ -n "$URL" ] && echo "run: dashboard $URL/ (operator token: $KEYS/operator.token)"
echo "run: six provinces trade through it (nhub-sim; log in $RUN/sim.log): verification"
echo "run:   requests answered in time, late or never, pushes with staged feedback,"
echo "run:   registration uploads, credit-notice broadcasts; Guangdong (440000) goes"
echo "run:   offline 25 s in, for 20 s. A summary every 5 s. Press Ctrl-C to stop."

# shellcheck disable=SC2086 # NHUB_SIM_ARGS is a list of options
"$BIN/nhub-sim" -c "$CFG" --hub "$ENDPOINT" --keys "$KEYS" --data "$RUN/sim" \
    --regions "$(echo $PROVINCES | tr ' ' ,)" --offline "$OFFLINE" --summary-every 5 \
    ${NHUB_SIM_ARGS:-} 2>>"$RUN/sim.log" &
SIM_PID=$!
wait "$SIM_PID"
rc=$?
SIM_PID=""
if [ "$rc" != 0 ]; then
    echo "run: the simulation ended (status $rc); last lines of $RUN/sim.log:"
    tail -n 5 "$RUN/sim.log"
fi
stop
