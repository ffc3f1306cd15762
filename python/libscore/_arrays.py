"""numpy <-> C buffers.

Inputs: a C-contiguous ``float32`` array (or ``float64`` for doubles) is handed to the library
as it is, without a copy; anything else (another dtype, a transposed or strided view, a list)
is converted into a new C-contiguous array first: that is the only copy. Outputs are new arrays
unless the caller passes ``out=``, which must then already be C-contiguous, of the right dtype
and shape, and is written in place.
"""

import numpy as np

from . import _native
from .errors import refuse


def rows(a, dim=None, name="x", dtype=np.float32):
    """A 2-D C-contiguous array of ``dtype`` (no copy when ``a`` already is one); a 1-D array
    of ``dim`` values is one row."""
    a = np.asarray(a)
    if a.ndim == 1 and dim is not None and a.shape[0] == dim:
        a = a.reshape(1, dim)
    if a.ndim != 2:
        raise refuse("SCORE_E_SHAPE", f"{name} must be a 2-D array (rows x dim), got shape "
                                      f"{a.shape}")
    if dim is not None and a.shape[1] != dim:
        raise refuse("SCORE_E_SHAPE", f"{name} has {a.shape[1]} columns, the model's dimension "
                                      f"is {dim}")
    return np.ascontiguousarray(a, dtype=dtype)


def vector(a, n=None, name="values", dtype=np.float64):
    """A 1-D C-contiguous array of ``dtype`` (no copy when it already is one)."""
    a = np.ascontiguousarray(np.asarray(a, dtype=dtype).ravel())
    if n is not None and a.size != n:
        raise refuse("SCORE_E_SHAPE", f"{name} must have {n} values, got {a.size}")
    return a


def per_row(v, n, name="t", dtype=np.float64):
    """A scalar or one value per row as n contiguous values."""
    a = np.asarray(v, dtype=dtype)
    if a.ndim == 0:
        return np.full(n, a, dtype=dtype)
    return vector(a, n, name, dtype)


def output(out, shape, name="out", dtype=np.float32):
    """``out`` checked (C-contiguous, dtype, shape) or a new empty array."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if (not isinstance(out, np.ndarray) or out.dtype != dtype or out.shape != tuple(shape)
            or not out.flags.c_contiguous or not out.flags.writeable):
        raise refuse("SCORE_E_SHAPE", f"{name} must be a writable C-contiguous {np.dtype(dtype)}"
                                      f" array of shape {tuple(shape)}")
    return out


def f32p(a):
    return None if a is None else a.ctypes.data_as(_native.f32p)


def f64p(a):
    return None if a is None else a.ctypes.data_as(_native.f64p)


def i32p(a):
    return None if a is None else a.ctypes.data_as(_native.i32p)
