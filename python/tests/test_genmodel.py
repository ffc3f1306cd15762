"""The saved generative model: round trips, metadata, labels and guidance, and samples and
likelihoods bit-identical to the `score` tool's on the same seed."""

import os

import numpy as np
import pytest

import libscore as ls
from conftest import DATA, needs_cli, needs_data, read_csv, run_cli


def test_round_trip_metadata_and_guidance_check(tmp_path):
    sched = ls.Schedule("vp")
    a = ls.GenModel.from_system(ls.System(sched, ls.Model.mlp(2, hidden=8, depth=1), "eps"),
                                transform=([1.0, -2.0], [0.5, 4.0]), columns=["u", "v"])
    b = ls.GenModel.from_system(ls.System(sched, ls.Model.mlp(2, hidden=8, depth=1, seed=3),
                                          "eps"))
    a.set_dequant("uniform", 0.25)
    a.model.set_metadata("user.note", "hello")
    np.testing.assert_array_equal(a.encode([[1.5, 2.0]]), [[1.0, 1.0]])
    np.testing.assert_array_equal(a.decode(a.encode([[1.5, 2.0]])), [[1.5, 2.0]])
    path = os.fspath(tmp_path / "g.safetensors")
    a.save(path)
    c = ls.GenModel.load(path)
    info = c.info()
    assert info["columns"] == ["u", "v"] and info["dequant"] == ("uniform", 0.25)
    assert info["transform"] == ([1.0, -2.0], [0.5, 4.0])
    assert info["predict"] == "eps" and info["schedule"] == "vp" and info["network"] == "mlp"
    assert c.model.metadata["user.note"] == "hello"
    np.testing.assert_array_equal(c.model.weights, a.model.weights)
    c.check_compatible(a)
    with pytest.raises(ls.Error) as e:
        a.check_compatible(b)
    assert e.value.status == "SCORE_E_INVAL" and "transform" in e.value.message
    b.set_transform([1.0, -2.0], [0.5, 4.0])
    g = a.cfg(b, 1.5)
    assert g.sample(5, sampler="heun", steps=4, seed=1).shape == (5, 2)
    with pytest.raises(ls.Error) as e:
        g.save(os.fspath(tmp_path / "cfg.safetensors"))
    assert e.value.status == "SCORE_E_UNSUPPORTED"
    # a plain network file is refused with the way to convert it
    a.model.save(os.fspath(tmp_path / "net.safetensors"))
    with pytest.raises(ls.Error) as e:
        ls.GenModel.load(os.fspath(tmp_path / "net.safetensors"))
    assert e.value.status == "SCORE_E_FORMAT"


def test_samples_do_not_depend_on_the_block_size_of_the_calls():
    # rows keep their global index across blocks (row0): with the exact Gaussian model every
    # row's arithmetic is its own, so any split gives the same bits
    sched = ls.Schedule("vp")
    gm = ls.GenModel.from_system(ls.System(sched, ls.Model.gaussian(sched, [1.0], [0.5]),
                                           "score"))
    a = gm.sample(50, sampler="euler", steps=10, seed=4)
    np.testing.assert_array_equal(gm.sample(50, sampler="euler", steps=10, seed=4, batch=7), a)
    out = np.zeros((50, 1), dtype=np.float32)
    assert gm.sample(50, sampler="euler", steps=10, seed=4, out=out) is out
    np.testing.assert_array_equal(out, a)


def test_labels_by_name_and_index():
    sched = ls.Schedule("vp")
    net = ls.Model.mlp(2, hidden=8, depth=1, num_classes=2)
    gm = ls.GenModel.from_system(ls.System(sched, net, "eps"), labels=["left", "right"])
    assert gm.labels == ["left", "right"] and gm.num_classes == 2
    a = gm.sample(20, sampler="heun", steps=5, seed=3, label="right", guidance=0.5)
    b = gm.sample(20, sampler="heun", steps=5, seed=3, label=1, guidance=0.5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, gm.sample(20, sampler="heun", steps=5, seed=3, label=0,
                                           guidance=0.5))
    with pytest.raises(ls.Error) as e:
        gm.sample(5, label="up")
    assert e.value.status == "SCORE_E_RANGE" and "left, right" in e.value.message


