"""The one exception type, its mapping of the library's statuses, parameters by name, the
library loader and the array rules (no copy of C-contiguous float32 inputs)."""

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import libscore as ls
from libscore import _arrays


def test_version_matches_the_package():
    assert ls.version() == ls.__version__


def test_blas_check_describes_the_loaded_blas():
    info = ls.blas_check()
    assert info["blas"] in ("openblas", "blis", "netlib")
    assert info["fit"] in ("match", "narrow", "unknown")
    for key in ("core_isa", "cpu_isa"):
        assert info[key] in ("sse", "avx", "avx2", "avx512", "unknown")
    order = ["sse", "avx", "avx2", "avx512"]
    if "unknown" in (info["core_isa"], info["cpu_isa"]):
        assert info["fit"] == "unknown"
    else:
        narrow = order.index(info["core_isa"]) < order.index(info["cpu_isa"])
        assert info["fit"] == ("narrow" if narrow else "match")
    assert ("hint" in info) == (info["fit"] == "narrow" and info["blas"] == "openblas")
    if info["blas"] == "openblas" and platform.machine() in ("x86_64", "AMD64"):
        # the kernels OPENBLAS_CORETYPE selects (an x86-64 name), read back in a fresh process
        code = "import libscore, json; print(json.dumps(libscore.blas_check()))"
        env = dict(os.environ, OPENBLAS_CORETYPE="Prescott")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout
        forced = __import__("json").loads(out)
        assert forced["core"] == "Prescott" and forced["core_isa"] == "sse"
        if info["cpu_isa"] not in ("sse", "unknown"):
            assert forced["fit"] == "narrow"
            assert forced["hint"].startswith("OPENBLAS_CORETYPE=")


def test_library_errors_carry_status_name_code_and_message():
    with pytest.raises(ls.Error) as e:
        ls.Model.load("/nonexistent/model.safetensors")
    assert e.value.status == "SCORE_E_IO"
    assert e.value.code == -14
    assert "/nonexistent/model.safetensors" in e.value.message
    assert str(e.value).startswith("SCORE_E_IO: ")
    sched = ls.Schedule("vp")
    system = ls.System(sched, ls.Model.mlp(2, hidden=8, depth=1), "eps")
    with pytest.raises(ls.Error) as e:
        system.score(np.zeros((4, 2)), 5.0)           # t outside [0, T]: the library refuses
    assert (e.value.status, e.value.code) == ("SCORE_E_RANGE", -5)
    with pytest.raises(ls.Error) as e:
        ls.Sampler("dpmpp-2m", 2, steps=-1)           # num_steps below its minimum (0)
    assert e.value.status == "SCORE_E_RANGE"
    assert "num_steps" in e.value.message or "100" in e.value.message


def test_arguments_refused_before_the_call_use_the_same_exception():
    system = ls.System(ls.Schedule("vp"), ls.Model.mlp(2, hidden=8, depth=1), "eps")
    with pytest.raises(ls.Error) as e:
        system.score(np.zeros((4, 3)), 0.5)           # wrong dimension
    assert (e.value.status, e.value.code) == ("SCORE_E_SHAPE", -4)
    with pytest.raises(ls.Error) as e:
        ls.sample(system, 10, sampler="dpm++2m")
    assert e.value.status == "SCORE_E_UNSUPPORTED"
    assert "dpmpp-2m" in e.value.message                # the valid names are listed
    with pytest.raises(ls.Error) as e:
        ls.Schedule("no-such-schedule")
    assert e.value.status == "SCORE_E_UNSUPPORTED"
    s = ls.Schedule("vp")
    s.close()
    with pytest.raises(ls.Error) as e:
        s.t_eps
    assert e.value.status == "SCORE_E_MISUSE"


def test_parameters_by_name_through_the_introspection_api():
    info = ls.param_info("sampler", "num_steps")
    assert info.type == "i64" and info.name == "num_steps" and info.min == 0
    assert "num_steps" in ls.param_names("sampler")
    assert ls.param_info("likelihood", "rtol").type == "f64"
    assert ls.param_id("likelihood", "rtol") != ls.param_id("likelihood", "atol")
    smp = ls.Sampler("ddim", 2, steps=7, eta=0.25)
    assert smp.get("num_steps") == 7
    assert smp.get("eta") == 0.25
    assert smp.get("grid") == ls.GRIDS["uniform-t"]       # the tool's ddim default
    with pytest.raises(ls.Error) as e:
        smp.set(no_such_parameter=1)
    assert e.value.status == "SCORE_E_UNSUPPORTED"
    with pytest.raises(ls.Error) as e:
        smp.set(num_steps=2.5)                              # an integer parameter
    assert e.value.status == "SCORE_E_INVAL"
    sched = ls.Schedule("vp", beta_max=10.0)
    assert sched.get("beta_max") == 10.0
    m = ls.Model.mlp(3, hidden=16, depth=2, num_classes=4, context_dim=2)
    assert (m.get("hidden"), m.num_classes, m.context_dim) == (16, 4, 2)


def test_float32_c_contiguous_inputs_are_not_copied():
    a = np.zeros((5, 3), dtype=np.float32)
    assert _arrays.rows(a, 3) is a
    b = _arrays.rows(np.zeros((5, 3)), 3)              # float64: converted, a new array
    assert b.dtype == np.float32 and b.flags.c_contiguous
    t = np.asfortranarray(np.ones((5, 3), dtype=np.float32))
    assert not np.shares_memory(_arrays.rows(t, 3), t)  # strided: copied once


def test_out_arrays_are_written_in_place():
    sched = ls.Schedule("vp")
    system = ls.System(sched, ls.Model.gaussian(sched, [0.0, 1.0], [1.0, 2.0]), "score")
    x = np.ones((4, 2), dtype=np.float32)
    out = np.empty((4, 2), dtype=np.float32)
    r = system.score(x, 0.5, out=out)
    assert r is out
    np.testing.assert_array_equal(out, system.score(x, 0.5))
    with pytest.raises(ls.Error) as e:
        system.score(x, 0.5, out=np.empty((4, 2)))      # float64 out: refused, not converted
    assert e.value.status == "SCORE_E_SHAPE"


def _import_with(env_extra):
    env = dict(os.environ, **env_extra)
    return subprocess.run([sys.executable, "-c", "import libscore; print(libscore.library_path())"],
                          env=env, capture_output=True, text=True)


def test_loader_override_and_clear_failure():
    lib = os.environ["LIBSCORE_LIBRARY"]
    r = _import_with({"LIBSCORE_LIBRARY": lib})
    assert r.returncode == 0 and r.stdout.strip() == lib
    r = _import_with({"LIBSCORE_LIBRARY": "/nonexistent/libscore.so"})
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "LIBSCORE_LIBRARY" in r.stderr
    assert "/nonexistent/libscore.so" in r.stderr
