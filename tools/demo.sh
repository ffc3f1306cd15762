#!/bin/sh
# Sets up a fresh Debian 12 machine (packages), builds libscore and runs the main demo.
set -eu
cd "$(dirname "$0")/.."
sh tools/setup-debian.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
# the main demo: train on a 2-D toy set, sample with two samplers, distances, SVG pictures
sh cli/demo.sh build/cli/score demo-out
