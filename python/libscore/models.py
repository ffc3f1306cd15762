"""Noise schedules, score models and the system (sde) that ties them into a score.

- :class:`Schedule`: VE / VP / sub-VP SDEs and the discrete ladders, by preset or kind name;
- :class:`Model`: an MLP (optionally conditional: class labels with a null label, and / or a
  context vector per row), the exact analytic Gaussian and Gaussian-mixture models, or a file;
- :class:`System`: a schedule and a model tied by the model's output parameterization
  (``'eps'``, ``'score'``, ``'x0'``, ``'v'``, ``'edm'``, ``'score-over-sigma'``), with the
  class label, context vector and classifier-free guidance weight of its evaluations.
"""

import ctypes
import os

import numpy as np

from . import _arrays, _native
from ._rng import Rng
from .errors import refuse
from .params import Configurable, Handle

__all__ = ["Schedule", "Model", "System", "LABEL_NULL", "SCHEDULE_KINDS", "OUTPUTS",
           "ACTIVATIONS", "schedule_presets"]

_lib = _native.lib

#: the null label ("no class"; SCORE_LABEL_NULL)
LABEL_NULL = -1
#: schedule kinds (enum score_schedule_kind, pinned)
SCHEDULE_KINDS = {"ve": 1, "vp": 2, "subvp": 3, "ncsn": 4, "ddpm-linear": 5,
                  "ddpm-scaled-linear": 6, "ddpm-cosine": 7}
#: output parameterizations (enum score_output_kind, pinned)
OUTPUTS = {"score": 1, "eps": 2, "x0": 3, "v": 4, "edm": 5, "score-over-sigma": 6}
#: conditioning kinds of the sde's c(t) (enum score_cond_kind, pinned)
CONDS = {"default": 0, "t": 1, "t-scaled": 2, "sigma": 3, "log-sigma-4": 4}
#: MLP activations (enum score_activation, pinned)
ACTIVATIONS = {"silu": 1, "softplus": 2, "tanh": 3, "elu": 4, "gelu": 5}
#: model kinds (enum score_model_kind, pinned)
MODEL_KINDS = {1: "mlp", 2: "gaussian", 3: "gmm", 4: "callback", 5: "combination"}


def _name_of(table, value):
    return {v: k for k, v in table.items()}.get(value, str(value))


def _lookup(table, name, what):
    try:
        return table[name]
    except KeyError:
        raise refuse("SCORE_E_UNSUPPORTED",
                     f"unknown {what} {name!r} (valid: {', '.join(table)})") from None


def schedule_presets():
    """The names of the library's schedule presets ('vp', 've', 'edm', ...)."""
    return [_lib.score_schedule_preset_name(i).decode()
            for i in range(_lib.score_schedule_preset_count())]


class Schedule(Configurable):
    """A noise schedule: a preset (``schedule_presets()``: 'vp', 've', 'edm', ...) or a kind
    ('ve', 'vp', 'subvp', 'ncsn', 'ddpm-linear', ...), then parameters by name
    (``Schedule('vp', beta_max=10)``). Prepared on construction."""

    _kind = "schedule"
    _free = _lib.score_schedule_free
    _set_f64, _set_i64 = _lib.score_schedule_set_f64, _lib.score_schedule_set_i64
    _get_f64, _get_i64 = _lib.score_schedule_get_f64, _lib.score_schedule_get_i64

    def __init__(self, name="vp", **params):
        p = ctypes.c_void_p()
        presets = schedule_presets()
        if name in presets:
            _lib.score_schedule_new_preset(ctypes.byref(p), name.encode())
        elif name in SCHEDULE_KINDS:
            _lib.score_schedule_new(ctypes.byref(p), SCHEDULE_KINDS[name])
        else:
            raise refuse("SCORE_E_UNSUPPORTED", f"unknown schedule {name!r} (presets: "
                                                f"{', '.join(presets)}; kinds: "
                                                f"{', '.join(SCHEDULE_KINDS)})")
        super().__init__(p.value)
        self.set(**params)
        _lib.score_schedule_prepare(self.ptr)

    @classmethod
    def _borrow(cls, ptr, owner):
        """A Schedule view of a schedule owned by another object (not freed here)."""
        s = cls.__new__(cls)
        Handle.__init__(s, ptr)
        s._owner = owner
        s._free = lambda p: None
        return s

    def close(self):
        if self.__dict__.get("_owner") is not None:
            self._ptr = None
            return
        super().close()

    @property
    def name(self):
        return _lib.score_schedule_name(self.ptr).decode()

    @property
    def t_eps(self):
        """The smallest time of sampling and likelihoods."""
        return self.get("t_eps")

    @property
    def T(self):
        """The end time."""
        return self.get("T")

    def alpha_sigma(self, t):
        """(alpha(t), sigma(t)) of x_t = alpha x_0 + sigma eps, for a scalar or array of
        times (float64 arrays)."""
        t = _arrays.vector(t, name="t")
        a, s = np.empty_like(t), np.empty_like(t)
        _lib.score_schedule_alpha_sigma(self.ptr, t.size, _arrays.f64p(t), _arrays.f64p(a),
                                        _arrays.f64p(s))
        return a, s

    def prior_sample(self, n, dim, seed=0):
        """n draws from the prior at T as an (n, dim) float32 array."""
        out = np.empty((n, dim), dtype=np.float32)
        rng = Rng(seed)
        _lib.score_schedule_prior_sample(self.ptr, rng.ptr, n, dim, _arrays.f32p(out))
        return out


