#!/bin/sh
# Builds a parent meson project that takes libscore as a subproject with the options that build
# the library only (README, "As a meson subproject"), checks that neither the command-line tool
# nor the benchmark program is built, and runs the parent's program.
set -eu
srcdir=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/parent/subprojects"
ln -s "$srcdir" "$tmp/parent/subprojects/libscore"
cp "$srcdir/tests/install-consumer.c" "$tmp/parent/consumer.c"
cat >"$tmp/parent/meson.build" <<'MESON'
project('parent', 'c', default_options: ['c_std=c11'])
libscore_proj = subproject('libscore', default_options: [
  'tests=disabled', 'examples=false', 'cli=false', 'bench=false', 'docs=disabled',
  'default_library=static'])
executable('consumer', 'consumer.c', dependencies: dependency('libscore'))
MESON
meson setup "$tmp/build" "$tmp/parent" --wrap-mode=nodownload >"$tmp/setup.log" 2>&1 ||
    { cat "$tmp/setup.log"; exit 1; }
ninja -C "$tmp/build" -j2 >"$tmp/ninja.log" 2>&1 || { cat "$tmp/ninja.log"; exit 1; }
if ninja -C "$tmp/build" -t targets all | grep -E '(^|/)(score|score-bench)(:| )'; then
    echo "the subproject built the command-line tool or the benchmark program"; exit 1
fi
"$tmp/build/consumer"
echo "subproject test: ok"
