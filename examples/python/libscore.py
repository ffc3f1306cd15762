"""A small ctypes binding of libscore's main calls, with numpy arrays.

    import numpy as np
    import libscore as ls

    data = ls.toy_dataset("ring8", 4000, seed=0)          # (4000, 2) float32
    system = ls.System(ls.Schedule("vp"), ls.Model.mlp(2, hidden=64, depth=2), predict="eps")
    losses = ls.train(system, data, steps=1500)            # trains in place (EMA weights)
    x = ls.sample(system, 1000, sampler="dpmpp-2m", steps=20, seed=1)
    logp, bpd = ls.loglik(system, x[:100])

    gm = ls.GenModel.load("ring8.safetensors")             # e.g. written by `score train`
    x = gm.sample(1000, sampler="euler", steps=20, seed=1) # in the data's units
    logp, bpd = gm.loglik(x[:100])

The library is found through the environment variable LIBSCORE_LIBRARY (a path to
libscore.so), then the system's library search path. Every failing call raises LibscoreError
with the status name and the library's message. Only standard ctypes and numpy are used; see
doc/ffi.md for the rules this follows (no structs by value, int status codes, size_t sizes,
float32 bulk data, the last-error message read right after the failing call on the same thread).
Parameter ids are looked up by name through the library's introspection API (param.h), never
written here as numbers.
"""

import ctypes
import ctypes.util
import os

import numpy as np

__all__ = [
    "LibscoreError", "version", "Schedule", "Model", "System", "toy_dataset", "train",
    "sample", "loglik", "STEP_TYPES", "GenModel", "param_id",
]

# ---- pinned constants of the C headers (values never change) ---------------------------------
RNG_PHILOX = 1
SCHEDULE_KINDS = {"ve": 1, "vp": 2, "subvp": 3, "ncsn": 4, "ddpm-linear": 5,
                  "ddpm-scaled-linear": 6, "ddpm-cosine": 7}
OUTPUTS = {"score": 1, "eps": 2, "x0": 3, "v": 4, "edm": 5, "score-over-sigma": 6}
ACTIVATIONS = {"silu": 1, "softplus": 2, "tanh": 3, "elu": 4, "gelu": 5}
LOSSES = {"hyvarinen": 1, "ssm": 2, "ssm-vr": 3, "dsm": 4, "ncsn": 5, "ddpm": 6, "sde": 7}
OPTIMIZERS = {"sgd": 1, "adam": 2, "adamw": 3}
GRIDS = {"uniform-t": 1, "uniform-lambda": 2, "karras": 3, "exponential": 4,
         "polyexponential": 5, "quadratic": 6}
SAMPLER_PRESETS = {"pc": 1, "ode": 2, "ncsn": 3, "ncsnv2": 4, "edm": 5}
STEP_TYPES = ("euler", "heun", "midpoint", "rk4", "dopri5", "em", "reverse-diffusion",
              "ancestral", "euler-ancestral", "ddim", "dpm-solver-1", "dpm-solver-2",
              "dpm-solver-3", "dpmpp-2m", "dpmpp-3m", "dpmpp-2m-sde", "dpm-solver-12",
              "dpm-solver-23", "dpm-adaptive")
# object kinds of the parameter tables (enum score_object_kind, param.h)
OBJECT_KINDS = {"sampler": 1, "schedule": 2, "model": 3, "loss": 4, "optimizer": 5,
                "trainer": 6, "likelihood": 7, "sde": 8, "ema": 9, "control": 10, "step": 11}
GENMODEL_NAMES = {"columns": 1, "labels": 2, "context": 3}
GENMODEL_DEQUANT = {"none": 0, "uniform": 1}


class LibscoreError(RuntimeError):
    """A libscore call failed: .status is the (negative) status code, .name its identifier."""

    def __init__(self, status, name, message):
        super().__init__(f"{name}: {message}")
        self.status = status
        self.name = name


def _load():
    path = os.environ.get("LIBSCORE_LIBRARY") or ctypes.util.find_library("score")
    if path is None:
        raise OSError("libscore not found: set LIBSCORE_LIBRARY to the path of libscore.so")
    return ctypes.CDLL(path)


