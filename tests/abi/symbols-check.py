#!/usr/bin/env python3
"""ABI check: the dynamic symbols exported by the built library, the names in the version
script and the SCORE_API declarations in the public headers must be the same set, and every
name must start with score_.

usage: symbols-check.py LIBRARY MAPFILE HEADER...
"""
import re
import subprocess
import sys


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in "TDBRWVi":
            names.add(parts[2].split("@")[0])
    # version-node symbols (LIBSCORE_0.1) are not functions
    return {n for n in names if not n.startswith("LIBSCORE_")}


def in_map(path):
    text = open(path).read()
    text = re.sub(r"#.*", "", text)
    names = set()
    for block in re.findall(r"global:(.*?)(?:local:|\})", text, re.S):
        names.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*;", block))
    return names


def in_headers(paths):
    names = set()
    for p in paths:
        text = open(p).read()
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        text = re.sub(r"//[^\n]*", "", text)
        # preprocessor lines (the SCORE_API definition itself) are not declarations
        text = re.sub(r"^\s*#(?:[^\n]*\\\n)*[^\n]*", "", text, flags=re.M)
        for decl in re.findall(r"\bSCORE_API\b([^;{]*?)\(", text, re.S):
            m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", decl)
            if m and m.group(1) != "SCORE_API":
                names.add(m.group(1))
    return names


def main():
    lib, mapfile, headers = sys.argv[1], sys.argv[2], sys.argv[3:]
    exp, mp, hd = exported(lib), in_map(mapfile), in_headers(headers)
    ok = True
    for label, a, b in (("exported but not in the map", exp, mp),
                        ("in the map but not exported", mp, exp),
                        ("in the map but not declared SCORE_API", mp, hd),
                        ("declared SCORE_API but not in the map", hd, mp)):
        diff = sorted(a - b)
        if diff:
            ok = False
            print(f"{label}: {' '.join(diff)}")
    bad = sorted(n for n in exp | mp | hd if not n.startswith("score_"))
    if bad:
        ok = False
        print("names without the score_ prefix: " + " ".join(bad))
    # STYLE C.3: no exported data symbols
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    data = [l.split()[2] for l in out.splitlines()
            if len(l.split()) >= 3 and l.split()[1] in "DBR" and not l.split()[2].startswith("LIBSCORE_")]
    if data:
        ok = False
        print("exported data symbols: " + " ".join(data))
    print(f"{len(exp)} exported, {len(mp)} in map, {len(hd)} declared")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
