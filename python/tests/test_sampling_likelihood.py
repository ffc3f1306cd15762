"""Samplers by name and likelihoods against closed forms (exact analytic models)."""

import math

import numpy as np
import pytest

import libscore as ls
from conftest import needs_cli, run_cli


def _gaussian_system(mean, var, schedule="vp"):
    sched = ls.Schedule(schedule)
    return ls.System(sched, ls.Model.gaussian(sched, mean, var), predict="score")


def test_gaussian_loglik_matches_closed_form():
    # exact Gaussian model: the probability-flow log-likelihood equals the closed-form
    # log-density of the data noised to t_eps, N(alpha mu, alpha^2 var + sigma^2). The mean
    # is 0 so that the prior N(0, I) at T matches the true marginal there to 1e-4.
    system = _gaussian_system([0.0, 0.0], [1.0, 0.25])
    sched = system.schedule
    x = np.array([[0.0, 0.0], [1.0, -1.5], [2.0, -0.5]], dtype=np.float32)
    logp, bpd = ls.loglik(system, x)
    a, s = sched.alpha_sigma(sched.t_eps)
    v = a[0] ** 2 * np.array([1.0, 0.25]) + s[0] ** 2
    exact = -0.5 * np.sum(x.astype(np.float64) ** 2 / v + np.log(2 * math.pi * v), axis=1)
    # tolerance: ODE rtol = atol = 1e-5, and the prior mismatch above
    np.testing.assert_allclose(logp, exact, atol=2e-3)
    np.testing.assert_allclose(bpd, -logp / (2 * math.log(2)), rtol=1e-12)


def test_gaussian_samples_have_the_right_moments():
    mean, var = np.array([2.0, -1.0]), np.array([0.5, 2.0])
    system = _gaussian_system(mean, var)
    x = ls.sample(system, 20000, sampler="dpmpp-2m", steps=40, grid="uniform-lambda", seed=3)
    assert x.shape == (20000, 2) and x.dtype == np.float32
    # 5 standard errors (n = 20000) plus 2 % for the discretization at 40 steps
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * np.sqrt(var / 20000)
                                 + 0.02 * np.sqrt(var))
    np.testing.assert_array_less(np.abs(x.var(0, ddof=1) - var),
                                 5 * var * np.sqrt(2 / 19999) + 0.02 * var)


def test_double_state_run_reaches_the_closed_form():
    # dpmpp-3m at 1000 steps (uniform lambda, VP, T -> t_eps) from fixed start values: the
    # double state (dtype float64) is within 5e-9 of the closed-form PF-ODE map, the float
    # state stays above its rounding floor of 1e-7
    mean, var = np.array([1.0, -0.5]), np.array([1.0, 0.25])
    system = _gaussian_system(mean, var)
    sched = system.schedule
    x0 = np.random.default_rng(7).standard_normal((16, 2))
    a, s = (v[0] for v in sched.alpha_sigma(sched.T))
    an, sn = (v[0] for v in sched.alpha_sigma(sched.t_eps))
    exact = an * mean + np.sqrt((an**2 * var + sn**2) / (a**2 * var + s**2)) * (x0 - a * mean)
    smp = ls.Sampler("dpmpp-3m", 2, steps=1000, grid="uniform-lambda", denoise=False)
    x64 = smp.run(system, 16, x_init=x0, dtype=np.float64)
    assert x64.dtype == np.float64
    x32 = smp.run(system, 16, x_init=x0.astype(np.float32))
    assert np.max(np.abs(x64 - exact)) < 5e-9
    assert np.max(np.abs(x32 - exact)) > 1e-7
    # a stochastic type has a double state too: the same noise, float precision apart
    ea = ls.Sampler("euler-ancestral", 2, steps=10)
    y64 = ea.run(system, 4, seed=3, x_init=x0[:4], dtype=np.float64)
    y32 = ea.run(system, 4, seed=3, x_init=x0[:4].astype(np.float32))
    assert y64.dtype == np.float64 and np.max(np.abs(y64 - y32)) < 2e-6
    # the mala corrector has none
    with pytest.raises(ls.Error):
        ls.Sampler("euler", 2, steps=10, corrector="mala").run(system, 4, x_init=x0[:4],
                                                               dtype=np.float64)


