#!/bin/sh
# Install the Debian packages nhub needs to build and test, when missing.
# A package already installed is kept as it is (apt-get install does not
# upgrade it): make check is run on Debian 12 with libssl3 3.0.19 (an older
# image) and with 3.0.22 (what apt-get installs on a fresh machine).
set -e
PKGS="build-essential pkg-config libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
liblmdb-dev lmdb-utils libssl-dev libyaml-dev libcmocka-dev clang
libclang-rt-14-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev
chromium prometheus openssl curl nodejs
fonts-wqy-microhei"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
if [ "$(id -u)" != 0 ]; then
    echo "deps: not root; run as root: apt-get install$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