@needs_data
def test_file_of_the_0_1_tool():
    gm = ls.GenModel.load(os.path.join(DATA, "cli-0.1-vp.safetensors"))
    shift, scale = gm.transform
    assert shift[0] == 4.78761168 and scale[1] == 0.499932117
    x = gm.sample(6, sampler="euler", steps=10, grid="karras", seed=7)
    # the samplers and the likelihood's trace evaluate an MLP in row panels aligned to the row
    # number (any batch split gives the same bits); the 0.1 tool rounded these few rows as a
    # short GEMM remainder: its samples agree to float32 rounding, its likelihoods to the
    # adaptive solve's tolerance (rtol = atol = 1e-5)
    np.testing.assert_allclose(x, read_csv(os.path.join(DATA, "cli-0.1-vp-euler.csv"))[1],
                               rtol=1e-5, atol=1e-5)
    rows = read_csv(os.path.join(DATA, "cli-0.1-rows.csv"))[1]
    logp, bpd = gm.loglik(rows[:5], exact=True)
    ll = read_csv(os.path.join(DATA, "cli-0.1-vp-loglik.csv"))[1]
    np.testing.assert_allclose(logp.astype(np.float32), ll[:, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bpd.astype(np.float32), ll[:, 1], rtol=1e-5, atol=1e-5)
    one = ls.GenModel.load(os.path.join(DATA, "cli-0.1-dsm.safetensors"))
    assert one.fixed_t > 0
    want = read_csv(os.path.join(DATA, "cli-0.1-dsm-langevin.csv"))[1]
    np.testing.assert_allclose(one.sample_langevin(4, steps=10, seed=7), want, rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(one.sample(4, sampler="langevin", steps=10, seed=7), want,
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ls.Error) as e:
        one.sample(4)
    assert e.value.status == "SCORE_E_UNSUPPORTED" and "langevin" in e.value.message


@needs_cli
@needs_data
def test_cli_trained_model_samples_as_the_tool(tmp_path):
    m = os.fspath(tmp_path / "m.safetensors")
    run_cli("train", "--data", os.path.join(DATA, "cli-0.1-train.csv"), "-o", m, "--hidden",
            "16", "--depth", "2", "--steps", "60", "--batch", "32", "--seed", "4", "-q")
    gm = ls.GenModel.load(m)
    assert gm.columns == ["a", "b"] and gm.transform is not None
    # the tool's defaults (steps, grid) for each name: no options needed to match it
    for smp, steps in (("euler", "8"), ("em", "8"), ("heun", "8"), ("dpmpp-2m", "6"),
                       ("pc", "5"), ("ddim", "7")):
        out = os.fspath(tmp_path / (smp + ".csv"))
        run_cli("sample", m, "--sampler", smp, "--steps", steps, "-n", "40", "--seed", "11",
                "-o", out, "-q")
        header, want = read_csv(out)
        assert header == ["a", "b"]
        x = gm.sample(40, sampler=smp, steps=int(steps), seed=11)
        np.testing.assert_array_equal(x, want, err_msg=smp)
    rows = os.path.join(DATA, "cli-0.1-rows.csv")
    out = os.fspath(tmp_path / "ll.csv")
    run_cli("loglik", m, rows, "-o", out, "-q")
    logp, bpd = gm.loglik(read_csv(rows)[1])
    ll = read_csv(out)[1]
    np.testing.assert_allclose(logp.astype(np.float32), ll[:, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bpd.astype(np.float32), ll[:, 1], rtol=1e-5, atol=1e-5)


@needs_cli
def test_cli_class_conditional_model_samples_as_the_tool(tmp_path):
    # a class-conditional model trained by the tool (text labels), sampled for one class with
    # guidance on the one network: the same bits from Python
    data = ls.toy_dataset("ring8", 600, seed=3)
    names = np.where(data[:, 0] < 0, "west", "east")
    csv = tmp_path / "d.csv"
    with open(csv, "w") as f:
        f.write("x,y,side\n")
        for (u, v), s in zip(data, names):
            f.write(f"{u:.9g},{v:.9g},{s}\n")
    m = os.fspath(tmp_path / "c.safetensors")
    run_cli("train", "--data", os.fspath(csv), "--label-column", "side", "-o", m, "--hidden",
            "16", "--depth", "2", "--steps", "40", "--batch", "32", "-q")
    gm = ls.GenModel.load(m)
    assert gm.labels == ["east", "west"] and gm.columns == ["x", "y"]
    out = os.fspath(tmp_path / "s.csv")
    run_cli("sample", m, "--class", "west", "--guidance", "1.5", "--sampler", "heun",
            "--steps", "6", "-n", "30", "--seed", "2", "-o", out, "-q")
    np.testing.assert_array_equal(gm.sample(30, sampler="heun", steps=6, seed=2, label="west",
                                            guidance=1.5), read_csv(out)[1])


@needs_cli
def test_cli_classifier_guides_as_the_tool(tmp_path):
    # an unconditional model and a classifier of its data trained by the tool: guided samples
    # from Python are the tool's bits; the library refuses a classifier of other units
    data = ls.toy_dataset("ring8", 600, seed=5)
    names = np.where(data[:, 1] < 0, "south", "north")
    csv, xy = tmp_path / "d.csv", tmp_path / "xy.csv"
    with open(csv, "w") as f, open(xy, "w") as g:
        f.write("x,y,side\n")
        g.write("x,y\n")
        for (u, v), s in zip(data, names):
            f.write(f"{u:.9g},{v:.9g},{s}\n")
            g.write(f"{u:.9g},{v:.9g}\n")
    m, c = os.fspath(tmp_path / "m.safetensors"), os.fspath(tmp_path / "c.safetensors")
    run_cli("train", "--data", os.fspath(xy), "-o", m, "--hidden", "16", "--depth", "2",
            "--steps", "40", "--batch", "32", "-q")
    run_cli("train-classifier", m, "--data", os.fspath(csv), "--label-column", "side", "-o", c,
            "--hidden", "16", "--depth", "2", "--steps", "40", "-q")
    gm, clf = ls.GenModel.load(m), ls.GenModel.load(c)
    assert clf.is_classifier and not gm.is_classifier
    assert clf.labels == ["north", "south"] and clf.columns == ["x", "y"]
    out = os.fspath(tmp_path / "s.csv")
    run_cli("sample", m, "--classifier", c, "--class", "south", "--classifier-scale", "2",
            "--sampler", "dpmpp-2m", "--steps", "8", "-n", "30", "--seed", "6", "-o", out, "-q")
    got = gm.sample(30, sampler="dpmpp-2m", steps=8, seed=6, label="south", classifier=clf,
                    classifier_scale=2.0)
    np.testing.assert_array_equal(got, read_csv(out)[1])
    with pytest.raises(ls.Error) as e:
        clf.system()
    assert e.value.status == "SCORE_E_UNSUPPORTED"
    raw = os.fspath(tmp_path / "raw.safetensors")
    run_cli("train", "--data", os.fspath(xy), "-o", raw, "--hidden", "8", "--depth", "1",
            "--steps", "2", "--no-standardize", "-q")
    with pytest.raises(ls.Error) as e:
        ls.GenModel.load(raw).sample(3, label="south", classifier=clf)
    assert e.value.status == "SCORE_E_INVAL" and "data transform" in e.value.message


def test_loglik_in_data_units_closed_form():
    # exact Gaussian N(0, diag(var)) in model units, data = shift + scale * model: the density
    # in data units is that of N(shift, scale^2 (alpha^2 var + sigma^2)) at t_eps, i.e. the
    # model-unit log-density minus sum log scale (the transform's log-determinant)
    sched = ls.Schedule("vp")
    var, shift, scale = np.array([1.0, 0.25]), np.array([10.0, -3.0]), np.array([2.0, 0.5])
    gm = ls.GenModel.from_system(ls.System(sched, ls.Model.gaussian(sched, [0.0, 0.0], var),
                                           "score"), transform=(shift, scale))
    x = np.array([[10.0, -3.0], [12.0, -3.5], [7.0, -2.8]], dtype=np.float32)
    logp, bpd = gm.loglik(x, exact=True)
    a, s = sched.alpha_sigma(sched.t_eps)
    v = scale ** 2 * (a[0] ** 2 * var + s[0] ** 2)
    exact = -0.5 * np.sum((x - shift) ** 2 / v + np.log(2 * np.pi * v), axis=1)
    np.testing.assert_allclose(logp, exact, atol=2e-3)     # ODE tolerances 1e-5, prior 1e-4
    np.testing.assert_allclose(bpd, -logp / (2 * np.log(2)), rtol=1e-12)
