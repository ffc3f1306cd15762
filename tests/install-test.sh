#!/bin/sh
# Installs the built tree into a temporary DESTDIR and builds a consumer only through
# `pkg-config --cflags --libs libscore`, then runs it.
set -eu
builddir=$1
srcdir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$builddir" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
pcdir=$(dirname "$(find "$tmp/root" -name libscore.pc | head -n 1)")
[ -n "$pcdir" ] || { echo "libscore.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH="$pcdir"
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
flags=$(pkg-config --cflags --libs libscore)
${CC:-cc} -std=c11 -Wall -Werror -o "$tmp/consumer" "$srcdir/tests/install-consumer.c" $flags
libdir=$(dirname "$(find "$tmp/root" -name 'libscore.so.0' | head -n 1)")
LD_LIBRARY_PATH="$libdir" "$tmp/consumer"
for h in common.h status.h param.h rng.h version.h libscore.h; do
    [ -f "$(dirname "$(find "$tmp/root" -name libscore.h | head -n 1)")/$h" ] || { echo "missing installed header $h"; exit 1; }
done
echo "install test: ok"