_lib = _load()
_vp = ctypes.c_void_p
_pvp = ctypes.POINTER(ctypes.c_void_p)
_sz = ctypes.c_size_t
_f32p = ctypes.POINTER(ctypes.c_float)
_f64p = ctypes.POINTER(ctypes.c_double)
_int = ctypes.c_int
_i64 = ctypes.c_int64
_u64 = ctypes.c_uint64
_dbl = ctypes.c_double
_str = ctypes.c_char_p

_ip = ctypes.POINTER(ctypes.c_int)
_TRAIN_PROGRESS = ctypes.CFUNCTYPE(_int, _sz, _sz, _dbl, _dbl, _vp)
_SAMPLER_PROGRESS = ctypes.CFUNCTYPE(_int, _sz, _sz, _dbl, _vp)


def _check(status, func, args):
    if status < 0:
        msg = _lib.score_last_error_message().decode("utf-8", "replace")
        raise LibscoreError(status, _lib.score_status_name(status).decode(), msg)
    return status


# name: (restype, argtypes, checked)
_SIGNATURES = {
    "score_version_string": (_str, [], False),
    "score_last_error_message": (_str, [], False),
    "score_status_name": (_str, [_int], False),
    "score_rng_new": (_int, [_pvp, _int, _u64], True),
    "score_rng_free": (None, [_vp], False),
    "score_rng_set_stream": (_int, [_vp, _u64], True),
    "score_dataset_toy": (_int, [_str, _vp, _sz, _f32p], True),
    "score_dataset_toy_dim": (_sz, [_str], False),
    "score_schedule_new": (_int, [_pvp, _int], True),
    "score_schedule_new_preset": (_int, [_pvp, _str], True),
    "score_schedule_free": (None, [_vp], False),
    "score_schedule_prepare": (_int, [_vp], True),
    "score_schedule_name": (_str, [_vp], False),
    "score_schedule_alpha_sigma": (_int, [_vp, _sz, _f64p, _f64p, _f64p], True),
    "score_schedule_get_f64": (_int, [_vp, _int, _f64p], True),
    "score_model_new_mlp": (_int, [_pvp, _sz, _sz, _sz, _int, _u64], True),
    "score_model_new_gaussian": (_int, [_pvp, _vp, _sz, _f64p, _f64p, _f64p], True),
    "score_model_prepare": (_int, [_vp], True),
    "score_model_clone": (_int, [_pvp, _vp], True),
    "score_model_free": (None, [_vp], False),
    "score_model_dim": (_sz, [_vp], False),
    "score_model_param_count": (_sz, [_vp], False),
    "score_model_save": (_int, [_vp, _str], True),
    "score_model_load": (_int, [_pvp, _str], True),
    "score_model_forward": (_int, [_vp, _sz, _f32p, _f64p, _f32p], True),
    "score_model_analytic_pf_map": (_int, [_vp, _dbl, _dbl, _sz, _f32p, _f32p], True),
    "score_schedule_prior_sample": (_int, [_vp, _vp, _sz, _sz, _f32p], True),
    "score_sde_new": (_int, [_pvp, _vp, _vp, _int], True),
    "score_sde_free": (None, [_vp], False),
    "score_sde_set_model": (_int, [_vp, _vp], True),
    "score_sde_score": (_int, [_vp, _sz, _f64p, _f32p, _f32p], True),
    "score_loss_new": (_int, [_pvp, _int], True),
    "score_loss_free": (None, [_vp], False),
    "score_trainer_new": (_int, [_pvp, _vp, _vp, _vp, _int], True),
    "score_trainer_free": (None, [_vp], False),
    "score_trainer_set_i64": (_int, [_vp, _int, _i64], True),
    "score_trainer_set_data": (_int, [_vp, _sz, _sz, _f32p], True),
    "score_trainer_run": (_int, [_vp, _sz, _TRAIN_PROGRESS, _vp], True),
    "score_trainer_optimizer": (_vp, [_vp], False),
    "score_trainer_ema": (_vp, [_vp], False),
    "score_trainer_ema_model": (_int, [_vp, _pvp], True),
    "score_optimizer_set_f64": (_int, [_vp, _int, _dbl], True),
    "score_optimizer_set_i64": (_int, [_vp, _int, _i64], True),
    "score_ema_set_f64": (_int, [_vp, _int, _dbl], True),
    "score_step_type_find": (_vp, [_str], False),
    "score_sampler_new": (_int, [_pvp, _vp, _vp, _sz], True),
    "score_sampler_new_preset": (_int, [_pvp, _int, _sz], True),
    "score_sampler_free": (None, [_vp], False),
    "score_sampler_set_i64": (_int, [_vp, _int, _i64], True),
    "score_sampler_set_f64": (_int, [_vp, _int, _dbl], True),
    "score_sampler_run": (_int, [_vp, _vp, _sz, _f32p, _f32p, _vp, _SAMPLER_PROGRESS, _vp],
                          True),
    "score_sampler_get_nfe": (_u64, [_vp], False),
    "score_likelihood_new": (_int, [_pvp, _sz], True),
    "score_likelihood_free": (None, [_vp], False),
    "score_likelihood_set_f64": (_int, [_vp, _int, _dbl], True),
    "score_likelihood_set_i64": (_int, [_vp, _int, _i64], True),
    "score_likelihood_logp": (_int, [_vp, _vp, _sz, _f32p, _f64p, _f64p, _vp], True),
    "score_param_from_name": (_int, [_int, _str, _ip], True),
    "score_step_new": (_int, [_pvp, _vp, _sz], True),
    "score_step_free": (None, [_vp], False),
    "score_step_set_f64": (_int, [_vp, _int, _dbl], True),
    "score_genmodel_load": (_int, [_pvp, _str], True),
    "score_genmodel_save": (_int, [_vp, _str], True),
    "score_genmodel_free": (None, [_vp], False),
    "score_genmodel_new": (_int, [_pvp, _vp], True),
    "score_genmodel_dim": (_sz, [_vp], False),
    "score_genmodel_fixed_t": (_dbl, [_vp], False),
    "score_genmodel_num_classes": (_sz, [_vp], False),
    "score_genmodel_context_dim": (_sz, [_vp], False),
    "score_genmodel_name": (_str, [_vp, _int, _sz], False),
    "score_genmodel_set_names": (_int, [_vp, _int, _sz, ctypes.POINTER(_str)], True),
    "score_genmodel_get_transform": (_int, [_vp, _f64p, _f64p], True),
    "score_genmodel_set_transform": (_int, [_vp, _f64p, _f64p], True),
    "score_genmodel_get_dequant": (_int, [_vp, _ip, _f64p], True),
    "score_genmodel_set_dequant": (_int, [_vp, _int, _dbl], True),
    "score_genmodel_sde": (_int, [_vp, _pvp], True),
    "score_genmodel_encode": (_int, [_vp, _sz, _f32p, _f32p], True),
    "score_genmodel_decode": (_int, [_vp, _sz, _f32p, _f32p], True),
    "score_genmodel_sample": (_int, [_vp, _vp, _vp, _sz, _sz, _f32p, _vp, _SAMPLER_PROGRESS,
                                     _vp], True),
    "score_genmodel_sample_langevin": (_int, [_vp, _vp, _vp, _sz, _sz, _sz, _f32p, _vp], True),
    "score_genmodel_logp": (_int, [_vp, _vp, _vp, _sz, _sz, _f32p, _f64p, _f64p, _vp], True),
    "score_genmodel_check_compatible": (_int, [_vp, _vp], True),
    "score_genmodel_new_cfg": (_int, [_pvp, _vp, _vp, _dbl], True),
}

