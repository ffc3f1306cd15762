"""Samplers by name.

A sampler name is either one of the named samplers of the ``score`` tool (``score sample
--help``: 'pc', 'ode', 'ald', 'edm', 'euler', 'heun', 'dpmpp-2m', ... with the tool's default
number of steps and time grid, so that the same name, steps, grid and seed give bit-identical
samples from Python and from the tool), or any step type of the library
(:func:`step_types`, e.g. 'dpm-solver-12', 'euler_ancestral'), which then runs as the
predictor of a sampler with the library's default grid.
"""

import ctypes
from collections import namedtuple

import numpy as np

from . import _arrays, _native
from ._rng import Rng
from .errors import refuse
from .params import Configurable

__all__ = ["SAMPLERS", "GRIDS", "Sampler", "sample", "step_types", "sampler_names"]

_lib = _native.lib

#: time grids (enum score_grid_kind, pinned)
GRIDS = {"uniform-t": 1, "uniform-lambda": 2, "karras": 3, "exponential": 4,
         "polyexponential": 5, "quadratic": 6}

#: a named sampler: predictor and corrector step types, default steps and grid
SamplerDef = namedtuple("SamplerDef", "predictor corrector steps grid")

#: The named samplers of the ``score`` tool (cli/cmd_sample.c), with its defaults; the test
#: suite checks this table against ``score sample --help``.
SAMPLERS = {
    "pc": SamplerDef("reverse-diffusion", "langevin", 1000, "uniform-t"),
    "ode": SamplerDef("dopri5", None, 1000, "uniform-t"),
    "ald": SamplerDef("none", "ald", 200, "uniform-lambda"),
    "edm": SamplerDef("heun", None, 18, "karras"),
    "euler": SamplerDef("euler", None, 100, "karras"),
    "heun": SamplerDef("heun", None, 40, "karras"),
    "midpoint": SamplerDef("midpoint", None, 40, "karras"),
    "rk4": SamplerDef("rk4", None, 25, "karras"),
    "dopri5": SamplerDef("dopri5", None, 1000, "uniform-t"),
    "em": SamplerDef("em", None, 1000, "uniform-t"),
    "reverse-diffusion": SamplerDef("reverse-diffusion", None, 1000, "uniform-t"),
    "ancestral": SamplerDef("ancestral", None, 1000, "uniform-t"),
    "euler-ancestral": SamplerDef("euler-ancestral", None, 100, "karras"),
    "ddim": SamplerDef("ddim", None, 50, "uniform-t"),
    "dpm-solver-1": SamplerDef("dpm-solver-1", None, 20, "uniform-lambda"),
    "dpm-solver-2": SamplerDef("dpm-solver-2", None, 20, "uniform-lambda"),
    "dpm-solver-3": SamplerDef("dpm-solver-3", None, 20, "uniform-lambda"),
    "dpmpp-2m": SamplerDef("dpmpp-2m", None, 20, "uniform-lambda"),
    "dpmpp-3m": SamplerDef("dpmpp-3m", None, 20, "uniform-lambda"),
    "dpmpp-2m-sde": SamplerDef("dpmpp-2m-sde", None, 50, "uniform-lambda"),
    "dpm-adaptive": SamplerDef("dpm-solver-23", None, 20, "uniform-lambda"),
    "dpmpp-2s": SamplerDef("dpmpp-2s", None, 10, "uniform-lambda"),
    "dpmpp-3s": SamplerDef("dpmpp-3s", None, 7, "uniform-lambda"),
    "lms": SamplerDef("lms", None, 20, "karras"),
    "deis": SamplerDef("deis", None, 20, "karras"),
    "unipc": SamplerDef("unipc", None, 20, "uniform-lambda"),
    "unipc-bh1": SamplerDef("unipc-bh1", None, 20, "uniform-lambda"),
    "dpm-2-ancestral": SamplerDef("dpm-2-ancestral", None, 30, "karras"),
    "dpmpp-2s-ancestral": SamplerDef("dpmpp-2s-ancestral", None, 30, "karras"),
    "dpmpp-sde": SamplerDef("dpmpp-sde", None, 30, "karras"),
    "dpmpp-3m-sde": SamplerDef("dpmpp-3m-sde", None, 50, "karras"),
    "restart": SamplerDef("restart", None, 20, "karras"),
    "dpm_2_ancestral": SamplerDef("dpm-2-ancestral", None, 30, "karras"),
    "dpmpp_2s_ancestral": SamplerDef("dpmpp-2s-ancestral", None, 30, "karras"),
    "dpmpp_sde": SamplerDef("dpmpp-sde", None, 30, "karras"),
    "dpmpp_3m_sde": SamplerDef("dpmpp-3m-sde", None, 50, "karras"),
    "euler_a": SamplerDef("euler-ancestral", None, 100, "karras"),
    "dpmpp_2m": SamplerDef("dpmpp-2m", None, 20, "uniform-lambda"),
    "dpmpp_2m_sde": SamplerDef("dpmpp-2m-sde", None, 50, "uniform-lambda"),
    "dpm_2": SamplerDef("dpm-solver-2", None, 20, "uniform-lambda"),
    "dpm_adaptive": SamplerDef("dpm-solver-23", None, 20, "uniform-lambda"),
    "dpmpp_3m": SamplerDef("dpmpp-3m", None, 20, "uniform-lambda"),
    "uni_pc": SamplerDef("unipc-bh1", None, 20, "uniform-lambda"),
    "uni_pc_bh2": SamplerDef("unipc", None, 20, "uniform-lambda"),
}


