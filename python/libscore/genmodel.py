"""The saved generative model (genmodel.h): a network with everything that gives it a meaning
(schedule, output parameterization, data transform, dequantization, column names, condition
spec), one file. Samples and log-likelihoods are in the data's units.

Sampling and likelihoods split the rows into blocks of ``batch`` rows with their global row
index, like the ``score`` tool (default blocks: 4096 rows for sampling, 1024 for likelihoods),
so that the same model, sampler, steps, grid and seed give the tool's numbers bit for bit.
"""

import ctypes
import os

import numpy as np

from . import _arrays, _native
from ._rng import Rng
from .errors import refuse
from .likelihood import Likelihood
from .models import CONDS, LABEL_NULL, OUTPUTS, Model, Schedule, System, _name_of
from .params import Handle, param_id
from .sampling import Progress, Sampler

__all__ = ["GenModel", "DEQUANT", "NAMES"]

_lib = _native.lib

#: which list of names (enum score_genmodel_names, pinned)
NAMES = {"columns": 1, "labels": 2, "context": 3}
#: dequantization of likelihoods (enum score_genmodel_dequant, pinned)
DEQUANT = {"none": 0, "uniform": 1}


class GenModel(Handle):
    """A generative model: :meth:`load` a file (written by :meth:`save`, by the ``score``
    tool or by C), or make one of a trained :class:`~libscore.System` with
    :meth:`from_system`."""

    _free = _lib.score_genmodel_free

    @classmethod
    def load(cls, path):
        """Loads a generative model file (the library checks every entry; a plain network
        file is refused with a message saying how to convert it)."""
        p = ctypes.c_void_p()
        _lib.score_genmodel_load(ctypes.byref(p), os.fsencode(path))
        return cls(p.value)

    @classmethod
    def from_system(cls, system, transform=None, columns=None, labels=None):
        """A generative model of a System: copies of its model, schedule and settings;
        optionally the data transform (shift, scale), column names and label names."""
        p = ctypes.c_void_p()
        _lib.score_genmodel_new(ctypes.byref(p), system.ptr)
        gm = cls(p.value)
        if transform is not None:
            gm.set_transform(*transform)
        if columns is not None:
            gm.set_names("columns", columns)
        if labels is not None:
            gm.set_names("labels", labels)
        return gm

    def save(self, path):
        """Writes the model and its meaning to one safetensors file (crash-safe)."""
        _lib.score_genmodel_save(self.ptr, os.fsencode(path))

    # ---- what the model is -----------------------------------------------------------------
    @property
    def dim(self):
        return _lib.score_genmodel_dim(self.ptr)

    @property
    def model(self):
        """The network (borrowed: valid while this GenModel lives; do not change weights)."""
        return Model(_lib.score_genmodel_model(self.ptr), owner=self)

    @property
    def schedule(self):
        """The schedule (borrowed)."""
        return Schedule._borrow(_lib.score_genmodel_schedule(self.ptr), self)

    def _i64(self, name):
        out = ctypes.c_int64()
        _lib.score_genmodel_get_i64(self.ptr, param_id("sde", name), ctypes.byref(out))
        return out.value

    def _f64(self, name):
        out = ctypes.c_double()
        _lib.score_genmodel_get_f64(self.ptr, param_id("sde", name), ctypes.byref(out))
        return out.value

    @property
    def predict(self):
        """What the network outputs: 'eps', 'score', 'x0', 'v', 'edm', 'score-over-sigma'."""
        return _name_of(OUTPUTS, self._i64("output"))

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
        if _lib.score_genmodel_name(self.ptr, NAMES[which], 0) is None:
            return None
        return [_lib.score_genmodel_name(self.ptr, NAMES[which], i).decode() for i in range(n)]

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
        """Sets the 'columns', 'labels' or 'context' names (None or [] removes them)."""
        if which not in NAMES:
            raise refuse("SCORE_E_RANGE", f"unknown list {which!r} (valid: {', '.join(NAMES)})")
        names = [str(n).encode() for n in (names or [])]
        arr = (ctypes.c_char_p * max(len(names), 1))(*names)
        _lib.score_genmodel_set_names(self.ptr, NAMES[which], len(names), arr)

    @property
    def transform(self):
        """(shift, scale) of x_model = (x_data - shift) / scale, or None for the identity."""
        shift, scale = np.empty(self.dim), np.empty(self.dim)
        if _lib.score_genmodel_get_transform(self.ptr, _arrays.f64p(shift),
                                             _arrays.f64p(scale)) == 0:
            return None
        return shift, scale

    def set_transform(self, shift, scale):
        """Sets the data transform (None, None: the identity)."""
        if shift is None and scale is None:
            _lib.score_genmodel_set_transform(self.ptr, None, None)
            return
        shift = _arrays.vector(shift, self.dim, "shift")
        scale = _arrays.vector(scale, self.dim, "scale")
        _lib.score_genmodel_set_transform(self.ptr, _arrays.f64p(shift), _arrays.f64p(scale))

    @property
    def dequant(self):
        """('none' or 'uniform', bin width) of likelihoods."""
        k, b = ctypes.c_int(), ctypes.c_double()
        _lib.score_genmodel_get_dequant(self.ptr, ctypes.byref(k), ctypes.byref(b))
        return _name_of(DEQUANT, k.value), b.value

    def set_dequant(self, kind, bin_width=1.0):
        if kind not in DEQUANT:
            raise refuse("SCORE_E_RANGE", f"unknown dequantization {kind!r} (valid: none, "
                                          "uniform)")
        _lib.score_genmodel_set_dequant(self.ptr, DEQUANT[kind], bin_width)

    def set_fixed_t(self, t):
        """Marks a model trained at one time only (0: the whole time range)."""
        _lib.score_genmodel_set_fixed_t(self.ptr, t)

    def info(self):
        """Everything the model says about itself, as a dict (schedule, parameterization,
        transform, dequantization, names, condition spec, the network's user metadata)."""
        tr = self.transform
        return {
            "dim": self.dim, "schedule": self.schedule.name, "predict": self.predict,
            "cond": _name_of(CONDS, self._i64("cond")), "cond_scale": self._f64("cond_scale"),
            "sigma_data": self._f64("sigma_data"), "fixed_t": self.fixed_t,
            "transform": None if tr is None else (tr[0].tolist(), tr[1].tolist()),
            "dequant": self.dequant, "columns": self.columns,
            "num_classes": self.num_classes, "labels": self.labels,
            "context_dim": self.context_dim, "context_names": self.context_names,
            "network": self.model.kind, "metadata": self.model.metadata,
        }

    # ---- units -----------------------------------------------------------------------------
    def encode(self, x, out=None):
        """Data units -> model units."""
        x = _arrays.rows(x, self.dim)
        out = _arrays.output(out, x.shape)
        _lib.score_genmodel_encode(self.ptr, x.shape[0], _arrays.f32p(x), _arrays.f32p(out))
        return out

    def decode(self, x, out=None):
        """Model units -> data units."""
        x = _arrays.rows(x, self.dim)
        out = _arrays.output(out, x.shape)
        _lib.score_genmodel_decode(self.ptr, x.shape[0], _arrays.f32p(x), _arrays.f32p(out))
        return out

    # ---- conditions and guidance -----------------------------------------------------------
    def label_index(self, label):
        """The class index of a label: a stored label name (str), or an index 0..K-1 (int);
        None is the null label (-1)."""
        if label is None:
            return LABEL_NULL
        k = self.num_classes
        if k == 0:
            raise refuse("SCORE_E_UNSUPPORTED", "this model has no class labels")
        if isinstance(label, str):
            names = self.labels or []
            if label in names:
                return names.index(label)
            raise refuse("SCORE_E_RANGE", f"unknown class {label!r} (valid: "
                                          f"{', '.join(names) or f'indices 0..{k - 1}'})")
        if not 0 <= int(label) < k:
            raise refuse("SCORE_E_RANGE", f"class index {label} outside 0..{k - 1}")
        return int(label)

    @property
    def is_classifier(self):
        """True for the file of a noise-conditional classifier (``score train-classifier``):
        it has no system of its own and guides another model (``classifier=`` of
        :meth:`sample`)."""
        return _lib.score_genmodel_is_classifier(self.ptr) == 1

    def system(self, label=None, guidance=0.0, context=None, classifier=None,
               classifier_scale=1.0):
        """A :class:`~libscore.System` evaluating this model's network with its meaning, for
        one class label (index or name), guidance weight and context vector. With
        ``classifier`` (a classifier's GenModel, checked by the library against this model's
        schedule, data transform and columns) the label is one of the classifier's classes and
        the system is classifier-guided with weight ``classifier_scale``."""
        p = ctypes.c_void_p()
        _lib.score_genmodel_sde(self.ptr, ctypes.byref(p))
        s = System._adopt(p.value, self.schedule, self.model, self)
        if classifier is not None:
            if label is None:
                s.close()
                raise refuse("SCORE_E_INVAL", "classifier guidance needs a label (one of the "
                                              "classifier's classes)")
            try:
                _lib.score_genmodel_set_classifier(self.ptr, s.ptr, classifier.ptr,
                                                   float(classifier_scale))
                s.label = classifier.label_index(label)
            except BaseException:
                s.close()
                raise
            s._classifier = classifier   # the sde borrows its network
            return s
        s.label = self.label_index(label)
        if guidance:
            s.guidance = guidance
        if context is not None:
            s.context = context
        return s

    def check_compatible(self, other):
        """Raises Error naming the first difference when the two models cannot be combined."""
        _lib.score_genmodel_check_compatible(self.ptr, other.ptr)

    def cfg(self, uncond, w):
        """Classifier-free guidance of two models, (1 + w) F_self - w F_uncond, after the
        library's compatibility check (for one class-conditional network use the ``label``
        and ``guidance`` arguments of :meth:`sample` instead)."""
        p = ctypes.c_void_p()
        _lib.score_genmodel_new_cfg(ctypes.byref(p), self.ptr, uncond.ptr, w)
        return GenModel(p.value)

    # ---- sampling and likelihood -----------------------------------------------------------
    def sample(self, n, sampler="dpmpp-2m", steps=None, grid=None, seed=0, label=None,
               guidance=0.0, context=None, batch=4096, out=None, callback=None,
               classifier=None, classifier_scale=1.0, **params):
        """n samples in data units (score_genmodel_sample()) as an (n, dim) float32 array
        (or into ``out``). The sampler by name with its options as in
        :class:`~libscore.Sampler`; ``label`` a class index or name (None: the null label,
        the unconditional model), ``guidance`` the classifier-free guidance weight on the one
        network, ``context`` the context vector; ``classifier`` and ``classifier_scale``
        classifier guidance as in :meth:`system`. callback(step, total, t) as in
        :meth:`Sampler.run`. A one-noise-level model (fixed_t > 0) is sampled only by
        ``sampler="langevin"`` (:meth:`sample_langevin`, ``steps`` default 1000), as by the
        ``score`` tool."""
        if self.fixed_t > 0:
            if sampler == "langevin":
                return self.sample_langevin(n, steps=steps or 1000, seed=seed, **params)
            raise refuse("SCORE_E_UNSUPPORTED", f"this model was trained at one noise level "
                                                f"(t = {self.fixed_t:g}): sample it with "
                                                f"sampler='langevin'")
        out = _arrays.output(out, (n, self.dim))
        with Sampler(sampler, self.dim, steps=steps, grid=grid, **params) as smp, \
                self.system(label, guidance, context, classifier, classifier_scale) as sde:
            rng = Rng(seed)
            with Progress(callback) as cb:
                for row0 in range(0, n, batch):
                    m = min(batch, n - row0)
                    _lib.score_genmodel_sample(self.ptr, smp.ptr, sde.ptr, row0, m,
                                               _arrays.f32p(out[row0:row0 + m]), rng.ptr, cb.fn,
                                               None)
            self.last_nfe = smp.nfe
        return out

    def sample_langevin(self, n, steps=1000, snr=0.16, step_size=None, seed=0):
        """n samples of a one-noise-level model: Langevin dynamics at its fixed time."""
        p = ctypes.c_void_p()
        _lib.score_step_new(ctypes.byref(p), _lib.score_step_type_find(b"langevin"), self.dim)
        st = _Step(p.value)
        with st, self.system() as sde:
            if step_size is not None:
                _lib.score_step_set_f64(st.ptr, param_id("step", "step_size"), step_size)
            _lib.score_step_set_f64(st.ptr, param_id("step", "snr"), snr)
            out = np.empty((n, self.dim), dtype=np.float32)
            rng = Rng(seed)   # a named reference: it must live through the call
            _lib.score_genmodel_sample_langevin(self.ptr, st.ptr, sde.ptr, steps, 0, n,
                                                _arrays.f32p(out), rng.ptr)
        return out

    def loglik(self, x, exact=None, probes=1, rtol=1e-5, atol=1e-5, seed=0, label=None,
               context=None, batch=1024):
        """(log-likelihood in nats, bits/dim) of each row of x in data units
        (score_genmodel_logp(): transform and dequantization included; float64 arrays).
        exact: True = exact divergence, False = Hutchinson's with ``probes`` probes, None =
        the library's choice (exact up to dimension 32), as the ``score`` tool."""
        x = _arrays.rows(x, self.dim)
        n = x.shape[0]
        logp, bpd = np.empty(n), np.empty(n)
        with Likelihood(self.dim, exact, probes, rtol, atol) as lk, \
                self.system(label, 0.0, context) as sde:
            rng = Rng(seed)
            for row0 in range(0, n, batch):
                m = min(batch, n - row0)
                _lib.score_genmodel_logp(self.ptr, lk.ptr, sde.ptr, row0, m,
                                         _arrays.f32p(x[row0:row0 + m]),
                                         _arrays.f64p(logp[row0:row0 + m]),
                                         _arrays.f64p(bpd[row0:row0 + m]), rng.ptr)
        return logp, bpd


class _Step(Handle):
    _free = _lib.score_step_free
