"""Typed parameters by name, through the library's introspection API (param.h).

Every configurable libscore object (sampler, schedule, model, loss, optimizer, trainer,
likelihood, sde, EMA, step) has parameters with pinned integer ids. The package never writes
those ids: it asks the library for the id, type, bounds and default of a name
(score_param_from_name(), score_param_info()), so ``sampler.set(num_steps=20, eta=0.5)`` sets
what the library calls ``num_steps`` and ``eta`` with the right typed setter, and an unknown
name or an out-of-range value is refused by the library with its own message.
"""

import ctypes
from collections import namedtuple

from . import _native
from .errors import Error, refuse

__all__ = ["KINDS", "ParamInfo", "param_id", "param_info", "param_names", "Handle",
           "Configurable"]

_lib = _native.lib

#: object kinds of the parameter tables (enum score_object_kind, pinned values)
KINDS = {"sampler": 1, "schedule": 2, "model": 3, "loss": 4, "optimizer": 5, "trainer": 6,
         "likelihood": 7, "sde": 8, "ema": 9, "control": 10, "step": 11}

#: one parameter: id, name, type ('f64' or 'i64'), inclusive bounds, default, description
ParamInfo = namedtuple("ParamInfo", "id name type min max default doc")

_TYPES = {1: "f64", 2: "i64"}
_info_cache = {}


def _kind(kind):
    try:
        return KINDS[kind]
    except KeyError:
        raise refuse("SCORE_E_UNSUPPORTED",
                     f"unknown object kind {kind!r} (valid: {', '.join(KINDS)})") from None


def param_id(kind, name):
    """The id of parameter ``name`` of an object kind ('sampler', 'schedule', 'sde', ...)."""
    return param_info(kind, name).id


def param_info(kind, name):
    """:class:`ParamInfo` of parameter ``name`` of an object kind (cached)."""
    key = (kind, name)
    info = _info_cache.get(key)
    if info is None:
        k = _kind(kind)
        pid = ctypes.c_int()
        _lib.score_param_from_name(k, name.encode(), ctypes.byref(pid))
        t, lo, hi, d = ctypes.c_int(), ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
        _lib.score_param_info(k, pid.value, ctypes.byref(t), ctypes.byref(lo), ctypes.byref(hi),
                              ctypes.byref(d))
        doc = _lib.score_param_doc(k, pid.value)
        info = ParamInfo(pid.value, name, _TYPES.get(t.value, "?"), lo.value, hi.value, d.value,
                         doc.decode() if doc else "")
        _info_cache[key] = info
    return info


def param_names(kind):
    """The names of all parameters of an object kind, in id order."""
    k = _kind(kind)
    names = []
    pid = ctypes.c_int()
    for i in range(_lib.score_param_count(k)):
        _lib.score_param_id_at(k, i, ctypes.byref(pid))
        names.append(_lib.score_param_name(k, pid.value).decode())
    return names


class Handle:
    """Owns one library handle and frees it with the matching ``score_*_free()`` (on
    :meth:`close`, at the end of a ``with`` block, or when garbage-collected)."""

    _free = None

    def __init__(self, ptr):
        self._ptr = ptr

    @property
    def ptr(self):
        """The C handle (an int address, for other ctypes calls); Error once closed."""
        if not self._ptr:
            raise refuse("SCORE_E_MISUSE", f"{type(self).__name__} is closed")
        return self._ptr

    def close(self):
        """Frees the C object now (later calls raise Error)."""
        if self._ptr:
            p, self._ptr = self._ptr, None
            type(self)._free(p)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


class Configurable(Handle):
    """A handle with typed parameters: ``obj.set(name=value, ...)`` and ``obj.get(name)``."""

    _kind = None          # key of KINDS
    _set_f64 = _set_i64 = _get_f64 = _get_i64 = None   # the object's score_*_set_f64 & co

    def set(self, **values):
        """Sets parameters by name (integers for i64 parameters; enumerations by their
        number). Returns self, so that calls can be chained."""
        for name, value in values.items():
            info = param_info(self._kind, name)
            if info.type == "i64":
                if isinstance(value, bool):
                    value = int(value)
                if not isinstance(value, int) and not float(value).is_integer():
                    raise refuse("SCORE_E_INVAL", f"{self._kind} parameter {name} is an integer, "
                                                  f"got {value!r}")
                type(self)._set_i64(self.ptr, info.id, int(value))
            else:
                type(self)._set_f64(self.ptr, info.id, float(value))
        return self

    def get(self, name):
        """The current value of a parameter (int or float)."""
        info = param_info(self._kind, name)
        if info.type == "i64":
            out = ctypes.c_int64()
            type(self)._get_i64(self.ptr, info.id, ctypes.byref(out))
        else:
            out = ctypes.c_double()
            type(self)._get_f64(self.ptr, info.id, ctypes.byref(out))
        return out.value

    def params(self):
        """All parameters of the object as a {name: value} dict."""
        out = {}
        for n in param_names(self._kind):
            try:
                out[n] = self.get(n)
            except Error:   # a parameter this object kind does not have (another variant)
                pass
        return out
