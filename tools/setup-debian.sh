#!/bin/sh
# Installs the Debian 12 packages libscore needs to build and test, when they are missing.
# Run as root (or with sudo available). Extra package names may be given as arguments.
set -eu
pkgs="meson ninja-build pkg-config gcc g++ libopenblas-dev check libcjson-dev libpng-dev python3 python3-numpy
      python3-pytest dh-python libopenmpi-dev openmpi-bin $*"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
