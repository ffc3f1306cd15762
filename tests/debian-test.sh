#!/bin/sh
# Builds the Debian packages from the source tree (dpkg-buildpackage -us -uc -b, test suites
# skipped: they run in the other stages), runs lintian on them, installs them on this machine,
# builds and runs consumers of the installed packages (pkg-config, CMake, the score tool and its
# manual page, the Python package), then removes the packages again. Needs root and the packages debhelper,
# dpkg-dev, lintian, cmake (installed by tools/test.sh). Usage: debian-test.sh SRCDIR
set -eu
srcdir=$(cd "$1" && pwd)
tmp=$(mktemp -d)
installed=0
cleanup() {
    if [ "$installed" = 1 ]; then
        apt-get purge -y -qq libscore0 libscore-dev libscore-bin libscore-doc python3-libscore >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
# the tracked files only (no build directories)
mkdir -p "$tmp/src"
if git -C "$srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$srcdir" && git ls-files -z | xargs -0 cp --parents -t "$tmp/src")
else
    cp -a "$srcdir/." "$tmp/src"
fi
cd "$tmp/src"
DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -us -uc -b >"$tmp/build.log" 2>&1 ||
    { tail -n 80 "$tmp/build.log"; echo "dpkg-buildpackage failed"; exit 1; }
cd "$tmp"
ls ./*.deb
for p in libscore0 libscore-dev libscore-bin libscore-doc python3-libscore; do
    ls ./${p}_*.deb >/dev/null 2>&1 || { echo "package $p was not built"; exit 1; }
done
# lintian: errors and warnings fail (the justified exceptions are overrides in debian/)
lintian --fail-on error,warning --suppress-tags-from-file /dev/null ./*.changes >"$tmp/lintian.log" 2>&1 ||
    { cat "$tmp/lintian.log"; echo "lintian reported errors or warnings"; exit 1; }
echo "lintian: $(grep -c . "$tmp/lintian.log" || true) informational tags"
# install, then use only what the packages installed
installed=1
apt-get install -y -qq ./libscore0_*.deb ./libscore-dev_*.deb ./libscore-bin_*.deb \
    ./libscore-doc_*.deb ./python3-libscore_*.deb >/dev/null
cc -std=c11 -Wall -Werror -o "$tmp/consumer" "$srcdir/tests/install-consumer.c" \
    $(pkg-config --cflags --libs libscore)
"$tmp/consumer"
mkdir -p "$tmp/cm"
cp "$srcdir/tests/install-consumer.c" "$tmp/cm/consumer.c"
cat >"$tmp/cm/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(deb_consumer C)
find_package(libscore 0.1 REQUIRED)
add_executable(consumer consumer.c)
target_link_libraries(consumer PRIVATE libscore::libscore)
CMAKE
cmake -S "$tmp/cm" -B "$tmp/cm-build" >"$tmp/cmake.log" 2>&1 && cmake --build "$tmp/cm-build" >>"$tmp/cmake.log" 2>&1 ||
    { cat "$tmp/cmake.log"; exit 1; }
"$tmp/cm-build/consumer"
score datasets >/dev/null
score train --dataset ring8 --steps 50 -q -o "$tmp/m.safetensors"
score sample "$tmp/m.safetensors" -n 10 --sampler dpmpp-2m --steps 5 -q -o "$tmp/s.csv"
[ "$(grep -c . "$tmp/s.csv")" -ge 10 ] || { echo "score sample wrote too few rows"; exit 1; }
[ -f /usr/share/man/man1/score.1.gz ] || { echo "the manual page was not installed"; exit 1; }
[ -f /usr/share/doc/libscore-doc/html/index.html ] || { echo "the HTML reference was not installed"; exit 1; }
# the Python package (system interpreter, package and library from the .debs only): the model
# `score train` wrote above, sampled as `score sample` did (same sampler, steps and seed 0)
(cd "$tmp" && env -u LIBSCORE_LIBRARY -u PYTHONPATH -u LD_LIBRARY_PATH /usr/bin/python3 - \
    "$tmp/m.safetensors" "$tmp/s.csv") <<'PY'
import sys

import numpy as np

import libscore

assert libscore.__file__.startswith("/usr/lib/python3/dist-packages/"), libscore.__file__
gm = libscore.GenModel.load(sys.argv[1])
x = gm.sample(10, sampler="dpmpp-2m", steps=5, seed=0)
want = np.loadtxt(sys.argv[2], delimiter=",", skiprows=1, ndmin=2).astype(np.float32)
np.testing.assert_array_equal(x, want)
print("debian test: python3-libscore", libscore.__version__, "samples as score sample does")
PY
echo "debian test: ok"
