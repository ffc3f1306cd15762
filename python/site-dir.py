"""Prints where the package goes for an installation prefix: meson's choice (argv[2]) when the
interpreter searches it, else the interpreter's own site directory under the prefix (Debian's
python searches /usr/local/lib/python3.X/dist-packages, not the /usr/local/lib/python3/
dist-packages meson 1.0 computes for the prefix /usr/local), else nothing (meson's choice
stands: add it to PYTHONPATH)."""
import os
import sys

prefix, meson_dir = (os.path.normpath(a) for a in sys.argv[1:3])
searched = [os.path.normpath(p) for p in sys.path if p]
if meson_dir not in searched:
    for p in searched:
        if (p.startswith(prefix + os.sep) and os.path.basename(p) in ("site-packages",
                                                                       "dist-packages")):
            print(p)
            break
