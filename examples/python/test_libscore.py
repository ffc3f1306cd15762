"""Tests of the ctypes binding (libscore.py): train, sample and loglik from Python with numpy;
generative model files written by the `score` tool ($SCORE_CLI) sampled bit for bit as the tool
does; parameter ids read from the library's tables.

Run by meson (suite 'python') with LIBSCORE_LIBRARY pointing at the built library; exits with
77 (meson's "skipped") when numpy is not installed.
"""

import math
import os
import subprocess
import sys
import tempfile
import unittest

try:
    import numpy as np
except ImportError:
    print("numpy is not installed: skipping the Python binding tests")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import libscore as ls  # noqa: E402


class BindingTest(unittest.TestCase):
    def test_version(self):
        self.assertRegex(ls.version(), r"^\d+\.\d+\.\d+")

    def test_gaussian_loglik_matches_closed_form(self):
        # exact Gaussian model: the probability-flow log-likelihood equals the closed-form
        # log-density of the data noised to t_eps, N(alpha mu, alpha^2 var + sigma^2). The
        # mean is 0 so that the prior N(0, I) at T matches the true marginal there to 1e-4
        # (with a mean mu the mismatch costs about alpha(T) |mu| |z| ~ 0.01 nats)
        sched = ls.Schedule("vp")
        mean, var = np.array([0.0, 0.0]), np.array([1.0, 0.25])
        system = ls.System(sched, ls.Model.gaussian(sched, mean, var), predict="score")
        x = np.array([[0.0, 0.0], [1.0, -1.5], [2.0, -0.5]], dtype=np.float32)
        logp, bpd = ls.loglik(system, x)
        a, s = sched.alpha_sigma([sched.t_eps])
        v = a[0] ** 2 * var + s[0] ** 2
        exact = -0.5 * np.sum((x - a[0] * mean) ** 2 / v + np.log(2 * math.pi * v), axis=1)
        # tolerance: ODE rtol = atol = 1e-5, and the prior mismatch above
        np.testing.assert_allclose(logp, exact, atol=2e-3)
        np.testing.assert_allclose(bpd, -logp / (2 * math.log(2)), rtol=1e-12)

    def test_gaussian_samples_have_the_right_moments(self):
        sched = ls.Schedule("vp")
        mean, var = np.array([2.0, -1.0]), np.array([0.5, 2.0])
        system = ls.System(sched, ls.Model.gaussian(sched, mean, var), predict="score")
        x = ls.sample(system, 20000, sampler="dpmpp-2m", steps=40, grid="uniform-lambda", seed=3)
        self.assertEqual(x.shape, (20000, 2))
        self.assertEqual(x.dtype, np.float32)
        # 5 standard errors (n = 20000) plus 2 % for the discretization at 40 steps
        se_m = np.sqrt(var / 20000)
        np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * se_m + 0.02 * np.sqrt(var))
        np.testing.assert_array_less(np.abs(x.var(0, ddof=1) - var),
                                     5 * var * np.sqrt(2 / 19999) + 0.02 * var)

    def test_train_sample_loglik_on_ring8(self):
        data = ls.toy_dataset("ring8", 4000, seed=0)
        self.assertEqual(data.shape, (4000, 2))
        system = ls.System(ls.Schedule("vp"), ls.Model.mlp(2, hidden=64, depth=2), "eps")
        losses = ls.train(system, data, steps=1200, lr=3e-3, batch=256)
        self.assertTrue(np.all(np.isfinite(losses)))
        # the loss must fall: mean of the last 100 steps well below the first 100
        self.assertLess(losses[-100:].mean(), 0.8 * losses[:100].mean())
        x = ls.sample(system, 1000, sampler="dpmpp-2m", steps=20, seed=1)
        r, ang = 2 * math.sqrt(2), 2 * math.pi * np.arange(8) / 8
        centres = np.stack([r * np.cos(ang), r * np.sin(ang)], 1)
        d = np.min(np.linalg.norm(x[:, None, :] - centres[None], axis=2), axis=1)
        # blobs have std 0.35; a trained model puts most samples within 1.2 of a centre
        self.assertGreater(np.mean(d < 1.2), 0.7)
        logp, bpd = ls.loglik(system, data[:20], rtol=1e-4, atol=1e-4)
        self.assertTrue(np.all(np.isfinite(logp)))
        # ring8's entropy is log(8) + log(2 pi e 0.125) = 2.84 nats, so a good model gives
        # about -2.8 per point; the best single Gaussian (variance 4.1 per coordinate) gives
        # -4.25. Require clearly better than the Gaussian (the mean of 20 points has a
        # standard error of about 0.25).
        self.assertGreater(logp.mean(), -3.8)

    def test_save_load_round_trip(self):
        model = ls.Model.mlp(3, hidden=16, depth=2, seed=4)
        x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.safetensors")
            model.save(path)
            back = ls.Model.load(path)
        self.assertEqual(back.param_count, model.param_count)
        np.testing.assert_array_equal(back.forward(x, 0.3), model.forward(x, 0.3))

    def test_errors_raise_with_the_library_message(self):
        with self.assertRaises(ls.LibscoreError) as cm:
            ls.Schedule("no-such-schedule")
        self.assertEqual(cm.exception.name, "SCORE_E_UNSUPPORTED")
        self.assertIn("no-such-schedule", str(cm.exception))
        with self.assertRaises(ls.LibscoreError) as cm:
            ls.Model.load("/nonexistent/model.safetensors")
        self.assertEqual(cm.exception.name, "SCORE_E_IO")
        sched = ls.Schedule("vp")
        system = ls.System(sched, ls.Model.mlp(2, hidden=8, depth=1), "eps")
        with self.assertRaises(ValueError):
            system.score(np.zeros((4, 3)), 0.5)   # wrong dimension, caught before the call
        with self.assertRaises(ls.LibscoreError) as cm:
            system.score(np.zeros((4, 2)), 5.0)   # t outside [0, T]
        self.assertEqual(cm.exception.name, "SCORE_E_RANGE")
        with self.assertRaises(ValueError):
            ls.sample(system, 10, sampler="dpm++2m")



