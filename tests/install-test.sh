#!/bin/sh
# Installs the built tree into a temporary DESTDIR and builds consumers of the installed files
# only, the ways the README documents:
#  1. pkg-config, shared library: `cc app.c $(pkg-config --cflags --libs libscore)`, run;
#  2. the README's command for examples/quickstart.c (which also calls libm itself) and for the
#     README's own C program, linked with warnings as errors;
#  3. pkg-config, static library: libscore.a plus `pkg-config --static --libs` of the rest, run,
#     and checked to need no libscore.so;
#  4. CMake (when cmake is installed): find_package(libscore) with libscore::libscore and
#     libscore::libscore_static, built and run;
#  5. Python (when the package was installed and PYTHON, the interpreter it was installed for,
#     has numpy): the installed package imports, finds the installed library through its
#     soname, trains, samples and evaluates likelihoods.
# usage: install-test.sh BUILDDIR SRCDIR [PYTHON]
set -eu
builddir=$1
srcdir=$2
python=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$builddir" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
pcdir=$(dirname "$(find "$tmp/root" -name libscore.pc | head -n 1)")
[ -n "$pcdir" ] || { echo "libscore.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH="$pcdir"
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
CC=${CC:-cc}
libdir=$(dirname "$(find "$tmp/root" -name 'libscore.so.0' | head -n 1)")
incdir=$(dirname "$(find "$tmp/root" -name libscore.h | head -n 1)")
for h in common.h status.h param.h rng.h version.h libscore.h; do
    [ -f "$incdir/$h" ] || { echo "missing installed header $h"; exit 1; }
done

# 1. shared, through pkg-config
flags=$(pkg-config --cflags --libs libscore)
$CC -std=c11 -Wall -Werror -o "$tmp/consumer" "$srcdir/tests/install-consumer.c" $flags
LD_LIBRARY_PATH="$libdir" "$tmp/consumer"

# 2. the README's command line, on the quickstart example (warnings are errors: the README
#    promises a clean build)
$CC -std=c11 -Wall -Wextra -Werror -o "$tmp/quickstart" "$srcdir/examples/quickstart.c" \
    $(pkg-config --cflags --libs libscore) -lm
echo "install test: README command builds examples/quickstart.c"
# the README's C program (its first ```c block), same command
awk '/^```c$/ {on = 1; next} /^```$/ && on {exit} on' "$srcdir/README.md" >"$tmp/readme.c"
[ -s "$tmp/readme.c" ] || { echo "README.md has no C program block"; exit 1; }
$CC -std=c11 -Wall -Wextra -Werror -o "$tmp/readme" "$tmp/readme.c" \
    $(pkg-config --cflags --libs libscore) -lm
LD_LIBRARY_PATH="$libdir" "$tmp/readme" | grep -q "^first sample: " || { echo "the README program failed"; exit 1; }
echo "install test: README program builds without warnings and runs"

# 3. static: the archive, then what it needs (pkg-config --static minus -lscore)
if [ -f "$libdir/libscore.a" ]; then
    rest=$(pkg-config --static --libs libscore | sed 's/-lscore\b//')
    $CC -std=c11 -Wall -Werror -o "$tmp/consumer-static" "$srcdir/tests/install-consumer.c" \
        $(pkg-config --cflags libscore) "$libdir/libscore.a" $rest
    if command -v readelf >/dev/null && readelf -d "$tmp/consumer-static" | grep -q 'libscore\.so'; then
        echo "the static consumer depends on libscore.so"; exit 1
    fi
    env -u LD_LIBRARY_PATH "$tmp/consumer-static"
    echo "install test: static consumer ok"
else
    echo "install test: no libscore.a installed (default_library=shared), static consumer skipped"
fi

# 4. CMake
if command -v cmake >/dev/null; then
    mkdir -p "$tmp/cmake-src"
    cp "$srcdir/tests/install-consumer.c" "$tmp/cmake-src/consumer.c"
    cat >"$tmp/cmake-src/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(libscore_cmake_consumer C)
find_package(libscore 0.1 REQUIRED)
add_executable(consumer consumer.c)
target_link_libraries(consumer PRIVATE libscore::libscore)
if(TARGET libscore::libscore_static)
  add_executable(consumer_static consumer.c)
  target_link_libraries(consumer_static PRIVATE libscore::libscore_static)
endif()
CMAKE
    prefix=$(pkg-config --variable=prefix libscore)   # with the DESTDIR (sysroot) in front
    cmake -S "$tmp/cmake-src" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_C_COMPILER="$CC" >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; exit 1; }
    cmake --build "$tmp/cmake-build" >>"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; exit 1; }
    LD_LIBRARY_PATH="$libdir" "$tmp/cmake-build/consumer"
    if [ -x "$tmp/cmake-build/consumer_static" ]; then
        env -u LD_LIBRARY_PATH "$tmp/cmake-build/consumer_static"
    fi
    echo "install test: CMake consumer ok"
