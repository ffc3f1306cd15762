#!/usr/bin/env python3
"""Where the error of DPM-Solver++(3M) comes from, step by step, in float64.

A reimplementation of libscore's third-order dpmpp-3m update (data prediction, exponential
integrator of the quadratic interpolant of the last three data predictions in lambda, started
with a first- and a second-order step) written from the formulas, on 2-D Gaussian data
N((1, -0.5), diag(1, 0.25)) under the VP schedule (beta 0.1 .. 20, T = 1 -> t_eps = 1e-3),
uniform-lambda grid. For Gaussian data the PF-ODE in y = x / alpha is linear with a closed-form
flow, so each step's local error can be carried to the end exactly: the program prints the
global error and the contributions of the first, second and last step and of all the others.
With --start-correction the first step's result is corrected at the second step as
SCORE_STEP_PARAM_START_CORRECTION does. doc/choosing-a-sampler.md ("Precision") quotes its
output for the start values of tests/test-sampler-f64.c (--x0: a file of 32 numbers, 16 rows
of 2; without it, 16 seeded normal draws).

Usage: tools/dpmpp3m-start-error.py [--x0 FILE] [--start-correction] [N ...]
"""
import argparse

import numpy as np

BETA0, BETA1, T, T_EPS = 0.1, 20.0, 1.0, 1e-3
MEAN, VAR = np.array([1.0, -0.5]), np.array([1.0, 0.25])


def log_alpha(t):
    return -0.25 * t * t * (BETA1 - BETA0) - 0.5 * t * BETA0


def lam(t):
    la = log_alpha(t)
    return la - 0.5 * np.log(-np.expm1(2.0 * la))  # log alpha - log sigma


def phi(h):
    """I0, I1, I2: integrals of e^(u - h) u^k / k! over [0, h], k = 0, 1, 2."""
    e = np.exp(-h)
    if h < 1e-2:  # series: the closed forms cancel
        i1 = sum((-1) ** k * h ** (k + 2) / np.prod(range(1, k + 3)) for k in range(8))
        i2 = sum((-1) ** k * h ** (k + 3) / np.prod(range(1, k + 4)) for k in range(8))
    else:
        i1, i2 = h - 1.0 + e, h * h / 2.0 - h + 1.0 - e
    return -np.expm1(-h), i1, i2


def denoise(y, lm):
    """Data prediction D(y, lambda) of the Gaussian, in y = x / alpha, s = e^-lambda."""
    return MEAN + VAR / (VAR + np.exp(-2.0 * lm)) * (y - MEAN)


def flow(y, l0, l1):
    """Exact PF-ODE flow of y from lambda l0 to l1."""
    return MEAN + (y - MEAN) * np.sqrt((VAR + np.exp(-2.0 * l1)) / (VAR + np.exp(-2.0 * l0)))


def solve(y, lams, correct):
    n = len(lams) - 1
    hist = []  # (lambda, D) of the previous steps, newest last
    contrib = np.zeros((n,) + y.shape)
    for k in range(n):
        l0, l1 = lams[k], lams[k + 1]
        h = l1 - l0
        d = denoise(y, l0)
        if correct and len(hist) == 1:
            hp = l0 - hist[-1][0]
            y = y + phi(hp)[1] * (d - hist[-1][1]) / hp
            contrib[k - 1] = (y - flow(ystart, lams[k - 1], l0)) * carry(l0, lams[-1])
        i0, i1, i2 = phi(h)
        yn = np.exp(-h) * y + i0 * d
        if len(hist) == 1:
            yn += i1 * (d - hist[-1][1]) / (l0 - hist[-1][0])
        elif len(hist) == 2:
            h0, h1 = l0 - hist[-1][0], hist[-1][0] - hist[-2][0]
            f01 = (d - hist[-1][1]) / h0
            f012 = (f01 - (hist[-1][1] - hist[-2][1]) / h1) / (h0 + h1)
            yn += i1 * (f01 + h0 * f012) + 2.0 * i2 * f012
        contrib[k] = (yn - flow(y, l0, l1)) * carry(l1, lams[-1])
        hist = (hist + [(l0, d)])[-2:]
        ystart, y = y, yn
    return y, contrib


def carry(l_from, l_end):
    """Factor by which the linear flow carries a perturbation of y from l_from to l_end."""
    return np.sqrt((VAR + np.exp(-2.0 * l_end)) / (VAR + np.exp(-2.0 * l_from)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--x0", help="file of 16 x 2 start values at T")
    ap.add_argument("--start-correction", action="store_true")
    ap.add_argument("steps", nargs="*", type=int, default=[250, 500, 1000, 2000, 4000])
    a = ap.parse_args()
    x0 = (np.loadtxt(a.x0).reshape(-1, 2) if a.x0
          else np.random.default_rng(7).standard_normal((16, 2)))
    a0, a1 = np.exp(log_alpha(T)), np.exp(log_alpha(T_EPS))
    l0, l1 = lam(T), lam(T_EPS)
    exact = a1 * flow(x0 / a0, l0, l1)
    for n in a.steps:
        y, c = solve(x0 / a0, np.linspace(l0, l1, n + 1), a.start_correction)
        worst = lambda v: np.max(np.abs(a1 * v))  # noqa: E731
        print("N %5d: error %.3e | first step %.2e, second %.2e, last %.2e, all others %.2e"
              % (n, worst(y - exact / a1), worst(c[0]), worst(c[1]), worst(c[-1]),
                 worst(c[2:-1].sum(axis=0))))


if __name__ == "__main__":
    main()
