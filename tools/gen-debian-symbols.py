#!/usr/bin/env python3
"""Writes the Debian symbols file of libscore0 from the linker version script.

usage: gen-debian-symbols.py src/libscore.map debian/libscore0.symbols

Each version node LIBSCORE_X.Y of the script lists the symbols first exported by release X.Y;
they are written as `symbol@LIBSCORE_X.Y X.Y.0`, so dependent packages get the lowest version
that provides what they use.
"""
import re
import sys


def main():
    src, dst = sys.argv[1], sys.argv[2]
    text = open(src, encoding="utf-8").read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lines = ["libscore.so.0 libscore0 #MINVER#"]
    for node, body in re.findall(r"(LIBSCORE_[0-9]+\.[0-9]+)\s*\{(.*?)\}", text, flags=re.S):
        version = node.split("_", 1)[1] + ".0"
        lines.append(" %s@%s %s" % (node, node, version))
        glob = body.split("local:")[0].replace("global:", "")
        for sym in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*;", glob):
            lines.append(" %s@%s %s" % (sym, node, version))
    if len(lines) < 3:
        sys.exit("gen-debian-symbols: no exported symbols found in %s" % src)
    with open(dst, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
