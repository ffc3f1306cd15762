"""The counter-based generator (Philox4x32-10) the samplers, losses and likelihoods draw from."""

import ctypes

from . import _native
from .params import Handle

_lib = _native.lib
PHILOX4X32_10 = 1  # enum score_rng_kind (pinned)


class Rng(Handle):
    """A Philox4x32-10 generator with a seed and a stream (score_rng_new())."""

    _free = _lib.score_rng_free

    def __init__(self, seed=0, stream=0):
        p = ctypes.c_void_p()
        _lib.score_rng_new(ctypes.byref(p), PHILOX4X32_10, int(seed))
        super().__init__(p.value)
        if stream:
            _lib.score_rng_set_stream(self.ptr, int(stream))