def step_types():
    """The names of the library's built-in step types (score_step_type_at())."""
    return [_lib.score_step_type_name(_lib.score_step_type_at(i)).decode()
            for i in range(_lib.score_step_type_count())]


def sampler_names():
    """Every name :class:`Sampler` accepts: the named samplers, then the step types."""
    return list(SAMPLERS) + [s for s in step_types() if s not in SAMPLERS]


def _step_type(name, what):
    st = _lib.score_step_type_find(name.encode())
    if not st:
        raise refuse("SCORE_E_UNSUPPORTED",
                     f"unknown {what} {name!r} (valid: {', '.join(sampler_names())})")
    return st


class Sampler(Configurable):
    """A sampler for data of dimension ``dim``, by name (see the module help).

    steps: number of grid steps (default: the named sampler's, else the library's);
    grid: a key of GRIDS (default: the named sampler's, else the library's);
    corrector: a step type name ('langevin', 'ald') replacing the sampler's own, or 'none';
    denoise: the final denoising step to t = 0;
    further parameters by name (``eta``, ``snr``, ``churn``, ``rtol``, ``atol``, ...).
    """

    _kind = "sampler"
    _free = _lib.score_sampler_free
    _set_f64, _set_i64 = _lib.score_sampler_set_f64, _lib.score_sampler_set_i64
    _get_f64, _get_i64 = _lib.score_sampler_get_f64, _lib.score_sampler_get_i64

    def __init__(self, name, dim, steps=None, grid=None, corrector=None, denoise=True,
                 **params):
        d = SAMPLERS.get(name)
        pred = _step_type(d.predictor if d else name, "sampler")
        corr_name = d.corrector if d else None
        if corrector is not None:
            corr_name = None if corrector == "none" else corrector
        corr = _step_type(corr_name, "corrector") if corr_name else None
        p = ctypes.c_void_p()
        _lib.score_sampler_new(ctypes.byref(p), pred, corr, dim)
        super().__init__(p.value)
        self.name, self.dim = name, dim
        if steps is None and d is not None:
            steps = d.steps
        if grid is None and d is not None:
            grid = d.grid
        if steps is not None:
            self.set(num_steps=steps)
        if grid is not None:
            self.set(grid=GRIDS[grid] if grid in GRIDS else _grid_error(grid))
        self.set(final_denoise=bool(denoise))
        if name == "ald" and "corrector_steps" not in params:
            params["corrector_steps"] = 2      # the tool's ald: 2 Langevin steps per level
        self.set(**params)

    @property
    def nfe(self):
        """Model evaluations per sample of the last run."""
        return _lib.score_sampler_get_nfe(self.ptr)

    def grid(self, system):
        """The time grid this sampler would use for ``system`` (float64 array)."""
        n = ctypes.c_size_t()
        _lib.score_sampler_get_grid(self.ptr, system.ptr, 0, None, ctypes.byref(n))
        out = np.empty(n.value)
        _lib.score_sampler_get_grid(self.ptr, system.ptr, out.size, _arrays.f64p(out),
                                    ctypes.byref(n))
        return out

    def set_known(self, values, mask=None):
        """Known coordinates (imputation; score_sampler_set_known()): ``values`` is one row for
        every row, or one row per global row of the runs; with ``mask`` None the finite cells
        are known and the NaN cells sampled, else ``mask`` (same shape, true = known) says
        which. ``values`` None removes them. A run then keeps the known cells exactly."""
        if values is None:
            _lib.score_sampler_set_known(self.ptr, 0, None, None)
            return
        v = _arrays.rows(values, self.dim, "values")
        m = np.isfinite(v) if mask is None else _arrays.rows(mask, self.dim, "mask", bool)
        m8 = np.ascontiguousarray(m, dtype=np.uint8)
        v = np.ascontiguousarray(np.where(m8 == 1, v, 0.0), dtype=np.float32)
        _lib.score_sampler_set_known(self.ptr, v.shape[0], m8.ctypes.data_as(ctypes.c_void_p),
                                     _arrays.f32p(v))

    def run(self, system, n, seed=0, x_init=None, out=None, row0=0, callback=None,
            dtype=np.float32):
        """n samples of ``system`` (model units) into a new (n, dim) array of ``dtype`` or
        ``out``. Rows row0 .. row0 + n - 1 of the seed's noise, so a sample does not depend
        on how the rows are split into calls. callback(step, total, t) may return True to
        stop (Error SCORE_E_CANCELLED); an exception it raises stops the run and is
        re-raised here. dtype float64 runs with a double-precision state
        (score_sampler_run_ex_f64(): x_init, the state and the result in double; the
        ``precision`` parameter = 64 does the same for float32 arrays)."""
        f64 = np.dtype(dtype) == np.float64
        if not f64 and np.dtype(dtype) != np.float32:
            raise refuse("SCORE_E_INVAL", f"dtype must be float32 or float64, not {dtype}")
        dt = np.float64 if f64 else np.float32
        ptr = _arrays.f64p if f64 else _arrays.f32p
        out = _arrays.output(out, (n, self.dim), dtype=dt)
        xi = None if x_init is None else _arrays.rows(x_init, self.dim, "x_init", dt)
        if xi is not None and xi.shape[0] != n:
            raise refuse("SCORE_E_SHAPE", f"x_init must have {n} rows")
        rng = Rng(seed)
        run = _lib.score_sampler_run_ex_f64 if f64 else _lib.score_sampler_run_ex
        with Progress(callback) as cb:
            run(self.ptr, system.ptr, row0, n, ptr(xi), ptr(out), rng.ptr, cb.fn, None)
        return out