else
    echo "install test: cmake not installed, CMake consumer skipped"
fi

# 5. Python: the installed package with the installed library (found by its soname through
#    LD_LIBRARY_PATH, as a system installation is found through the ld.so cache)
pkg=$(find "$tmp/root" -path '*/libscore/__init__.py' | head -n 1)
if [ -z "$python" ]; then
    echo "install test: no Python package installed (-Dpython=disabled), Python consumer skipped"
elif [ -z "$pkg" ]; then
    echo "the Python package was not installed"; exit 1
elif ! "$python" -c 'import numpy' 2>/dev/null; then
    echo "install test: numpy missing, Python consumer skipped"
else
    site=$(dirname "$(dirname "$pkg")")
    case "$site" in
        *-packages) ;;
        *) echo "the Python package was installed outside a site directory: $site"; exit 1 ;;
    esac
    # for the usual prefixes the interpreter must find it without PYTHONPATH
    prefix=$(pkg-config --variable=prefix libscore | sed "s|^$tmp/root||")
    if [ "$prefix" = /usr ] || [ "$prefix" = /usr/local ]; then
        "$python" -c 'import sys; sys.exit(sys.argv[1] not in sys.path)' "${site#"$tmp/root"}" ||
            { echo "$python does not search ${site#"$tmp/root"}"; exit 1; }
    fi
    (cd "$tmp" && env -u LIBSCORE_LIBRARY PYTHONPATH="$site" LD_LIBRARY_PATH="$libdir" \
        PYTHONDONTWRITEBYTECODE=1 "$python" - "$site") <<'PY'
import os
import sys

import numpy as np

import libscore

site = sys.argv[1]
assert libscore.__file__.startswith(site), libscore.__file__
assert libscore.library_path() == "libscore.so.0", libscore.library_path()
sched = libscore.Schedule("vp")
gauss = libscore.System(sched, libscore.Model.gaussian(sched, [1.0, -1.0], [0.5, 2.0]), "score")
gm = libscore.GenModel.from_system(gauss, transform=([10.0, 0.0], [2.0, 1.0]))
x = gm.sample(4000, sampler="dpmpp-2m", steps=30, seed=1)
# data units: x = 10 + 2 z with z ~ N(1, 0.5) in the first column
assert abs(x[:, 0].mean() - 12.0) < 0.1 and abs(x[:, 0].var() / 2.0 - 1) < 0.1, x.mean(0)
logp, _ = gm.loglik(x[:3], exact=True)
assert np.all(logp < 0) and np.all(np.isfinite(logp))
net = libscore.Model.mlp(2, hidden=16, depth=1)
losses = libscore.train(libscore.System(sched, net, "eps"),
                        libscore.toy_dataset("ring8", 256), steps=20, batch=64)
assert losses.shape == (20,)
print("install test: Python package", libscore.__version__, "from", os.path.relpath(
    libscore.__file__, site), "samples in data units")
PY
fi
echo "install test: ok"