class Model(Configurable):
    """A score model F(x, c): :meth:`mlp`, :meth:`gaussian`, :meth:`gmm` or :meth:`load`.

    Parameters of the model kind are read and set by name (``model.get('hidden')``,
    ``model.set(threads=2)``); the weights as one flat float32 array (:attr:`weights`)."""

    _kind = "model"
    _free = _lib.score_model_free
    _set_f64, _set_i64 = _lib.score_model_set_f64, _lib.score_model_set_i64
    _get_f64, _get_i64 = _lib.score_model_get_f64, _lib.score_model_get_i64

    def __init__(self, ptr, owner=None):
        super().__init__(ptr)
        self._owner = owner   # set for a model borrowed from a trainer or generative model

    def close(self):
        if self._owner is not None:
            self._ptr = None
            return
        super().close()

    @classmethod
    def mlp(cls, dim, hidden=128, depth=3, activation="silu", seed=0, num_classes=0,
            context_dim=0, **params):
        """A residual MLP with a time embedding (score_model_new_mlp()).

        num_classes: K > 0 adds a class-label input (labels 0..K-1 and the null label, a
        learned embedding); context_dim: m > 0 adds a context vector of m values per row.
        Further parameters by name (``embedding``, ``embed_dim``, ``fourier_scale``,
        ``residual``, ``threads``)."""
        p = ctypes.c_void_p()
        _lib.score_model_new_mlp(ctypes.byref(p), dim, hidden, depth,
                                 _lookup(ACTIVATIONS, activation, "activation"), seed)
        m = cls(p.value)
        if num_classes:
            params["num_classes"] = num_classes
        if context_dim:
            params["context_dim"] = context_dim
        m.set(**params)
        _lib.score_model_prepare(m.ptr)
        return m

    @classmethod
    def energy_mlp(cls, dim, hidden=128, depth=3, activation="silu", seed=0, num_classes=0,
                   context_dim=0, **params):
        """An energy model (score_model_new_energy()): the MLP of :meth:`mlp` with one output
        E(x, c), whose score is -grad_x E; its energies by :meth:`energy`."""
        p = ctypes.c_void_p()
        _lib.score_model_new_energy(ctypes.byref(p), dim)
        m = cls(p.value)
        params.update(hidden=hidden, depth=depth, seed=seed,
                      activation=_lookup(ACTIVATIONS, activation, "activation"))
        if num_classes:
            params["num_classes"] = num_classes
        if context_dim:
            params["context_dim"] = context_dim
        m.set(**params)
        _lib.score_model_prepare(m.ptr)
        return m

    @classmethod
    def gaussian(cls, schedule, mean, var=None, cov=None):
        """The exact score of N(mean, diag(var)) (or N(mean, cov)) noised by the schedule; the
        conditioning value is the time (use it in a System with cond='t', the default of
        every output kind but 'edm')."""
        mean = _arrays.vector(mean, name="mean")
        if (var is None) == (cov is None):
            raise refuse("SCORE_E_INVAL", "give exactly one of var and cov")
        var = None if var is None else _arrays.vector(var, mean.size, "var")
        cov = None if cov is None else _arrays.vector(cov, mean.size ** 2, "cov")
        p = ctypes.c_void_p()
        _lib.score_model_new_gaussian(ctypes.byref(p), schedule.ptr, mean.size,
                                      _arrays.f64p(mean), _arrays.f64p(cov), _arrays.f64p(var))
        return cls(p.value)

    @classmethod
    def gmm(cls, schedule, weights, means, variances):
        """The exact score of the mixture sum_j w_j N(means[j], diag(variances[j])) noised by
        the schedule. Its components are its classes: evaluated with label j (System.label)
        it is the score of component j alone."""
        means = _arrays.rows(means, name="means", dtype=np.float64)
        k, dim = means.shape
        weights = _arrays.vector(weights, k, "weights")
        variances = _arrays.rows(variances, dim, "variances", np.float64)
        if variances.shape[0] != k:
            raise refuse("SCORE_E_SHAPE", f"variances must have {k} rows")
        p = ctypes.c_void_p()
        _lib.score_model_new_gmm(ctypes.byref(p), schedule.ptr, dim, k, _arrays.f64p(weights),
                                 _arrays.f64p(means), _arrays.f64p(variances))
        return cls(p.value)

    @classmethod
    def load(cls, path):
        """A network file (score_model_save(), or a PyTorch export)."""
        p = ctypes.c_void_p()
        _lib.score_model_load(ctypes.byref(p), os.fsencode(path))
        return cls(p.value)

    def save(self, path):
        """Writes the network alone (crash-safe). A file that also says what the network
        means (schedule, parameterization, data units) is a GenModel's."""
        _lib.score_model_save(self.ptr, os.fsencode(path))

    def clone(self):
        """An independent copy (weights and settings)."""
        p = ctypes.c_void_p()
        _lib.score_model_clone(ctypes.byref(p), self.ptr)
        return Model(p.value)

    @property
    def kind(self):
        """'mlp', 'gaussian', 'gmm', 'callback' or 'combination'."""
        return MODEL_KINDS.get(_lib.score_model_kind(self.ptr), "unknown")

    @property
    def dim(self):
        return _lib.score_model_dim(self.ptr)

    @property
    def num_classes(self):
        """Number of classes K of the label input (0: none)."""
        return self.get("num_classes")

    @property
    def context_dim(self):
        """Width of the context vector input (0: none)."""
        return self.get("context_dim")

    @property
    def param_count(self):
        return _lib.score_model_param_count(self.ptr)

    @property
    def weights(self):
        """A copy of the trainable parameters as one flat float32 array (the layout of
        score_model_params_get())."""
        out = np.empty(self.param_count, dtype=np.float32)
        _lib.score_model_params_get(self.ptr, _arrays.f32p(out), out.size)
        return out

    @weights.setter
    def weights(self, values):
        values = _arrays.vector(values, self.param_count, "weights", np.float32)
        _lib.score_model_params_set(self.ptr, _arrays.f32p(values), values.size)

    def _cond_inputs(self, n, labels, context):
        """labels (int32, n) and context (n x context_dim float32) arrays, or None each."""
        lab = None if labels is None else _arrays.per_row(labels, n, "labels", np.int32)
        ctx = None if context is None else _arrays.rows(context, self.context_dim, "context")
        if ctx is not None and ctx.shape[0] != n:
            raise refuse("SCORE_E_SHAPE", f"context must have {n} rows")
        return lab, ctx

    def forward(self, x, c, labels=None, context=None, out=None):
        """The raw output F(x, c) for rows x and conditioning values c (a scalar or one per
        row); labels (one int per row, the null label = num_classes) and context (rows of
        context_dim values) for a conditional model."""
        x = _arrays.rows(x, self.dim)
        n = x.shape[0]
        c = _arrays.per_row(c, n, "c")
        out = _arrays.output(out, x.shape)
        if labels is None and context is None:
            _lib.score_model_forward(self.ptr, n, _arrays.f32p(x), _arrays.f64p(c),
                                     _arrays.f32p(out))
            return out
        lab, ctx = self._cond_inputs(n, labels, context)
        _lib.score_model_forward_cond(self.ptr, n, _arrays.f32p(x), _arrays.f64p(c),
                                      _arrays.i32p(lab), _arrays.f32p(ctx), _arrays.f32p(out))
        return out

    def energy(self, x, c, labels=None, context=None):
        """The energies E(x, c) of rows x (float64, one per row): an energy model's output, the
        exact -log p_t(x) of a Gaussian / mixture (c = t; a mixture's label y: its component's
        -log p_t(x | y)), a weighted sum's sum. labels / context as for :meth:`forward`."""
        x = _arrays.rows(x, self.dim)
        n = x.shape[0]
        c = _arrays.per_row(c, n, "c")
        out = np.empty(n)
        if labels is None and context is None:
            _lib.score_model_energy(self.ptr, n, _arrays.f32p(x), _arrays.f64p(c),
                                    _arrays.f64p(out))
            return out
        lab, ctx = self._cond_inputs(n, labels, context)
        _lib.score_model_energy_cond(self.ptr, n, _arrays.f32p(x), _arrays.f64p(c),
                                     _arrays.i32p(lab), _arrays.f32p(ctx), _arrays.f64p(out))
        return out

    @property
    def metadata(self):
        """The user metadata entries saved with the model, as a {key: value} dict."""
        out = {}
        key, val = ctypes.c_char_p(), ctypes.c_char_p()
        for i in range(_lib.score_model_metadata_count(self.ptr)):
            _lib.score_model_metadata_key(self.ptr, i, ctypes.byref(key))
            _lib.score_model_get_metadata(self.ptr, key.value, ctypes.byref(val))
            out[key.value.decode()] = val.value.decode()
        return out

    def set_metadata(self, key, value):
        """Sets (value None: removes) one user metadata entry, saved with the model."""
        _lib.score_model_set_metadata(self.ptr, key.encode(),
                                      None if value is None else str(value).encode())

    # analytic models
    def analytic_logp(self, x, t):
        """Exact log p_t(x) of a Gaussian / mixture model, per row (float64)."""
        x = _arrays.rows(x, self.dim)
        t = _arrays.per_row(t, x.shape[0])
        out = np.empty(x.shape[0])
        _lib.score_model_analytic_logp(self.ptr, x.shape[0], _arrays.f64p(t), _arrays.f32p(x),
                                       _arrays.f64p(out))
        return out

    def analytic_sample(self, n, t=0.0, seed=0):
        """n exact samples of a Gaussian / mixture model's marginal p_t."""
        out = np.empty((n, self.dim), dtype=np.float32)
        rng = Rng(seed)
        _lib.score_model_analytic_sample(self.ptr, rng.ptr, t, n, _arrays.f32p(out))
        return out

    def pf_map(self, t_from, t_to, x):
        """Exact probability-flow ODE map of a Gaussian model from t_from to t_to."""
        x = _arrays.rows(x, self.dim)
        out = np.empty_like(x)
        _lib.score_model_analytic_pf_map(self.ptr, t_from, t_to, x.shape[0], _arrays.f32p(x),
                                         _arrays.f32p(out))
        return out


