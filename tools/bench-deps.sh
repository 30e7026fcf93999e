#!/bin/sh
# Install the Debian packages the benchmark's peer baselines need, when missing:
# the servers (rabbitmq-server, nats-server) and the C client libraries
# (librabbitmq-dev, libnats-dev). A package that cannot be installed is named
# on a line of its own and skipped; the bench then prints that peer as skipped.
# Never fails the build: exits 0 whatever could be installed.
PKGS="rabbitmq-server nats-server librabbitmq-dev libnats-dev"
installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
missing=""
for p in $PKGS; do
    installed "$p" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "bench-deps: not root; peers needing$missing will be skipped (run as root: apt-get install$missing)" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "bench-deps: installing$missing"
apt-get update -qq || echo "bench-deps: apt-get update failed; trying with the lists as they are" >&2
# One package at a time, so that one that cannot be had does not block the others.
# --no-install-recommends keeps Erlang's GUI parts out; rabbitmq-server's
# start-up scripts are not used (the bench starts its own node).
log=$(mktemp)
for p in $missing; do
    if ! apt-get install -y -qq --no-install-recommends "$p" >"$log" 2>&1; then
        echo "bench-deps: cannot install $p ($(grep -E '^E:' "$log" | tail -n 1)); the peer that needs it will be skipped"
    fi
done
rm -f "$log"
# Debian's package starts a system rabbitmq-server / nats-server where a service
# manager runs; the bench starts its own on free ports and needs no system one.
exit 0
