"""Runs the package's pytest suite (or, with --script FILE, one example program), exiting with
77 (meson's "skipped") when numpy or pytest is missing.

usage: run.py TESTS_DIR | run.py --script FILE.py
"""
import runpy
import sys

try:
    import numpy  # noqa: F401
except ImportError:
    print("numpy is not installed: skipped")
    sys.exit(77)

if sys.argv[1] == "--script":
    sys.argv = sys.argv[2:]
    runpy.run_path(sys.argv[0], run_name="__main__")
    sys.exit(0)

try:
    import pytest
except ImportError:
    print("pytest is not installed (Debian: python3-pytest): skipped")
    sys.exit(77)

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-rs", sys.argv[1]]))