class System(Configurable):
    """A schedule and a model tied by the model's output kind (a score_sde): the score
    s(x, t) and everything the samplers, losses and likelihoods need.

    ``predict``: what the model outputs ('eps', 'score', 'x0', 'v', 'edm',
    'score-over-sigma'). Parameters by name: ``cond``, ``cond_scale``, ``sigma_data``,
    ``guidance``. The model is borrowed: the System keeps a reference to it."""

    _kind = "sde"
    _free = _lib.score_sde_free
    _set_f64, _set_i64 = _lib.score_sde_set_f64, _lib.score_sde_set_i64
    _get_f64, _get_i64 = _lib.score_sde_get_f64, _lib.score_sde_get_i64

    def __init__(self, schedule, model, predict="eps", **params):
        p = ctypes.c_void_p()
        _lib.score_sde_new(ctypes.byref(p), schedule.ptr, model.ptr,
                           _lookup(OUTPUTS, predict, "output kind"))
        super().__init__(p.value)
        self.schedule, self.model = schedule, model
        self._label = LABEL_NULL
        self._context = None
        if "cond" in params and isinstance(params["cond"], str):
            params["cond"] = _lookup(CONDS, params["cond"], "conditioning kind")
        self.set(**params)

    @classmethod
    def _adopt(cls, ptr, schedule, model, owner):
        s = cls.__new__(cls)
        Configurable.__init__(s, ptr)
        s.schedule, s.model, s._owner = schedule, model, owner
        s._label, s._context = LABEL_NULL, None
        return s

    @property
    def dim(self):
        return self.model.dim

    @property
    def predict(self):
        return _name_of(OUTPUTS, self.get("output"))

    def set_model(self, model):
        """Replaces the model (same dimension), e.g. by its EMA copy."""
        _lib.score_sde_set_model(self.ptr, model.ptr)
        self.model = model

    @property
    def label(self):
        """The class label of every evaluation (LABEL_NULL = -1: none, the default)."""
        return self._label

    @label.setter
    def label(self, value):
        value = LABEL_NULL if value is None else int(value)
        _lib.score_sde_set_label(self.ptr, value)
        self._label = value

    @property
    def context(self):
        """The context vector of every evaluation (None: none)."""
        return self._context

    @context.setter
    def context(self, values):
        if values is None:
            _lib.score_sde_set_context(self.ptr, 0, None)
            self._context = None
            return
        v = _arrays.vector(values, name="context", dtype=np.float32)
        _lib.score_sde_set_context(self.ptr, v.size, _arrays.f32p(v))
        self._context = v.copy()

    @property
    def guidance(self):
        """Classifier-free guidance weight w on the one network: s = (1 + w) s(x, y) -
        w s(x, null) for the label y (needs a label)."""
        return self.get("guidance")

    @guidance.setter
    def guidance(self, w):
        self.set(guidance=w)

    def score(self, x, t, out=None):
        """s(x, t) = grad log p_t(x) for rows x at times t (scalar or one per row)."""
        x = _arrays.rows(x, self.dim)
        t = _arrays.per_row(t, x.shape[0])
        out = _arrays.output(out, x.shape)
        _lib.score_sde_score(self.ptr, x.shape[0], _arrays.f64p(t), _arrays.f32p(x),
                             _arrays.f32p(out))
        return out
