"""Shared helpers of the package's tests. The environment (set by meson, python/meson.build):
LIBSCORE_LIBRARY (the built library), PYTHONPATH (the package in the build tree), SCORE_CLI
(the built `score` tool, optional), SCORE_TEST_DATA (tests/data), SCORE_EXAMPLES (examples/)."""

import os
import subprocess

import numpy as np
import pytest

CLI = os.environ.get("SCORE_CLI", "")
DATA = os.environ.get("SCORE_TEST_DATA", "")

needs_cli = pytest.mark.skipif(not CLI, reason="SCORE_CLI not set (built with -Dcli=false)")
needs_data = pytest.mark.skipif(not DATA, reason="SCORE_TEST_DATA not set")


def run_cli(*args):
    """Runs the score tool quietly; its stdout."""
    return subprocess.run([CLI, *args], check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True).stdout


def read_csv(path):
    """(header, float32 rows) of a CSV written by the tool (%.9g: exact float32 values)."""
    with open(path) as f:
        header = f.readline().strip().split(",")
    return header, np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2).astype(np.float32)
