#!/bin/sh
# Sets up a fresh Debian 12 machine (packages), builds libscore and runs the main demo.
set -eu
cd "$(dirname "$0")/.."
sh tools/setup-debian.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
./build/examples/example-hello