for _name, (_res, _args, _checked) in _SIGNATURES.items():
    _f = getattr(_lib, _name)
    _f.restype = _res
    _f.argtypes = _args
    if _checked:
        _f.errcheck = _check


def param_id(kind, name):
    """The id of parameter `name` of an object kind ('sampler', 'schedule', 'sde', ...), read
    from the library's parameter table (score_param_from_name())."""
    out = ctypes.c_int()
    _lib.score_param_from_name(OBJECT_KINDS[kind], name.encode(), ctypes.byref(out))
    return out.value


P_SCHEDULE_T_EPS = param_id("schedule", "t_eps")
P_OPT_LR, P_OPT_WARMUP, P_OPT_CLIP = (param_id("optimizer", n) for n in ("lr", "warmup",
                                                                          "grad_clip"))
P_EMA_DECAY = param_id("ema", "decay")
P_TRAINER_BATCH, P_TRAINER_SEED, P_TRAINER_USE_EMA = (
    param_id("trainer", n) for n in ("batch_size", "seed", "use_ema"))
P_SAMPLER_STEPS, P_SAMPLER_GRID, P_SAMPLER_DENOISE, P_SAMPLER_ETA, P_SAMPLER_SNR = (
    param_id("sampler", n) for n in ("num_steps", "grid", "final_denoise", "eta", "snr"))
