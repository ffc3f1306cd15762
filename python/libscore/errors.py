"""The package's one exception type, :class:`Error`, and the status check of every call."""

from . import _native

__all__ = ["Error"]


class Error(Exception):
    """A libscore call failed, or the package refused its arguments before calling.

    Attributes:
        status: the status identifier, e.g. ``"SCORE_E_RANGE"`` (score_status_name()); an
            unknown negative code is ``"SCORE_E_UNKNOWN"``.
        code: the status as the integer the C function returned (negative).
        message: the library's detail message (score_last_error_message()), read straight
            after the failing call on the same thread; for an argument the package refused
            itself, its own message.
    """

    def __init__(self, code, message, status=None):
        self.code = int(code)
        self.status = status or _native.lib.score_status_name(self.code).decode()
        self.message = message
        super().__init__(f"{self.status}: {message}")


def _errcheck(status, func, args):
    if status < 0:
        msg = _native.lib.score_last_error_message().decode("utf-8", "replace")
        raise Error(status, msg or _native.lib.score_strerror(status).decode())
    return status


# status codes by name, read from the library (score_status_name() of -1, -2, ... until it
# no longer knows the code)
STATUS = {}
for _code in range(0, -64, -1):
    _name = _native.lib.score_status_name(_code).decode()
    if _name.endswith("UNKNOWN"):
        break
    STATUS[_name] = _code
del _code, _name


def refuse(status, message):
    """An Error for arguments the package rejects itself, with the status the library would
    give (e.g. ``refuse("SCORE_E_SHAPE", ...)``)."""
    return Error(STATUS.get(status, -1), message, status)


# Every function that returns an int status raises Error on failure. The few int functions
# that return something else are left out.
_NOT_STATUS = {"score_model_kind", "score_schedule_kind", "score_genmodel_get_transform"}
for _name, (_res, _args) in _native._SIGNATURES.items():
    if _res is _native.cint and _name not in _NOT_STATUS:
        getattr(_native.lib, _name).errcheck = _errcheck
del _name, _res, _args