def _grid_error(grid):
    raise refuse("SCORE_E_UNSUPPORTED", f"unknown grid {grid!r} (valid: {', '.join(GRIDS)})")


class Progress:
    """A sampler progress callback for C: a Python callable(step, total, t) returning true to
    stop; an exception it raises stops the run (the callback returns non-zero, the library
    returns SCORE_E_CANCELLED) and replaces the library's error when the block exits."""

    def __init__(self, func):
        self.func, self.exc = func, None
        self.fn = _native.SAMPLER_PROGRESS(self._call) if func else _native.SAMPLER_PROGRESS()

    def _call(self, step, total, t, user_data):
        try:
            return 1 if self.func(step, total, t) else 0
        except BaseException as e:  # noqa: B036 - handed back to the caller below
            self.exc = e
            return 1

    def __enter__(self):
        return self

    def __exit__(self, etype, exc, tb):
        if self.exc is not None:
            raise self.exc
        return False


def sample(system, n, sampler="dpmpp-2m", steps=None, grid=None, seed=0, denoise=True,
           corrector=None, x_init=None, out=None, callback=None, known=None, **params):
    """n samples of a :class:`~libscore.System` (model units) as an (n, dim) float32 array;
    the sampler by name with its options (see :class:`Sampler`). ``known``: rows whose NaN
    cells are sampled and the others kept (:meth:`Sampler.set_known`); ``strength=s`` with
    ``x_init`` data: partial sampling (SDEdit, doc/controllable-generation.md)."""
    s = Sampler(sampler, system.dim, steps=steps, grid=grid, corrector=corrector,
                denoise=denoise, **params)
    try:
        if known is not None:
            s.set_known(known)
        x = s.run(system, n, seed=seed, x_init=x_init, out=out, callback=callback)
        sample.last_nfe = s.nfe
        return x
    finally:
        s.close()


sample.last_nfe = 0