def test_known_cells_are_kept_and_strength_edges():
    system = _gaussian_system([1.0, -1.0, 0.5], [1.0, 0.5, 2.0])
    known = np.array([[np.nan, 0.25, np.nan], [2.0, np.nan, np.nan]], dtype=np.float32)
    x = ls.sample(system, 2, sampler="pc", steps=20, seed=4, known=known)
    assert x[0, 1] == np.float32(0.25) and x[1, 0] == np.float32(2.0)
    assert np.all(np.isfinite(x))
    data = np.array([[0.5, 0.5, 0.5], [-1.0, 0.0, 1.0]], dtype=np.float32)
    x0 = ls.sample(system, 2, steps=10, seed=4, x_init=data, strength=0.0)
    np.testing.assert_array_equal(x0, data)
    x1 = ls.sample(system, 2, steps=10, seed=4, x_init=data, strength=1.0)
    np.testing.assert_array_equal(x1, ls.sample(system, 2, steps=10, seed=4))


# every sampler by name on an exact Gaussian (the error is the sampler's own), at 100 steps
@pytest.mark.parametrize("name", [n for n in ls.sampler_names() if n not in ("none",)])
def test_every_sampler_by_name(name):
    if name in ("langevin", "mala"):
        pytest.skip(name + ": a corrector at fixed t (langevin: GenModel.sample_langevin() of "
                    "one-level models; mala: tests/test-energy.c)")
    mean, var = np.array([1.0, -0.5]), np.array([0.6, 1.5])
    system = _gaussian_system(mean, var, "ve" if name == "ald" else "vp")
    x = ls.sample(system, 4000, sampler=name, steps=100, seed=5)
    assert x.shape == (4000, 2) and np.all(np.isfinite(x))
    if name == "ald":
        # annealed Langevin needs step sizes tuned to its noise ladder (NCSN's presets), which
        # a generic Gaussian does not have: here only reproducibility is checked
        np.testing.assert_array_equal(x, ls.sample(system, 4000, sampler=name, steps=100,
                                                   seed=5))
        return
    # mean: 3 standard errors of 4000 samples (0.02 for variance 1.5); variance: the
    # first-order solvers (euler, ddim, euler-ancestral) are 6-13 % off at 100 steps, the
    # others below 5 %
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 0.06)
    np.testing.assert_array_less(np.abs(x.var(0) / var - 1), 0.16)


@needs_cli
def test_the_sampler_table_is_the_tools():
    """Every sampler of `score sample --help` is accepted, with the tool's default steps."""
    text = run_cli("sample", "--help")
    rows = text.split("samplers (--sampler NAME")[1].split("\n\n")[0].strip().split("\n")[1:]
    seen = 0
    for row in rows:
        name, steps = row.split()[0], int(row.rsplit("[", 1)[1].rstrip("]"))
        assert name in ls.sampler_names(), name
        if name in ls.SAMPLERS:
            assert ls.SAMPLERS[name].steps == steps, name
            seen += 1
    assert seen == len(ls.SAMPLERS)


def test_gmm_labels_give_each_component():
    # the analytic mixture's components are its classes: sampling with label k draws from
    # component k alone (exact score), the null label from the whole mixture
    sched = ls.Schedule("vp")
    means = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    gmm = ls.Model.gmm(sched, [0.2, 0.3, 0.5], means, np.full((3, 2), 0.1))
    assert gmm.num_classes == 3
    system = ls.System(sched, gmm, "score")
    for k in range(3):
        system.label = k
        x = ls.sample(system, 2000, sampler="heun", steps=30, seed=k)
        np.testing.assert_array_less(np.abs(x.mean(0) - means[k]), 0.05)
        np.testing.assert_array_less(np.abs(x.var(0) / 0.1 - 1), 0.15)
    system.label = None
    x = ls.sample(system, 4000, sampler="heun", steps=30, seed=9)
    nearest = np.argmin(((x[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(np.bincount(nearest, minlength=3) / 4000, [0.2, 0.3, 0.5],
                               atol=0.03)   # 4 standard errors of a share of 4000
    with pytest.raises(ls.Error) as e:
        system.label = 3
    assert e.value.status == "SCORE_E_RANGE"


def test_sampler_callback_exception_propagates_and_true_cancels():
    system = _gaussian_system([0.0, 0.0], [1.0, 1.0])
    seen = []

    def stop_at_3(step, total, t):
        seen.append((step, total))
        if step == 3:
            raise KeyError("stop here")

    with pytest.raises(KeyError):
        ls.sample(system, 10, sampler="euler", steps=8, callback=stop_at_3)
    assert seen[0] == (0, 8) and seen[-1][0] == 3
    with pytest.raises(ls.Error) as e:
        ls.sample(system, 10, sampler="euler", steps=8, callback=lambda s, n, t: s == 2)
    assert e.value.status == "SCORE_E_CANCELLED"
    # a run with a callback that never stops gives the samples of a run without one
    a = ls.sample(system, 10, sampler="euler", steps=8, seed=2, callback=lambda s, n, t: None)
    np.testing.assert_array_equal(a, ls.sample(system, 10, sampler="euler", steps=8, seed=2))