P_LIK_RTOL, P_LIK_ATOL, P_LIK_DIV, P_LIK_PROBES = (
    param_id("likelihood", n) for n in ("rtol", "atol", "divergence", "n_probes"))
P_STEP_SNR, P_STEP_SIZE = param_id("step", "snr"), param_id("step", "step_size")


def version():
    """The library's version string, e.g. '0.1.0'."""
    return _lib.score_version_string().decode()


def _f32(a, dim=None, name="x"):
    """A C-contiguous float32 copy/view of a 2-D array, checked against dim."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows x dim), got shape {a.shape}")
    if dim is not None and a.shape[1] != dim:
        raise ValueError(f"{name} has {a.shape[1]} columns, the model's dimension is {dim}")
    return a


def _fp(a):
    return a.ctypes.data_as(_f32p)


def _dp(a):
    return a.ctypes.data_as(_f64p)


class _Handle:
    """Owns one library handle and frees it with the matching score_*_free()."""

    _free = None

    def __init__(self, ptr):
        self._ptr = ptr

    @property
    def ptr(self):
        return self._ptr

    def close(self):
        if self._ptr:
            self._free(self._ptr)
            self._ptr = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


class _Rng(_Handle):
    _free = staticmethod(_lib.score_rng_free)

    def __init__(self, seed, stream=0):
        p = _vp()
        _lib.score_rng_new(ctypes.byref(p), RNG_PHILOX, seed)
        super().__init__(p)
        if stream:
            _lib.score_rng_set_stream(self.ptr, stream)


class Schedule(_Handle):
    """A noise schedule: a preset name ('vp', 've-toy', 'edm', ...) or a kind ('ve', 'vp',
    'subvp', 'ncsn', 'ddpm-linear', ...)."""

    _free = staticmethod(_lib.score_schedule_free)

    def __init__(self, name="vp"):
        p = _vp()
        try:
            _lib.score_schedule_new_preset(ctypes.byref(p), name.encode())
        except LibscoreError:
            if name not in SCHEDULE_KINDS:
                raise
            _lib.score_schedule_new(ctypes.byref(p), SCHEDULE_KINDS[name])
        super().__init__(p)
        _lib.score_schedule_prepare(self.ptr)

    @property
    def name(self):
        return _lib.score_schedule_name(self.ptr).decode()

    @property
    def t_eps(self):
        v = ctypes.c_double()
        _lib.score_schedule_get_f64(self.ptr, P_SCHEDULE_T_EPS, ctypes.byref(v))
        return v.value

    def prior_sample(self, n, dim, seed=0):
        """n draws from the prior N(0, std^2 I) as an (n, dim) float32 array."""
        out = np.empty((n, dim), dtype=np.float32)
        rng = _Rng(seed)
        _lib.score_schedule_prior_sample(self.ptr, rng.ptr, n, dim, _fp(out))
        return out

    def alpha_sigma(self, t):
        """(alpha(t), sigma(t)) of x_t = alpha x_0 + sigma eps, for an array of times."""
        t = np.ascontiguousarray(t, dtype=np.float64).ravel()
        a, s = np.empty_like(t), np.empty_like(t)
        _lib.score_schedule_alpha_sigma(self.ptr, t.size, _dp(t), _dp(a), _dp(s))
        return a, s


class Model(_Handle):
    """A score model: an MLP (Model.mlp), a file (Model.load) or the exact Gaussian model."""

    _free = staticmethod(_lib.score_model_free)

    @classmethod
    def mlp(cls, dim, hidden=128, depth=3, activation="silu", seed=0):
        p = _vp()
        _lib.score_model_new_mlp(ctypes.byref(p), dim, hidden, depth, ACTIVATIONS[activation],
                                 seed)
        m = cls(p)
        _lib.score_model_prepare(m.ptr)
        return m

    @classmethod
    def gaussian(cls, schedule, mean, var):
        """The exact score of N(mean, diag(var)) noised by the schedule (condition on t)."""
        mean = np.ascontiguousarray(mean, dtype=np.float64)
        var = np.ascontiguousarray(var, dtype=np.float64)
        p = _vp()
        _lib.score_model_new_gaussian(ctypes.byref(p), schedule.ptr, mean.size, _dp(mean), None,
                                      _dp(var))
        return cls(p)

    @classmethod
    def load(cls, path):
        p = _vp()
        _lib.score_model_load(ctypes.byref(p), os.fsencode(path))
        return cls(p)

    def save(self, path):
        _lib.score_model_save(self.ptr, os.fsencode(path))

    def clone(self):
        p = _vp()
        _lib.score_model_clone(ctypes.byref(p), self.ptr)
        return Model(p)

    @property
    def dim(self):
        return _lib.score_model_dim(self.ptr)

    @property
    def param_count(self):
        return _lib.score_model_param_count(self.ptr)

    def forward(self, x, c):
        """The raw network output F(x, c) for rows x and per-row conditioning c."""
        x = _f32(x, self.dim)
        c = np.ascontiguousarray(np.broadcast_to(c, (x.shape[0],)), dtype=np.float64)
        out = np.empty_like(x)
        _lib.score_model_forward(self.ptr, x.shape[0], _fp(x), _dp(c), _fp(out))
        return out


    def pf_map(self, t_from, t_to, x):
        """Exact probability-flow ODE map of a Gaussian model from t_from to t_to."""
        x = _f32(x, self.dim)
        out = np.empty_like(x)
        _lib.score_model_analytic_pf_map(self.ptr, t_from, t_to, x.shape[0], _fp(x), _fp(out))
        return out


class System(_Handle):
    """A schedule and a model tied by a parameterization ('eps', 'score', 'x0', 'v', 'edm'):
    the score s(x, t) and everything the samplers need (a score_sde)."""

    _free = staticmethod(_lib.score_sde_free)

    def __init__(self, schedule, model, predict="eps"):
        p = _vp()
        _lib.score_sde_new(ctypes.byref(p), schedule.ptr, model.ptr, OUTPUTS[predict])
        super().__init__(p)
        self.schedule, self.model, self.predict = schedule, model, predict  # keep them alive

    @property
    def dim(self):
        return self.model.dim

    def set_model(self, model):
        _lib.score_sde_set_model(self.ptr, model.ptr)
        self.model = model

    def score(self, x, t):
        """s(x, t) = grad log p_t(x) for rows x at times t (scalar or one per row)."""
        x = _f32(x, self.dim)
        t = np.ascontiguousarray(np.broadcast_to(t, (x.shape[0],)), dtype=np.float64)
        out = np.empty_like(x)
        _lib.score_sde_score(self.ptr, x.shape[0], _dp(t), _fp(x), _fp(out))
        return out


def toy_dataset(name, n, seed=0):
    """n points of a built-in 2-D toy dataset ('ring8', 'moons', 'swissroll', 'checkerboard',
    'gaussian') as an (n, dim) float32 array."""
    dim = _lib.score_dataset_toy_dim(name.encode())
    if dim == 0:
        raise ValueError(f"unknown toy dataset {name!r}")
    out = np.empty((n, dim), dtype=np.float32)
    rng = _Rng(seed)
    _lib.score_dataset_toy(name.encode(), rng.ptr, n, _fp(out))
    return out


def train(system, data, steps=2000, loss="sde", optimizer="adam", lr=2e-3, batch=256,
          warmup=100, clip=1.0, ema=0.999, seed=0, callback=None):
    """Trains system.model on data (rows x dim) and replaces it by a copy holding the EMA
    weights (ema=0: the raw weights). Returns the per-step losses. callback(step, loss) may
    return True to stop early."""
    data = _f32(data, system.dim, "data")
    losses = np.full(steps, np.nan)
    p = _vp()
    _lib.score_loss_new(ctypes.byref(p), LOSSES[loss])
    loss_h = _Handle(p)
    loss_h._free = _lib.score_loss_free
    t = _vp()
    _lib.score_trainer_new(ctypes.byref(t), system.model.ptr, system.ptr, loss_h.ptr,
                           OPTIMIZERS[optimizer])
    tr = _Handle(t)
    tr._free = _lib.score_trainer_free
    opt = _lib.score_trainer_optimizer(tr.ptr)
    _lib.score_optimizer_set_f64(opt, P_OPT_LR, lr)
    _lib.score_optimizer_set_i64(opt, P_OPT_WARMUP, warmup)
    _lib.score_optimizer_set_f64(opt, P_OPT_CLIP, clip)
    _lib.score_trainer_set_i64(tr.ptr, P_TRAINER_BATCH, batch)
    _lib.score_trainer_set_i64(tr.ptr, P_TRAINER_SEED, seed)
    _lib.score_trainer_set_i64(tr.ptr, P_TRAINER_USE_EMA, 1 if ema > 0 else 0)
    if ema > 0:
        _lib.score_ema_set_f64(_lib.score_trainer_ema(tr.ptr), P_EMA_DECAY, ema)
    _lib.score_trainer_set_data(tr.ptr, data.shape[0], data.shape[1], _fp(data))

    def progress(step, total, loss_value, lr_value, user_data):
        if 1 <= step <= steps:
            losses[step - 1] = loss_value
        return 1 if callback is not None and callback(step, loss_value) else 0

    cb = _TRAIN_PROGRESS(progress)  # must stay referenced during the call
    try:
        _lib.score_trainer_run(tr.ptr, steps, cb, None)
    except LibscoreError as e:
        if e.name != "SCORE_E_CANCELLED":
            raise
    if ema > 0:
        m = _vp()
        _lib.score_trainer_ema_model(tr.ptr, ctypes.byref(m))  # owned by the trainer: copy it
        trained = Model(None)
        p2 = _vp()
        _lib.score_model_clone(ctypes.byref(p2), m)
        trained._ptr = p2
        system.set_model(trained)
    tr.close()
    loss_h.close()
    return losses


def _sampler(dim, sampler, steps, grid, denoise, eta, corrector, snr=None):
    """A sampler handle: a preset or a step type with its options."""
    p = _vp()
    if sampler in SAMPLER_PRESETS:
        _lib.score_sampler_new_preset(ctypes.byref(p), SAMPLER_PRESETS[sampler], dim)
    else:
        st = _lib.score_step_type_find(sampler.encode())
        if not st:
            raise ValueError(f"unknown sampler {sampler!r}; presets {sorted(SAMPLER_PRESETS)}, "
                             f"step types {STEP_TYPES}")
        corr = None
        if corrector is not None:
            corr = _lib.score_step_type_find(corrector.encode())
            if not corr:
                raise ValueError(f"unknown corrector {corrector!r}")
        _lib.score_sampler_new(ctypes.byref(p), st, corr, dim)
    s = _Handle(p)
    s._free = _lib.score_sampler_free
    if steps is not None:
        _lib.score_sampler_set_i64(s.ptr, P_SAMPLER_STEPS, steps)
    if grid is not None:
        _lib.score_sampler_set_i64(s.ptr, P_SAMPLER_GRID, GRIDS[grid])
    _lib.score_sampler_set_i64(s.ptr, P_SAMPLER_DENOISE, 1 if denoise else 0)
    if eta is not None:
        _lib.score_sampler_set_f64(s.ptr, P_SAMPLER_ETA, eta)
    if snr is not None:
        _lib.score_sampler_set_f64(s.ptr, P_SAMPLER_SNR, snr)
    return s


def sample(system, n, sampler="dpmpp-2m", steps=20, grid=None, seed=0, denoise=True,
           x_init=None, eta=None, corrector=None):
    """n samples as an (n, dim) float32 array. sampler: a preset ('pc', 'ode', 'edm', 'ncsn',
    'ncsnv2') or a step type (STEP_TYPES); grid: a key of GRIDS (default: the library's)."""
    s = _sampler(system.dim, sampler, steps, grid, denoise, eta, corrector)
    out = np.empty((n, system.dim), dtype=np.float32)
    xi = None if x_init is None else _fp(_f32(x_init, system.dim, "x_init"))
    rng = _Rng(seed)
    _lib.score_sampler_run(s.ptr, system.ptr, n, xi, _fp(out), rng.ptr,
                           _SAMPLER_PROGRESS(), None)
    sample.last_nfe = _lib.score_sampler_get_nfe(s.ptr)
    s.close()
    return out


def _likelihood(dim, exact, probes, rtol, atol):
    """A score_likelihood: exact divergence, or Hutchinson's estimate with `probes` probes."""
    p = _vp()
    _lib.score_likelihood_new(ctypes.byref(p), dim)
    lk = _Handle(p)
    lk._free = _lib.score_likelihood_free
    _lib.score_likelihood_set_i64(lk.ptr, P_LIK_DIV, 1 if exact else 2)
    if not exact:
        _lib.score_likelihood_set_i64(lk.ptr, P_LIK_PROBES, probes)
    _lib.score_likelihood_set_f64(lk.ptr, P_LIK_RTOL, rtol)
    _lib.score_likelihood_set_f64(lk.ptr, P_LIK_ATOL, atol)
    return lk


def loglik(system, x, exact=True, probes=1, rtol=1e-5, atol=1e-5, seed=0):
    """Log-likelihood (nats) and bits/dim of each row of x through the probability-flow ODE,
    exact divergence or Hutchinson's estimate with `probes` probes per row."""
    x = _f32(x, system.dim)
    lk = _likelihood(system.dim, exact, probes, rtol, atol)
    logp = np.empty(x.shape[0])
    bpd = np.empty(x.shape[0])
    rng = _Rng(seed)
    _lib.score_likelihood_logp(lk.ptr, system.ptr, x.shape[0], _fp(x), _dp(logp), _dp(bpd),
                               rng.ptr)
    lk.close()
    return logp, bpd


class GenModel(_Handle):
    """A saved generative model (genmodel.h): a network with everything that gives it a
    meaning (schedule, parameterization, data transform, dequantization, column names,
    condition spec). Samples and log-likelihoods are in the data's units."""

    _free = staticmethod(_lib.score_genmodel_free)

    @classmethod
    def load(cls, path):
        """Loads a generative model file (score_genmodel_load(); also files of the 0.1 tool)."""
        p = _vp()
        _lib.score_genmodel_load(ctypes.byref(p), os.fsencode(path))
        return cls(p)

    @classmethod
    def from_system(cls, system):
        """A generative model of a System (copies of its model, schedule and settings)."""
        p = _vp()
        _lib.score_genmodel_new(ctypes.byref(p), system.ptr)
        return cls(p)

    def save(self, path):
        _lib.score_genmodel_save(self.ptr, os.fsencode(path))

    @property
    def dim(self):
        return _lib.score_genmodel_dim(self.ptr)

    @property
    def fixed_t(self):
        """0, or the one time a one-noise-level model was trained at."""
        return _lib.score_genmodel_fixed_t(self.ptr)

    @property
    def num_classes(self):
        return _lib.score_genmodel_num_classes(self.ptr)

    @property
    def context_dim(self):
        return _lib.score_genmodel_context_dim(self.ptr)

    def _names(self, which, n):
        first = _lib.score_genmodel_name(self.ptr, GENMODEL_NAMES[which], 0)
        if first is None:
            return None
        return [_lib.score_genmodel_name(self.ptr, GENMODEL_NAMES[which], i).decode()
                for i in range(n)]

    @property
    def columns(self):
        """The data's column names, or None."""
        return self._names("columns", self.dim)

    @property
    def labels(self):
        """The class labels' names, or None."""
        return self._names("labels", self.num_classes)

    @property
    def context_names(self):
        """The names of the context vector's columns, or None."""
        return self._names("context", self.context_dim)

    def set_names(self, which, names):
        """Sets 'columns', 'labels' or 'context' names (None or [] removes them)."""
        names = list(names or [])
        arr = (_str * max(len(names), 1))(*[n.encode() for n in names])
        _lib.score_genmodel_set_names(self.ptr, GENMODEL_NAMES[which], len(names), arr)

    @property
    def transform(self):
        """(shift, scale) of x_model = (x_data - shift) / scale, or None for the identity."""
        shift, scale = np.empty(self.dim), np.empty(self.dim)
        if _lib.score_genmodel_get_transform(self.ptr, _dp(shift), _dp(scale)) == 0:
            return None
        return shift, scale

    def set_transform(self, shift, scale):
        if shift is None:
            _lib.score_genmodel_set_transform(self.ptr, None, None)
            return
        shift = np.ascontiguousarray(shift, dtype=np.float64)
        scale = np.ascontiguousarray(scale, dtype=np.float64)
        if shift.shape != (self.dim,) or scale.shape != (self.dim,):
            raise ValueError(f"shift and scale must have {self.dim} values")
        _lib.score_genmodel_set_transform(self.ptr, _dp(shift), _dp(scale))

    @property
    def dequant(self):
        """('none' or 'uniform', bin width)."""
        k, b = ctypes.c_int(), ctypes.c_double()
        _lib.score_genmodel_get_dequant(self.ptr, ctypes.byref(k), ctypes.byref(b))
        return {v: n for n, v in GENMODEL_DEQUANT.items()}[k.value], b.value

    def set_dequant(self, kind, bin_width=1.0):
        _lib.score_genmodel_set_dequant(self.ptr, GENMODEL_DEQUANT[kind], bin_width)

    def encode(self, x):
        """Data units -> model units."""
        x = _f32(x, self.dim)
        out = np.empty_like(x)
        _lib.score_genmodel_encode(self.ptr, x.shape[0], _fp(x), _fp(out))
        return out

    def decode(self, x):
        """Model units -> data units."""
        x = _f32(x, self.dim)
        out = np.empty_like(x)
        _lib.score_genmodel_decode(self.ptr, x.shape[0], _fp(x), _fp(out))
        return out

    def check_compatible(self, other):
        """Raises LibscoreError naming the first difference when the two models cannot be
        combined (guidance)."""
        _lib.score_genmodel_check_compatible(self.ptr, other.ptr)

    def cfg(self, uncond, w):
        """Classifier-free guidance (1 + w) F_self - w F_uncond, after the library's check."""
        p = _vp()
        _lib.score_genmodel_new_cfg(ctypes.byref(p), self.ptr, uncond.ptr, w)
        return GenModel(p)

    def _sde(self):
        p = _vp()
        _lib.score_genmodel_sde(self.ptr, ctypes.byref(p))
        h = _Handle(p)
        h._free = _lib.score_sde_free
        return h

    def sample(self, n, sampler="dpmpp-2m", steps=20, grid=None, seed=0, denoise=True, eta=None,
               corrector=None, snr=0.16):
        """n samples in data units (score_genmodel_sample()); the sampler as in sample()."""
        s = _sampler(self.dim, sampler, steps, grid, denoise, eta, corrector, snr)
        sde = self._sde()
        out = np.empty((n, self.dim), dtype=np.float32)
        rng = _Rng(seed)
        _lib.score_genmodel_sample(self.ptr, s.ptr, sde.ptr, 0, n, _fp(out), rng.ptr,
                                   _SAMPLER_PROGRESS(), None)
        sde.close()
        s.close()
        return out

    def sample_langevin(self, n, steps=1000, snr=0.16, step_size=None, seed=0):
        """n samples of a one-noise-level model: Langevin dynamics at its fixed time."""
        p = _vp()
        _lib.score_step_new(ctypes.byref(p), _lib.score_step_type_find(b"langevin"), self.dim)
        st = _Handle(p)
        st._free = _lib.score_step_free
        if step_size is not None:
            _lib.score_step_set_f64(st.ptr, P_STEP_SIZE, step_size)
        _lib.score_step_set_f64(st.ptr, P_STEP_SNR, snr)
        sde = self._sde()
        out = np.empty((n, self.dim), dtype=np.float32)
        rng = _Rng(seed)
        _lib.score_genmodel_sample_langevin(self.ptr, st.ptr, sde.ptr, steps, 0, n, _fp(out),
                                            rng.ptr)
        sde.close()
        st.close()
        return out

    def loglik(self, x, exact=True, probes=1, rtol=1e-5, atol=1e-5, seed=0):
        """Log-likelihood (nats) and bits/dim of each row of x in data units
        (score_genmodel_logp(): transform and dequantization included)."""
        x = _f32(x, self.dim)
        lk = _likelihood(self.dim, exact, probes, rtol, atol)
        sde = self._sde()
        logp = np.empty(x.shape[0])
        bpd = np.empty(x.shape[0])
        rng = _Rng(seed)
        _lib.score_genmodel_logp(self.ptr, lk.ptr, sde.ptr, 0, x.shape[0], _fp(x), _dp(logp),
                                 _dp(bpd), rng.ptr)
        sde.close()
        lk.close()
        return logp, bpd