DATA = os.environ.get("SCORE_TEST_DATA", "")
CLI = os.environ.get("SCORE_CLI", "")


def read_csv(path):
    """(header, float32 rows) of a CSV written by the tool (%.9g: exact float32 values)."""
    with open(path) as f:
        header = f.readline().strip().split(",")
    return header, np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2).astype(np.float32)


class GenModelTest(unittest.TestCase):
    def test_param_ids_come_from_the_library(self):
        # the ids of the binding are those of the library's tables; unknown names are refused
        self.assertEqual(ls.param_id("sampler", "num_steps"), ls.P_SAMPLER_STEPS)
        self.assertNotEqual(ls.P_LIK_RTOL, ls.P_LIK_ATOL)
        with self.assertRaises(ls.LibscoreError) as cm:
            ls.param_id("sampler", "no_such_parameter")
        self.assertEqual(cm.exception.name, "SCORE_E_UNSUPPORTED")

    @unittest.skipUnless(DATA, "SCORE_TEST_DATA not set")
    def test_file_of_the_0_1_tool(self):
        gm = ls.GenModel.load(os.path.join(DATA, "cli-0.1-vp.safetensors"))
        shift, scale = gm.transform
        self.assertEqual(shift[0], 4.78761168)
        self.assertEqual(scale[1], 0.499932117)
        x = gm.sample(6, sampler="euler", steps=10, grid="karras", seed=7)
        _, want = read_csv(os.path.join(DATA, "cli-0.1-vp-euler.csv"))
        # the samplers evaluate an MLP in row panels aligned to the row number (any batch split
        # gives the same bits); the 0.1 tool rounded these 6 rows as a short GEMM remainder:
        # its samples agree to float32 rounding, its likelihoods bit for bit
        np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-5)
        rows = read_csv(os.path.join(DATA, "cli-0.1-rows.csv"))[1]
        logp, bpd = gm.loglik(rows[:5])
        _, ll = read_csv(os.path.join(DATA, "cli-0.1-vp-loglik.csv"))
        np.testing.assert_array_equal(logp.astype(np.float32), ll[:, 0])
        np.testing.assert_array_equal(bpd.astype(np.float32), ll[:, 1])
        one = ls.GenModel.load(os.path.join(DATA, "cli-0.1-dsm.safetensors"))
        self.assertGreater(one.fixed_t, 0)
        _, want = read_csv(os.path.join(DATA, "cli-0.1-dsm-langevin.csv"))
        np.testing.assert_allclose(one.sample_langevin(4, steps=10, seed=7), want, rtol=1e-5,
                                   atol=1e-5)

    @unittest.skipUnless(CLI and DATA, "SCORE_CLI / SCORE_TEST_DATA not set")
    def test_cli_trained_model_samples_as_the_tool(self):
        with tempfile.TemporaryDirectory() as d:
            m = os.path.join(d, "m.safetensors")
            run = lambda *a: subprocess.run([CLI, *a, "-q"], check=True,  # noqa: E731
                                         stdout=subprocess.DEVNULL)
            run("train", "--data", os.path.join(DATA, "cli-0.1-train.csv"), "-o", m,
                "--hidden", "16", "--depth", "2", "--steps", "60", "--batch", "32", "--seed", "4")
            gm = ls.GenModel.load(m)
            self.assertEqual(gm.columns, ["a", "b"])
            for smp, grid in (("euler", "karras"), ("em", "uniform-t"), ("heun", "karras")):
                out = os.path.join(d, smp + ".csv")
                run("sample", m, "--sampler", smp, "--steps", "8", "-n", "40", "--seed", "11",
                    "-o", out)
                header, want = read_csv(out)
                self.assertEqual(header, ["a", "b"])
                x = gm.sample(40, sampler=smp, steps=8, grid=grid, seed=11)
                np.testing.assert_array_equal(x, want, err_msg=smp)
            rows = os.path.join(DATA, "cli-0.1-rows.csv")
            out = os.path.join(d, "ll.csv")
            run("loglik", m, rows, "--exact", "-o", out)
            logp, bpd = gm.loglik(read_csv(rows)[1])
            ll = read_csv(out)[1]
            np.testing.assert_array_equal(logp.astype(np.float32), ll[:, 0])
            np.testing.assert_array_equal(bpd.astype(np.float32), ll[:, 1])

    def test_round_trip_and_guidance_check(self):
        sched = ls.Schedule("vp")
        a = ls.GenModel.from_system(ls.System(sched, ls.Model.mlp(2, hidden=8, depth=1), "eps"))
        b = ls.GenModel.from_system(ls.System(sched, ls.Model.mlp(2, hidden=8, depth=1, seed=3),
                                              "eps"))
        a.set_transform([1.0, -2.0], [0.5, 4.0])
        a.set_names("columns", ["u", "v"])
        a.set_dequant("uniform", 0.25)
        np.testing.assert_array_equal(a.decode(a.encode([[1.5, 2.0]])), [[1.5, 2.0]])
        np.testing.assert_array_equal(a.encode([[1.5, 2.0]]), [[1.0, 1.0]])
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "g.safetensors")
            a.save(path)
            c = ls.GenModel.load(path)
        self.assertEqual(c.columns, ["u", "v"])
        self.assertEqual(c.dequant, ("uniform", 0.25))
        c.check_compatible(a)
        with self.assertRaises(ls.LibscoreError) as cm:
            a.check_compatible(b)
        self.assertIn("data transform", str(cm.exception))
        b.set_transform([1.0, -2.0], [0.5, 4.0])
        g = a.cfg(b, 1.5)
        self.assertEqual(g.sample(5, sampler="heun", steps=4, seed=1).shape, (5, 2))


if __name__ == "__main__":
    unittest.main(verbosity=2)
