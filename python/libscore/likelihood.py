"""Log-likelihoods through the probability-flow ODE (likelihood.h)."""

import ctypes

import numpy as np

from . import _arrays, _native
from ._rng import Rng
from .params import Configurable

__all__ = ["Likelihood", "loglik", "DIVERGENCES"]

_lib = _native.lib

#: how the divergence is computed (enum score_likelihood_divergence, pinned)
DIVERGENCES = {"auto": 0, "exact": 1, "hutchinson": 2}


class Likelihood(Configurable):
    """A likelihood evaluator for data of dimension ``dim``: the exact divergence
    (``exact=True``), Hutchinson's estimate with ``probes`` probes per row (``exact=False``)
    or the library's choice (``exact=None``: exact up to dimension 32); tolerances
    ``rtol``, ``atol`` of the adaptive ODE solve; further parameters by name (``t_eps``,
    ``dequant_offset``, ``max_steps``, ...)."""

    _kind = "likelihood"
    _free = _lib.score_likelihood_free
    _set_f64, _set_i64 = _lib.score_likelihood_set_f64, _lib.score_likelihood_set_i64

    def __init__(self, dim, exact=True, probes=1, rtol=1e-5, atol=1e-5, **params):
        p = ctypes.c_void_p()
        _lib.score_likelihood_new(ctypes.byref(p), dim)
        super().__init__(p.value)
        self.dim = dim
        div = "auto" if exact is None else "exact" if exact else "hutchinson"
        self.set(divergence=DIVERGENCES[div], rtol=rtol, atol=atol)
        if exact is False:
            self.set(n_probes=probes)
        self.set(**params)

    @property
    def nfe(self):
        """Model evaluations of the last call."""
        return _lib.score_likelihood_get_nfe(self.ptr)

    def logp(self, system, x, seed=0):
        """(log p in nats, bits/dim) of every row of x under a :class:`~libscore.System`
        (model units; float64 arrays)."""
        x = _arrays.rows(x, self.dim)
        logp, bpd = np.empty(x.shape[0]), np.empty(x.shape[0])
        rng = Rng(seed)
        _lib.score_likelihood_logp(self.ptr, system.ptr, x.shape[0], _arrays.f32p(x),
                                   _arrays.f64p(logp), _arrays.f64p(bpd), rng.ptr)
        return logp, bpd


def loglik(system, x, exact=True, probes=1, rtol=1e-5, atol=1e-5, seed=0):
    """Log-likelihood (nats) and bits/dim of each row of x under a System."""
    with Likelihood(system.dim, exact, probes, rtol, atol) as lk:
        return lk.logp(system, x, seed=seed)
