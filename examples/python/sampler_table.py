#!/usr/bin/env python3
"""Error against model evaluations (NFE) for libscore's samplers, on a problem with a known
answer; prints the Markdown tables of doc/choosing-a-sampler.md.

Data: a 4-D Gaussian N(mu, diag(v)) with variances 0.01 .. 4 (condition number 400), noised by
the VP SDE (score_sde's beta 0.1 .. 20, t_eps = 1e-3); the model is its exact score, so every
error below is the sampler's own.

- Deterministic samplers (probability-flow ODE solvers): each starts from the same prior draws
  x_T and stops at t_eps (no final denoise); the error is the RMS distance to the exact ODE
  solution (score_model_analytic_pf_map()), relative to the data's RMS scale.
- Stochastic samplers: 100 000 samples with the final denoise; the error is the mean relative
  error of the four sample variances (the exact law of the denoised output is
  N(mu, v^2 / (v + s^2)) per coordinate with s = sigma_edm(t_eps); the Monte-Carlo noise floor
  is about 0.4 %).

Usage (the Python package libscore installed, or from a build tree):
    LIBSCORE_LIBRARY=build/src/libscore.so PYTHONPATH=build/python \
        python3 examples/python/sampler_table.py
"""
import numpy as np

import libscore as ls

MU = np.array([1.0, -1.0, 0.5, 0.0])
VAR = np.array([0.01, 0.1, 1.0, 4.0])

# name, step type, grid, model evaluations per step
DETERMINISTIC = [
    ("euler", "euler", "karras", 1),
    ("heun", "heun", "karras", 2),
    ("midpoint", "midpoint", "karras", 2),
    ("rk4", "rk4", "karras", 4),
    ("ddim", "ddim", "uniform-lambda", 1),
    ("dpm-solver-2", "dpm-solver-2", "uniform-lambda", 2),
    ("dpm-solver-3", "dpm-solver-3", "uniform-lambda", 3),
    ("dpmpp-2m", "dpmpp-2m", "uniform-lambda", 1),
    ("dpmpp-3m", "dpmpp-3m", "uniform-lambda", 1),
]
STOCHASTIC = [
    # name, predictor, corrector, grid, evaluations per step
    ("em", "em", None, "uniform-t", 1),
    ("reverse-diffusion", "reverse-diffusion", None, "uniform-t", 1),
    ("ancestral", "ancestral", None, "uniform-t", 1),
    ("pc", "reverse-diffusion", "langevin", "uniform-t", 2),
    ("euler-ancestral", "euler-ancestral", None, "karras", 1),
    ("dpmpp-2m-sde", "dpmpp-2m-sde", None, "uniform-lambda", 1),
]
NFE_ODE = [10, 20, 50, 100, 200]
NFE_SDE = [20, 50, 100, 200, 500, 1000]


def main():
    sched = ls.Schedule("vp")
    model = ls.Model.gaussian(sched, MU, VAR)
    system = ls.System(sched, model, predict="score")
    t_eps, T = sched.t_eps, 1.0

    n_ode = 4000
    x_T = sched.prior_sample(n_ode, 4, seed=5)
    exact = model.pf_map(T, t_eps, x_T)
    scale = np.sqrt(np.mean(exact.astype(np.float64) ** 2))
    print("Deterministic samplers: relative RMS error against the exact ODE solution\n")
    print("| sampler | grid | " + " | ".join(f"NFE {n}" for n in NFE_ODE) + " |")
    print("|---|---|" + "---|" * len(NFE_ODE))
    for name, step, grid, per in DETERMINISTIC:
        row = []
        for nfe in NFE_ODE:
            steps = nfe // per
            if steps < 1:
                row.append("")
                continue
            x = ls.sample(system, n_ode, sampler=step, steps=steps, grid=grid, denoise=False,
                          x_init=x_T)
            err = np.sqrt(np.mean((x.astype(np.float64) - exact) ** 2)) / scale
            row.append(f"{err:.1e}")
        print(f"| {name} | {grid} | " + " | ".join(row) + " |")

    n_sde = 100000
    a, s = sched.alpha_sigma([t_eps])
    s2 = (s[0] / a[0]) ** 2
    var_out = VAR ** 2 / (VAR + s2)   # variance of the Tweedie denoise of x_{t_eps}
    print("\nStochastic samplers: mean relative error of the sample variances "
          f"({n_sde} samples, final denoise)\n")
    print("| sampler | grid | " + " | ".join(f"NFE {n}" for n in NFE_SDE) + " |")
    print("|---|---|" + "---|" * len(NFE_SDE))
    for name, pred, corr, grid, per in STOCHASTIC:
        row = []
        for nfe in NFE_SDE:
            steps = nfe // per
            x = ls.sample(system, n_sde, sampler=pred, steps=steps, grid=grid, seed=9,
                          corrector=corr)
            err = np.mean(np.abs(x.astype(np.float64).var(0, ddof=1) / var_out - 1))
            row.append(f"{100 * err:.1f} %")
        print(f"| {name} | {grid} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
